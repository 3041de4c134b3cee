/**
 * FrozenDetector on fake time: frames are published into a FrameStore driven by a FakeClock (their
 * capturedAt is the fake time), the detector sees them as CameraRuntime wires it, and writes a real
 * relay_camera_frozen{camera} series and a captured log.
 */
import { loadConfig } from '../../src/config';
import { CameraRuntime } from '../../src/camera';
import { FrameStore } from '../../src/frame-store';
import { FrozenDetector } from '../../src/frozen-detector';
import { ClientLimiter } from '../../src/outlets';
import { captureLog, FakeClock, fakeJpeg, metricValue, testMetrics } from '../../../test-support';
import { CidrList } from '@camrelay/common';

const AFTER_MS = 1000;

function rig(afterMs = AFTER_MS) {
  const clock = new FakeClock();
  const store = new FrameStore(clock);
  const metrics = testMetrics();
  const gauge = metrics.camera('front').cameraFrozen;
  const { log, lines } = captureLog('info');
  const detector = new FrozenDetector({ afterMs, gauge, log: log.child({ camera: 'front' }) });
  store.on('frame', (f) => detector.observe(f));
  const frozenLines = () => lines.filter((l) => /frozen|thawed/.test(String(l.msg)));
  /** publishes `data` after `ms` of fake time */
  const frame = (data: Buffer, ms = 0) => {
    clock.advance(ms);
    store.publish(data);
  };
  return { clock, store, metrics, detector, frozenLines, frame, gauge: () => metricValue(gauge) };
}

describe('FrozenDetector', () => {
  test('identical frames for LONGER than the setting freeze the camera: gauge 1, one warn line; the first different frame thaws it: 0, one info line', async () => {
    const r = rig();
    const a = fakeJpeg(7);
    r.frame(a);
    for (let i = 0; i < 4; i++) r.frame(Buffer.from(a), 250); // equal bytes in fresh buffers, as each fetch gives
    // exactly AFTER_MS since the first identical frame: not yet
    expect(r.detector.frozen).toBe(false);
    expect(await r.gauge()).toBe(0);
    r.frame(Buffer.from(a), 1);
    expect(r.detector.frozen).toBe(true);
    expect(await r.gauge()).toBe(1);
    expect(r.frozenLines()).toEqual([
      expect.objectContaining({ level: 40, camera: 'front', identicalForMs: 1001, identicalFrames: 6, bytes: a.length, frozenAfterMs: AFTER_MS }),
    ]);
    // more of the same: still frozen, no more lines
    for (let i = 0; i < 20; i++) r.frame(Buffer.from(a), 500);
    expect(await r.gauge()).toBe(1);
    expect(r.frozenLines()).toHaveLength(1);

    r.frame(fakeJpeg(8), 250);
    expect(r.detector.frozen).toBe(false);
    expect(await r.gauge()).toBe(0);
    expect(r.frozenLines()).toHaveLength(2);
    expect(r.frozenLines()[1]).toMatchObject({ level: 30, camera: 'front', msg: expect.stringMatching(/^camera thawed/), identicalFrames: 26 });
  });

  test('the identical run is measured from its own first frame, not from an earlier run', () => {
    const r = rig();
    r.frame(fakeJpeg(1));
    r.frame(fakeJpeg(1), 900); // run of 1: 900 ms
    r.frame(fakeJpeg(2), 100); // differs: a new run starts here
    r.frame(fakeJpeg(2), 1000); // 1000 ms since the run began: not longer than the setting
    expect(r.detector.frozen).toBe(false);
    r.frame(fakeJpeg(2), 1);
    expect(r.detector.frozen).toBe(true);
  });

  test('a frame that differs in one byte (same length) or only in length is a different frame', () => {
    const r = rig();
    const a = fakeJpeg(3, 4096);
    r.frame(a);
    const oneByte = Buffer.from(a);
    oneByte[2000] ^= 1;
    r.frame(oneByte, 600);
    r.frame(Buffer.from(oneByte), 600); // the run began at oneByte: 600 ms
    expect(r.detector.frozen).toBe(false);
    r.frame(Buffer.concat([oneByte, Buffer.from([0])]), 600); // the same bytes plus one more
    r.frame(fakeJpeg(3, 4096).subarray(0, 4000), 600); // a prefix
    r.frame(fakeJpeg(3, 4096).subarray(0, 4000), 600); // the run began at the prefix: 600 ms
    expect(r.detector.frozen).toBe(false);
    expect(r.frozenLines()).toEqual([]);
  });

  test('two identical frames far apart (a long idle gap) are frozen at once: nothing else arrived to differ', () => {
    const r = rig();
    r.frame(fakeJpeg(5));
    r.frame(fakeJpeg(5), 60_000);
    expect(r.detector.frozen).toBe(true);
    expect(r.frozenLines()).toHaveLength(1);
  });

  test('afterMs 0 = off: the same frame forever never freezes, nothing is logged', async () => {
    const r = rig(0);
    const a = fakeJpeg(9);
    for (let i = 0; i < 100; i++) r.frame(a, 1000);
    expect(r.detector.frozen).toBe(false);
    expect(await r.gauge()).toBe(0);
    expect(r.frozenLines()).toEqual([]);
  });

  test('no frames, no verdict: a frozen camera that then sends nothing stays frozen (down/stale cover that)', () => {
    const r = rig();
    r.frame(fakeJpeg(4));
    r.frame(fakeJpeg(4), 2000);
    expect(r.detector.frozen).toBe(true);
    r.clock.advance(3_600_000);
    expect(r.detector.frozen).toBe(true);
    expect(r.clock.pending()).toEqual([]); // no timer of its own
  });
});

describe('CameraRuntime wires the detector per camera', () => {
  function runtime(env: Record<string, string>) {
    const r = loadConfig([], { BIND_HOST: '127.0.0.1', CLIENT_PORT: '0', HTTP_PORT: '0', METRICS_PORT: '0', ...env });
    if (r.help) throw new Error('help');
    const c = r.config;
    const metrics = testMetrics();
    const { log, lines } = captureLog('info');
    const limiter = new ClientLimiter({ maxClients: 10, maxClientsPerIp: 10, allow: new CidrList([]) }, { metrics, log });
    // the constructor does no I/O: nothing is started here
    const cam = new CameraRuntime({ config: c.cameras[0], clients: c.clients, shutdownGraceMs: 0, metrics, limiter, log, bootId: 'test' });
    return { cam, metrics, lines };
  }

  test('frames published into its store drive relay_camera_frozen{camera} and status.frozen; its frame is still there to serve', async () => {
    const { cam, metrics, lines } = runtime({ CAMERA_NAME: 'porch', CAMERA_FROZEN_AFTER_MS: '5000', STALE_AFTER_IDLE_MS: '0' });
    const frozen = () => metricValue(metrics.families.cameraFrozen, { camera: 'porch' });
    expect(await frozen()).toBe(0); // the series exists from the start
    expect(cam.outletStatus().frozen).toBe(false);
    const a = fakeJpeg(1);
    const t0 = Date.now();
    cam.store.publish(a, t0 - 6000);
    cam.store.publish(Buffer.from(a), t0 - 3000);
    expect(cam.outletStatus().frozen).toBe(false);
    cam.store.publish(Buffer.from(a), t0);
    expect(await frozen()).toBe(1);
    expect(cam.outletStatus().frozen).toBe(true);
    expect(lines.filter((l) => l.level === 40 && l.camera === 'porch' && /^camera frozen/.test(String(l.msg)))).toHaveLength(1);
    // frozen is not down: the frame store still has its (fresh) frame for the outlets
    expect(cam.store.fresh(1000)?.data).toEqual(a);
    cam.store.publish(fakeJpeg(2), t0 + 100);
    expect(await frozen()).toBe(0);
    expect(cam.outletStatus().frozen).toBe(false);
  });

  test('CAMERA_FROZEN_AFTER_S (the issue\'s name, seconds) sets the same threshold', () => {
    const { cam } = runtime({ CAMERA_FROZEN_AFTER_S: '2' });
    expect(cam.config.frozenAfterMs).toBe(2000);
    const a = fakeJpeg(1);
    cam.store.publish(a, 10_000);
    cam.store.publish(a, 12_000);
    expect(cam.frozen.frozen).toBe(false);
    cam.store.publish(a, 12_001);
    expect(cam.frozen.frozen).toBe(true);
  });
});
