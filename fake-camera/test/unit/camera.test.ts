import net from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { FakeClock, rawFetch, waitFor } from '../../../test-support';
import { FakeCamera, FakeCameraOptions, NOT_JPEG_BYTES } from '../../src/camera';
import { ControlServer } from '../../src/control';
import { FrameRing, frameSeqOf } from '../../src/frames';

const ring = () => new FrameRing({ width: 160, height: 120, ringSize: 4 });
const cameras: FakeCamera[] = [];

async function startCamera(opts: FakeCameraOptions = {}): Promise<FakeCamera> {
  const cam = new FakeCamera({ host: '127.0.0.1', port: 0, captureMs: 0, ring: ring(), ...opts });
  cameras.push(cam);
  await cam.start();
  return cam;
}

afterEach(async () => {
  await Promise.all(cameras.splice(0).map((c) => c.stop()));
});

describe('FakeCamera ok mode', () => {
  test('each connection gets one whole JPEG with an increasing sequence number, then EOF', async () => {
    const cam = await startCamera();
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await rawFetch(cam.port);
      expect(r.error).toBeUndefined();
      expect(checkJpeg(r.data).ok).toBe(true);
      seqs.push(frameSeqOf(r.data)!);
    }
    expect(seqs).toEqual([1, 2, 3]);
    expect(cam.stats).toMatchObject({ mode: 'ok', connections: 3, framesSent: 3, faultsInjected: 0, lastSeq: 3 });
  });

  test('a client that half-closes at once (nc < /dev/null) still gets the frame', async () => {
    const cam = await startCamera();
    const data = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = net.connect(cam.port, '127.0.0.1', () => s.end());
      s.on('data', (c) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.on('error', reject);
    });
    expect(checkJpeg(data).ok).toBe(true);
  });

  test('serves one client at a time: concurrent clients are answered one after the other', async () => {
    const clock = new FakeClock();
    const cam = await startCamera({ captureMs: 150, clock });
    const done: Buffer[] = [];
    const all = Promise.all([0, 1, 2].map(() => rawFetch(cam.port).then((r) => (done.push(r.data), r))));
    await waitFor(() => cam.stats.connections === 3 && clock.pending().includes(150), 5000, 'three clients, one capturing');
    // Each waits for the previous capture: the n-th frame arrives after n * 150 ms of (fake) time.
    for (let n = 1; n <= 3; n++) {
      await clock.advanceAsync(149);
      expect(done).toHaveLength(n - 1);
      await clock.advanceAsync(1);
      await waitFor(() => done.length === n && (n === 3 || clock.pending().includes(150)), 5000, `frame ${n}`);
      expect(checkJpeg(done[n - 1]).ok).toBe(true);
      expect(frameSeqOf(done[n - 1])).toBe(n);
    }
    await all;
  });

  test('link rate limits how fast a frame is sent', async () => {
    const cam = await startCamera({ linkKbps: 400 }); // 50 KB/s
    const r = await rawFetch(cam.port);
    expect(checkJpeg(r.data).ok).toBe(true);
    const expectedMs = (r.data.length / 50_000) * 1000;
    expect(r.ms).toBeGreaterThanOrEqual(expectedMs * 0.8);
  });
});

describe('FakeCamera fault modes', () => {
  test('truncated: starts like a JPEG, ends short without EOI, clean close', async () => {
    const cam = await startCamera({ mode: 'truncated' });
    const r = await rawFetch(cam.port);
    expect(r.error).toBeUndefined();
    expect(r.data.length).toBeGreaterThan(100);
    expect(checkJpeg(r.data)).toEqual({ ok: false, reason: 'truncated' });
    expect(cam.stats).toMatchObject({ faultsInjected: 1, framesSent: 0, faultsByKind: { truncated: 1 } });
  });

  test('not-jpeg: garbage bytes', async () => {
    const cam = await startCamera({ mode: 'not-jpeg' });
    const r = await rawFetch(cam.port);
    expect(r.data).toEqual(NOT_JPEG_BYTES);
    expect(checkJpeg(r.data)).toEqual({ ok: false, reason: 'not_jpeg' });
  });

  test('empty: accepts and closes at once', async () => {
    const clock = new FakeClock(); // never advanced: an answer proves no capture delay was waited for
    const cam = await startCamera({ mode: 'empty', captureMs: 1000, clock });
    const r = await rawFetch(cam.port);
    expect(r.error).toBeUndefined();
    expect(r.data.length).toBe(0);
  });

  test('reset: connection reset mid-frame', async () => {
    const cam = await startCamera({ mode: 'reset' });
    const r = await rawFetch(cam.port);
    expect((r.error as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNRESET');
    expect(checkJpeg(r.data).ok).toBe(false);
  });

  test('hang-accept: accepts, sends nothing, holds the slot until the client gives up', async () => {
    const cam = await startCamera({ mode: 'hang-accept' });
    const r = await rawFetch(cam.port, '127.0.0.1', 400);
    expect(r.error?.message).toBe('timeout');
    expect(r.data.length).toBe(0);
    await cam.setMode('ok');
    const next = await rawFetch(cam.port, '127.0.0.1', 2000);
    expect(checkJpeg(next.data).ok).toBe(true);
  });

  test('hang-accept blocks the next client while the first one waits (serial camera)', async () => {
    const clock = new FakeClock();
    const cam = await startCamera({ mode: 'hang-accept', hangMs: 300, clock });
    const first = rawFetch(cam.port, '127.0.0.1', 5000);
    await waitFor(() => cam.stats.connections === 1 && clock.pending().includes(300), 5000, 'the first client hanging');
    await cam.setMode('ok');
    let second: Buffer | undefined;
    const secondDone = rawFetch(cam.port, '127.0.0.1', 5000).then((r) => (second = r.data));
    await waitFor(() => cam.stats.connections === 2, 5000, 'the second client queued');
    await clock.advanceAsync(299);
    expect(second).toBeUndefined(); // still blocked by the hanging first client
    await clock.advanceAsync(1);
    await secondDone;
    expect(checkJpeg(second!).ok).toBe(true);
    expect((await first).data.length).toBe(0);
  });

  test('hang-mid: sends part of a frame, then nothing', async () => {
    const cam = await startCamera({ mode: 'hang-mid' });
    const r = await rawFetch(cam.port, '127.0.0.1', 400);
    expect(r.error?.message).toBe('timeout');
    expect(r.data.length).toBeGreaterThan(100);
    expect(r.data.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect(checkJpeg(r.data).ok).toBe(false);
  });

  test('oversize: a valid JPEG bigger than the limit', async () => {
    const cam = await startCamera({ mode: 'oversize', oversizeMb: 0.5 });
    const r = await rawFetch(cam.port);
    expect(r.data.length).toBeGreaterThan(512 * 1024);
    expect(checkJpeg(r.data).ok).toBe(true);
    expect(frameSeqOf(r.data)).toBe(1);
  });

  test('refused: nothing listens; ok reopens the SAME port', async () => {
    const cam = await startCamera();
    const port = cam.port;
    await cam.setMode('refused');
    const r = await rawFetch(port);
    expect((r.error as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNREFUSED');
    expect(cam.stats.listening).toBe(false);
    await cam.setMode('ok');
    expect(cam.port).toBe(port);
    expect(checkJpeg((await rawFetch(port)).data).ok).toBe(true);
  });

  test('starting in refused with port 0 reserves a port that ok opens later', async () => {
    const cam = await startCamera({ mode: 'refused' });
    expect(cam.port).toBeGreaterThan(0);
    expect((await rawFetch(cam.port)).error).toBeDefined();
    await cam.setMode('ok');
    expect(checkJpeg((await rawFetch(cam.port)).data).ok).toBe(true);
  });

  test('frozen: every connection gets the very same whole JPEG; ok resumes new frames; frozen again freezes on a new one', async () => {
    const cam = await startCamera();
    const before = await rawFetch(cam.port);
    await cam.setMode('frozen');
    const frozen = [await rawFetch(cam.port), await rawFetch(cam.port), await rawFetch(cam.port)].map((r) => r.data);
    expect(checkJpeg(frozen[0]).ok).toBe(true);
    expect(frozen[1]).toEqual(frozen[0]);
    expect(frozen[2]).toEqual(frozen[0]);
    expect(frozen[0]).not.toEqual(before.data);
    // a locked-up camera produces no new frames: the sequence stands still; each connection is a fault
    expect(cam.stats).toMatchObject({ mode: 'frozen', lastSeq: 2, framesSent: 1, faultsInjected: 3, faultsByKind: { frozen: 3 } });

    await cam.setMode('ok');
    const after = [await rawFetch(cam.port), await rawFetch(cam.port)].map((r) => frameSeqOf(r.data));
    expect(after).toEqual([3, 4]);

    await cam.setMode('frozen');
    const again = [await rawFetch(cam.port), await rawFetch(cam.port)].map((r) => r.data);
    expect(frameSeqOf(again[0])).toBe(5);
    expect(again[1]).toEqual(again[0]);
  });

  test('flaky: a seeded mix of ok and faults, the same for the same seed', async () => {
    const run = async () => {
      const cam = await startCamera({ mode: 'flaky', seed: 7, faultRate: 0.5, hangMs: 30, refusedMs: 30, oversizeMb: 0.2 });
      const outcomes: string[] = [];
      while (cam.stats.connections < 25) {
        const r = await rawFetch(cam.port, '127.0.0.1', 2000);
        if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED') {
          await waitFor(() => cam.stats.listening, 5000, 'the listener back after a refused fault');
          continue;
        }
        outcomes.push(checkJpeg(r.data).ok ? 'ok' : 'bad');
      }
      return cam.stats;
    };
    const a = await run();
    const b = await run();
    expect(a.faultsByKind).toEqual(b.faultsByKind);
    expect(a.framesSent).toBe(b.framesSent);
    expect(a.framesSent).toBeGreaterThan(3);
    expect(a.faultsInjected).toBeGreaterThan(3);
    expect(Object.keys(a.faultsByKind).length).toBeGreaterThanOrEqual(3);
  });

  test('stop() is idempotent and cuts hung clients', async () => {
    const cam = await startCamera({ mode: 'hang-accept' });
    const pending = rawFetch(cam.port, '127.0.0.1', 5000);
    await waitFor(() => cam.stats.connections === 1, 5000, 'a hung client');
    await Promise.all([cam.stop(), cam.stop()]);
    const r = await pending;
    expect(r.ms).toBeLessThan(2000);
    expect(r.error?.message).not.toBe('timeout');
  });
});

describe('ControlServer', () => {
  test('GET /stats, POST/PUT /mode switch at runtime, bad mode is 400', async () => {
    const cam = await startCamera();
    const control = new ControlServer({ host: '127.0.0.1', port: 0, camera: cam });
    await control.start();
    try {
      const base = `http://127.0.0.1:${control.port}`;
      await rawFetch(cam.port);
      const stats = await (await fetch(`${base}/stats`)).json();
      expect(stats).toMatchObject({ connections: 1, framesSent: 1, faultsInjected: 0, mode: 'ok' });

      const bad = await fetch(`${base}/mode?m=sideways`, { method: 'POST' });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: string }).error).toMatch(/sideways.*truncated/);

      expect((await fetch(`${base}/mode?m=truncated`, { method: 'POST' })).status).toBe(200);
      expect(checkJpeg((await rawFetch(cam.port)).data)).toEqual({ ok: false, reason: 'truncated' });

      expect((await fetch(`${base}/mode?m=refused`, { method: 'PUT' })).status).toBe(200);
      expect((await rawFetch(cam.port)).error).toBeDefined();
      expect((await fetch(`${base}/mode?m=frozen`, { method: 'POST' })).status).toBe(200);
      const [f1, f2] = [await rawFetch(cam.port), await rawFetch(cam.port)];
      expect(checkJpeg(f1.data).ok).toBe(true);
      expect(f2.data).toEqual(f1.data);
      expect((await fetch(`${base}/mode?m=ok`, { method: 'POST' })).status).toBe(200);
      expect(checkJpeg((await rawFetch(cam.port)).data).ok).toBe(true);
      const after = (await (await fetch(`${base}/stats`)).json()) as Record<string, unknown>;
      expect(after).toMatchObject({ mode: 'ok', framesSent: 2, faultsInjected: 3, faultsByKind: { truncated: 1, frozen: 2 } });
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await control.stop();
    }
  });
});
