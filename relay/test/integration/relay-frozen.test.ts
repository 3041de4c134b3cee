/**
 * A frozen camera (one that keeps sending the very same JPEG) through a real relay:
 * - the relay daemon (relay/dist) pulling from the fake camera daemon switched to `frozen` at runtime:
 *   relay_camera_frozen goes 1, frames keep being served and the camera stays up and ready, one
 *   warn line; back to `ok`: 0 and one info line;
 * - an in-process relay with a camera list: per-camera gauges and status.json `frozen`, the
 *   per-camera frozen_after_ms (0 = off), and the series gone when a reload removes the camera.
 */
import { checkJpeg } from '@camrelay/common';
import { frameSeqOf } from '../../../fake-camera/src/frames';
import {
  Behaviour, CameraProc, freePorts, jpeg, killAllChildren, MultiRelay, rawFetch, RelayProc, request, startCamera, startMultiRelay, startRelay, TestCamera, waitFor,
} from '../../../test-support';

jest.setTimeout(60_000);

const FROZEN_AFTER_MS = 400;

describe('frozen camera: relay daemon and fake camera daemon', () => {
  let cam: CameraProc;
  let relay: RelayProc;
  beforeAll(async () => {
    cam = await startCamera();
    relay = await startRelay({
      CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), CAMERA_FROZEN_AFTER_MS: String(FROZEN_AFTER_MS),
      MAX_FPS: '20', IDLE_FPS: '10', MAX_FRAME_AGE_MS: '500',
    });
  });
  afterAll(() => killAllChildren());

  const frozen = () => relay.metric('relay_camera_frozen', { camera: 'default' });
  const status = async () => (await (await fetch(`http://127.0.0.1:${relay.httpPort}/status.json`)).json()) as Record<string, unknown> & { cameras: Record<string, unknown>[] };
  const lines = (re: RegExp) => relay.child.logs().filter((l) => re.test(String(l.msg)));

  test('frozen: the gauge goes 1 while frames keep being served and the camera stays up; ok: back to 0; one log line each way', async () => {
    await waitFor(async () => (await relay.metric('relay_camera_up', { camera: 'default' })) === 1, 10_000, 'camera up');
    expect(await frozen()).toBe(0);
    expect((await status()).frozen).toBe(false);

    await cam.setMode('frozen');
    await waitFor(async () => (await frozen()) === 1, 10_000, 'relay_camera_frozen 1');

    // still served: whole frames, the camera's one frozen frame, to raw and HTTP clients alike
    const [a, b] = [await rawFetch(relay.clientPort), await rawFetch(relay.clientPort)];
    expect(checkJpeg(a.data).ok).toBe(true);
    expect(b.data).toEqual(a.data);
    const snap = await request(`http://127.0.0.1:${relay.httpPort}/snapshot.jpg`);
    expect(snap.status).toBe(200);
    expect(snap.body).toEqual(a.data);
    const framesBefore = await relay.metric('relay_frames_total', { camera: 'default' });
    await waitFor(async () => (await relay.metric('relay_frames_total', { camera: 'default' })) > framesBefore + 2, 5000, 'frames keep arriving');
    // still up and ready: frozen is its own signal, not "down"
    expect(await relay.metric('relay_camera_up', { camera: 'default' })).toBe(1);
    expect((await fetch(`http://127.0.0.1:${relay.metricsPort}/readyz`)).status).toBe(200);
    const s = await status();
    expect(s).toMatchObject({ frozen: true, cameraUp: true });
    expect(s.cameras[0]).toMatchObject({ name: 'default', frozen: true, up: true });
    expect(lines(/^camera frozen/)).toEqual([expect.objectContaining({ level: 40, camera: 'default', frozenAfterMs: FROZEN_AFTER_MS })]);
    expect(relay.child.logs().filter((l) => /deprecated/.test(String(l.msg)))).toEqual([]);

    await cam.setMode('ok');
    await waitFor(async () => (await frozen()) === 0, 10_000, 'relay_camera_frozen back to 0');
    expect((await status()).frozen).toBe(false);
    const fresh = await rawFetch(relay.clientPort);
    expect(frameSeqOf(fresh.data)).toBeGreaterThan(frameSeqOf(a.data)!);
    expect(lines(/^camera frozen/)).toHaveLength(1);
    expect(lines(/^camera thawed/)).toEqual([expect.objectContaining({ level: 30, camera: 'default' })]);
  });
});

describe('frozen camera: several cameras in one relay', () => {
  /** the same bytes on every connection */
  const stuck: Behaviour = (s) => s.end(jpeg(1, 100));
  /** a new frame on every connection */
  const live: Behaviour = (s, n) => s.end(jpeg(n, 100));
  const cams: TestCamera[] = [];
  let relay: MultiRelay | undefined;
  afterEach(async () => {
    await relay?.stop();
    relay = undefined;
    await Promise.all(cams.splice(0).map((c) => c.stop()));
  });

  test('only the stuck camera freezes (per-camera frozen_after_ms, 0 = off); status.json per camera; a removed camera loses its series', async () => {
    const [front, garden, still] = [new TestCamera(stuck), new TestCamera(live), new TestCamera(stuck)];
    cams.push(front, garden, still);
    await Promise.all(cams.map((c) => c.start()));
    const raw = await freePorts(3);
    const entry = (name: string, c: TestCamera, port: number, extra = '') => `  ${name}:\n    host: 127.0.0.1\n    port: ${c.port}\n    raw_port: ${port}\n${extra}`;
    const list = (...entries: string[]) => `cameras:\n${entries.join('')}`;
    const frontEntry = entry('front', front, raw[0], `    frozen_after_ms: ${FROZEN_AFTER_MS}\n`);
    const gardenEntry = entry('garden', garden, raw[1]);
    const stillEntry = entry('still', still, raw[2], '    frozen_after_ms: 0\n');
    relay = await startMultiRelay(list(frontEntry, gardenEntry, stillEntry), {
      CAMERA_FROZEN_AFTER_MS: String(FROZEN_AFTER_MS), MAX_FPS: '20', IDLE_FPS: '10', STALE_AFTER_IDLE_MS: '0',
    });
    const r = relay;
    await waitFor(async () => (await r.metric('relay_camera_frozen', { camera: 'front' })) === 1, 10_000, 'front frozen');
    // still repeats its frame too, well past the threshold, but its check is off
    await waitFor(async () => (await r.metric('relay_frames_total', { camera: 'still' })) >= 10, 10_000, 'still: many identical frames');
    expect(await r.metric('relay_camera_frozen', { camera: 'garden' })).toBe(0);
    expect(await r.metric('relay_camera_frozen', { camera: 'still' })).toBe(0);

    const s = JSON.parse((await request(`${r.base}/status.json`)).body.toString()) as Record<string, unknown> & { cameras: Record<string, unknown>[] };
    expect(s.cameras.map((c) => [c.name, c.frozen, c.up])).toEqual([['front', true, true], ['garden', false, true], ['still', false, true]]);
    expect(s.frozen).toBe(true); // the top level is the first camera, as for the other fields
    const one = JSON.parse((await request(`${r.base}/cam/garden/status.json`)).body.toString()) as Record<string, unknown>;
    expect(one).toMatchObject({ name: 'garden', frozen: false });
    expect(r.logs.filter((l) => /^camera frozen/.test(String(l.msg))).map((l) => l.camera)).toEqual(['front']);

    r.write(list(gardenEntry, stillEntry));
    expect(await r.relay.reload()).toMatchObject({ ok: true, removed: ['front'] });
    const text = await r.metricsText();
    expect(text).not.toMatch(/^relay_camera_frozen\{camera="front"\}/m);
    expect(text).toMatch(/^relay_camera_frozen\{camera="garden"\} 0$/m);
  });
});
