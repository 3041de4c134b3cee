import { FrameStore } from '../../src/frame-store';
import { FpsMeter, buildStatus, readiness } from '../../src/outlets/status';

describe('FpsMeter', () => {
  test('measures the publish rate, is right after two frames, decays to 0 when frames stop', () => {
    let t = 0;
    const m = new FpsMeter(5000, 512, () => t);
    expect(m.fps()).toBe(0);
    m.mark();
    expect(m.fps()).toBe(0);
    for (let i = 0; i < 10; i++) {
      t += 100;
      m.mark();
    }
    expect(m.fps()).toBe(10);
    t += 50;
    expect(m.fps()).toBeCloseTo(9.5, 0);
    t += 4000;
    expect(m.fps()).toBeLessThan(2.5);
    t += 2000;
    expect(m.fps()).toBe(0);
  });

  test('a full ring at a high rate still reports the right rate', () => {
    let t = 0;
    const m = new FpsMeter(5000, 64, () => t);
    for (let i = 0; i < 1000; i++) {
      t += 2;
      m.mark();
    }
    expect(m.fps()).toBe(500);
  });
});

describe('status and readiness', () => {
  test('readiness needs a frame no older than the maximum age', () => {
    let now = 10_000;
    const store = new FrameStore(() => now);
    expect(readiness(store, 1000)).toMatchObject({ ready: false, reason: expect.stringMatching(/no frame/) });
    store.publish(Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
    now += 500;
    expect(readiness(store, 1000)).toEqual({ ready: true, ageMs: 500, seq: 1 });
    now += 1000;
    expect(readiness(store, 1000)).toMatchObject({ ready: false, ageMs: 1500, reason: 'latest frame is 1500 ms old (MAX_FRAME_AGE_MS=1000)' });
  });

  test('status.json content: source fields passed through, measured fps wins', () => {
    const store = new FrameStore();
    store.publish(Buffer.alloc(1234));
    const s = buildStatus({
      store,
      status: () => ({ cameraUp: true, mode: 'push', fps: 99, targetFps: 25 }),
      clients: () => ({ raw: 1, snapshot: 2, mjpeg: 3 }),
      connections: () => 6,
      fps: () => 12.5,
      startedAt: Date.now() - 3000,
      maxFrameAgeMs: 1000,
    });
    expect(s).toMatchObject({ cameraUp: true, mode: 'push', fps: 12.5, targetFps: 25, lastError: null, clients: { raw: 1, snapshot: 2, mjpeg: 3 }, connections: 6 });
    expect(s.frame).toMatchObject({ seq: 1, bytes: 1234 });
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(2.9);
    expect(s.frozen).toBe(false); // a source that says nothing about it: not frozen, always a boolean
  });

  test('status.json content: frozen comes from the camera, next to cameraUp (a frozen camera is still up)', () => {
    const store = new FrameStore();
    store.publish(Buffer.alloc(10));
    const s = buildStatus({
      store,
      status: () => ({ cameraUp: true, frozen: true, mode: 'pull' }),
      clients: () => ({}),
      connections: () => 0,
      fps: () => 1,
      startedAt: Date.now(),
      maxFrameAgeMs: 1000,
    });
    expect(s).toMatchObject({ cameraUp: true, frozen: true });
  });
});
