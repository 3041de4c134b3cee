import net from 'node:net';
import { FrameStore } from '../../src/frame-store';
import type { FetchErrorReason } from '../../src/metrics';
import { PullSource, PullSourceConfig } from '../../src/source/pull';
import { FrameReader, readFrame } from '../../src/source/fetch';
import { Behaviour, captureLog, closedPort, FakeClock, frameNo, jpeg, metricValue, ok, TestCamera, testMetrics, waitFor } from '../../../test-support';

const base: PullSourceConfig = {
  host: '127.0.0.1', port: 0, connectTimeoutMs: 200, idleTimeoutMs: 150, deadlineMs: 600, frameMaxBytes: 2048,
  retryBaseMs: 20, retryMaxMs: 40, maxFps: 0, idleFps: 0, staleAfterIdleMs: 0,
};

let cam: TestCamera;
let source: PullSource | undefined;
beforeEach(async () => {
  cam = new TestCamera();
  await cam.start();
});
afterEach(async () => {
  await source?.stop();
  source = undefined;
  await cam.stop();
});

function make(over: Partial<PullSourceConfig> = {}, extra: Partial<ConstructorParameters<typeof PullSource>[0]> = {}) {
  const store = new FrameStore(extra.clock);
  const metrics = testMetrics();
  const { log, lines } = captureLog();
  source = new PullSource({ config: { ...base, port: cam.port, ...over }, store, metrics, log, ...extra });
  return { store, metrics, lines, source };
}

describe('PullSource against real sockets', () => {
  test('publishes whole frames, counts them, logs camera up once', async () => {
    const { store, metrics, lines, source } = make({ maxFps: 50, idleFps: 50 });
    await source.start();
    await waitFor(() => (store.latest?.seq ?? 0) >= 3, 5000, '3 frames');
    expect(frameNo(store.latest!.data)).toBeGreaterThanOrEqual(3);
    expect(await metricValue(metrics.frames)).toBeGreaterThanOrEqual(3);
    expect(await metricValue(metrics.cameraUp)).toBe(1);
    expect((await metrics.frameBytes.get()).values.find((v) => v.metricName === 'relay_frame_bytes_count')?.value).toBeGreaterThanOrEqual(3);
    expect(lines.filter((l) => String(l.msg).startsWith('camera up'))).toHaveLength(1);
    const st = source.status();
    expect(st).toMatchObject({ mode: 'pull', cameraUp: true, lastError: null });
    expect(st.fetches).toBeGreaterThanOrEqual(3);
    await source.stop();
    await source.stop(); // idempotent
  });

  test('one fetch in flight at a time, even with MAX_FPS=0', async () => {
    let open = 0;
    let maxOpen = 0;
    cam.behaviour = (s, n) => setTimeout(() => s.end(jpeg(n)), 5);
    const { store } = make({ maxFps: 0 }, {
      connect: (o) => {
        const s = net.connect(o);
        open++;
        maxOpen = Math.max(maxOpen, open);
        const destroy = s.destroy.bind(s);
        let counted = false;
        s.destroy = (e?: Error) => {
          if (!counted) open--;
          counted = true;
          return destroy(e);
        };
        return s;
      },
    });
    store.watch();
    await source!.start();
    await waitFor(() => cam.connections >= 10, 5000, '10 fetches');
    expect(maxOpen).toBe(1);
  });

  test('frames gathered in the reused buffer keep their own bytes after later fetches', async () => {
    // sizes go past the 64 KiB read buffer (several reads and a larger gathering buffer) and back down
    const sizes = [200_000, 3_000, 90_000, 500, 150_000];
    const frame = (n: number) => {
      const b = jpeg(n, sizes[(n - 1) % sizes.length]);
      for (let i = 6; i < b.length - 2; i++) b[i] = (n * 31 + i) & 0x7f;
      return b;
    };
    cam.behaviour = (s, n) => {
      const b = frame(n);
      s.write(b.subarray(0, 1000));
      setTimeout(() => s.end(b.subarray(1000)), 5);
    };
    const readBuffers = new Set<unknown>();
    const { store } = make({ maxFps: 0, frameMaxBytes: 300_000 }, {
      connect: (o) => {
        readBuffers.add(o.onread?.buffer);
        return net.connect(o);
      },
    });
    store.watch();
    await source!.start();
    const got: Buffer[] = [];
    let seq = 0;
    while (got.length < 10) {
      const f = await store.next(seq, 5000);
      if (!f) throw new Error('no frame within 5 s');
      seq = f.seq;
      got.push(f.data);
    }
    await source!.stop();
    for (const data of got) expect(data.equals(frame(frameNo(data)))).toBe(true);
    expect(new Set(got.map((d) => d.length)).size).toBe(sizes.length);
    // every connection read into the same buffer: no Buffer allocated per read
    expect(readBuffers.size).toBe(1);
    expect([...readBuffers][0]).toBeInstanceOf(Buffer);
  });

  const faults: [FetchErrorReason, Behaviour, Partial<PullSourceConfig>?][] = [
    ['empty', (s) => s.end()],
    ['not_jpeg', (s) => s.end(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'))],
    ['truncated', (s, n) => s.end(jpeg(n).subarray(0, 10))],
    ['reset', (s, n) => s.write(jpeg(n, 100).subarray(0, 50), () => s.resetAndDestroy())],
    ['idle_timeout', (s, n) => s.write(jpeg(n).subarray(0, 6))],
    ['deadline', (s, n) => {
      const data = jpeg(n, 400);
      let i = 0;
      const t = setInterval(() => (i < data.length && !s.destroyed ? s.write(data.subarray(i, ++i)) : clearInterval(t)), 20);
      s.on('close', () => clearInterval(t));
    }, { idleTimeoutMs: 1000, deadlineMs: 400 }],
    ['too_large', (s, n) => s.end(jpeg(n, 5000))],
  ];

  test.each(faults)('%s: counted by reason, nothing published, camera down logged once, then recovers', async (reason, behaviour, over = {}) => {
    cam.behaviour = behaviour;
    const { store, metrics, lines, source } = make({ idleFps: 100, maxFps: 100, ...over });
    await source.start();
    await waitFor(() => source.status().errors >= 2, 5000, `two ${reason} errors`);
    expect(store.latest).toBeUndefined();
    expect(await metricValue(metrics.fetchErrors, { reason })).toBeGreaterThanOrEqual(2);
    const others = (await metrics.fetchErrors.get()).values.filter((v) => v.labels.reason !== reason && v.value > 0);
    expect(others).toEqual([]);
    expect(source.status().lastError?.reason).toBe(reason);
    expect(source.status().cameraUp).toBe(false);
    expect(await metricValue(metrics.cameraUp)).toBe(0);
    expect(lines.filter((l) => l.msg === 'camera down')).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'camera down')).toMatchObject({ reason });

    cam.behaviour = ok;
    await waitFor(() => store.latest !== undefined, 5000, 'recovery');
    expect(checkWhole(store.latest!.data)).toBe(true);
    expect(source.status().cameraUp).toBe(true);
    expect(lines.filter((l) => l.msg === 'camera up again')).toHaveLength(1);
  });

  test('refused: counted, nothing published', async () => {
    const port = await closedPort();
    const { store, metrics, source } = make({ port, idleFps: 100, maxFps: 100 });
    await source.start();
    await waitFor(() => source.status().errors >= 2, 5000, 'refused errors');
    expect(await metricValue(metrics.fetchErrors, { reason: 'refused' })).toBeGreaterThanOrEqual(2);
    expect(store.latest).toBeUndefined();
  });

  test('connect_timeout: a connection that never completes', async () => {
    const sockets: net.Socket[] = [];
    const { metrics, source } = make({ connectTimeoutMs: 50, idleFps: 100, maxFps: 100 }, {
      connect: () => {
        const s = new net.Socket(); // never connected: no 'connect' ever comes
        sockets.push(s);
        return s;
      },
    });
    await source.start();
    await waitFor(() => source.status().errors >= 2, 5000, 'connect timeouts');
    expect(await metricValue(metrics.fetchErrors, { reason: 'connect_timeout' })).toBeGreaterThanOrEqual(2);
    expect(sockets.every((s) => s.destroyed || s === sockets[sockets.length - 1])).toBe(true);
  });

  test('too_large aborts as soon as the cap is passed, without reading the rest', async () => {
    let written = 0;
    cam.behaviour = (s) => {
      const chunk = Buffer.alloc(1024, 0xff);
      const pump = () => {
        while (!s.destroyed && written < 50 * 1024 * 1024 && s.write(chunk)) written += chunk.length;
      };
      s.on('drain', pump);
      pump();
    };
    const { metrics, source } = make({ frameMaxBytes: 4096, idleFps: 1 });
    await source.start();
    await waitFor(() => source.status().errors >= 1, 5000, 'too_large');
    expect(await metricValue(metrics.fetchErrors, { reason: 'too_large' })).toBe(1);
    expect(written).toBeLessThan(20 * 1024 * 1024);
  });

  test('stop() during a hanging fetch returns promptly', async () => {
    cam.behaviour = () => undefined; // accept and hang
    const { source } = make({ idleTimeoutMs: 60_000, deadlineMs: 60_000, idleFps: 1 });
    await source.start();
    await waitFor(() => cam.connections === 1, 5000, 'connection');
    const t0 = Date.now();
    await source.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

function checkWhole(b: Buffer): boolean {
  return b[0] === 0xff && b[1] === 0xd8 && b[b.length - 2] === 0xff && b[b.length - 1] === 0xd9;
}

describe('PullSource with an injected clock', () => {
  // Fake time moves only when a test advances it; the camera's sockets stay real, so tests wait
  // (waitFor) for socket outcomes and assert "nothing happened" on fetch attempts, which the source
  // counts synchronously when it connects.
  test('backs off exponentially up to the cap and resets after a success', async () => {
    const clock = new FakeClock();
    const port = await closedPort();
    let connects = 0;
    const { source, store } = make({ port, retryBaseMs: 100, retryMaxMs: 400, idleFps: 1000, maxFps: 1000 }, {
      clock,
      random: () => 1, // the ceiling every time
      connect: (o) => {
        connects++;
        return net.connect({ ...o, port: connects >= 6 ? cam.port : port });
      },
    });
    await source.start();
    const expectConnectsAfter = async (ms: number, n: number) => {
      expect(clock.pending()).toEqual([ms]); // only the backoff wait is pending
      await clock.advanceAsync(ms - 1);
      expect(connects).toBe(n - 1);
      await clock.advanceAsync(1);
      await waitFor(() => connects === n, 5000, `connect #${n}`);
      expect(source.status().fetches).toBe(n);
    };
    await waitFor(() => source.status().errors === 1 && clock.pending().length > 0, 5000, 'first error');
    await expectConnectsAfter(100, 2);
    await waitFor(() => source.status().errors === 2, 5000, 'error 2');
    await expectConnectsAfter(200, 3);
    await waitFor(() => source.status().errors === 3, 5000, 'error 3');
    await expectConnectsAfter(400, 4);
    await waitFor(() => source.status().errors === 4, 5000, 'error 4');
    await expectConnectsAfter(400, 5); // capped
    await waitFor(() => source.status().errors === 5, 5000, 'error 5');
    await clock.advanceAsync(400);
    await waitFor(() => store.latest !== undefined, 5000, 'success on connect 6');
    expect(source.status().errors).toBe(5);
  });

  test('paces at IDLE_FPS while nobody watches, MAX_FPS while watched, and wakes at once for a new client', async () => {
    const clock = new FakeClock();
    const { source, store, metrics } = make({ idleFps: 1, maxFps: 10 }, { clock });
    const fetches = () => source.status().fetches;
    await source.start();
    await waitFor(() => store.latest?.seq === 1, 5000, 'first frame');
    expect(await metricValue(metrics.fetchRate)).toBe(1);
    await clock.advanceAsync(999);
    expect(fetches()).toBe(1);
    await clock.advanceAsync(1);
    await waitFor(() => store.latest?.seq === 2, 5000, 'second idle frame');

    // a watcher arrives 300 ms later: fetched at once (the 100 ms MAX_FPS spacing has passed)
    await clock.advanceAsync(300);
    expect(fetches()).toBe(2);
    const release = store.watch();
    await waitFor(() => store.latest?.seq === 3, 5000, 'frame for the new watcher'); // no fake time passed
    expect(await metricValue(metrics.fetchRate)).toBe(10);
    await clock.advanceAsync(99);
    expect(fetches()).toBe(3);
    await clock.advanceAsync(1);
    await waitFor(() => store.latest?.seq === 4, 5000, 'frame at MAX_FPS');

    release();
    expect(await metricValue(metrics.fetchRate)).toBe(1);
    await clock.advanceAsync(500);
    expect(fetches()).toBe(4);
    await clock.advanceAsync(500);
    await waitFor(() => store.latest?.seq === 5, 5000, 'back to idle pace');
    expect(cam.connections).toBe(5);
  });

  test('IDLE_FPS=0 does not fetch while nobody watches', async () => {
    const clock = new FakeClock();
    const { source, store, metrics } = make({ idleFps: 0, maxFps: 10 }, { clock });
    await source.start();
    await clock.advanceAsync(60_000);
    expect(source.status().fetches).toBe(0);
    expect(clock.pending()).toEqual([]); // paused until woken, no timer
    // target 0 while idle means paused, not unlimited: the paused gauge tells them apart
    expect(await metricValue(metrics.fetchRate)).toBe(0);
    expect(await metricValue(metrics.sourcePaused)).toBe(1);
    const frame = store.next(0, 5000);
    expect(await metricValue(metrics.sourcePaused)).toBe(0);
    expect(await metricValue(metrics.fetchRate)).toBe(10);
    await expect(frame).resolves.toBeDefined();
    expect(cam.connections).toBe(1);
    expect(await metricValue(metrics.sourcePaused)).toBe(1);
  });

  test('a nudge (a client served the cached frame) earns one fetch, spaced by MAX_FPS', async () => {
    const clock = new FakeClock();
    const { source, store } = make({ idleFps: 0, maxFps: 10 }, { clock });
    const fetches = () => source.status().fetches;
    await source.start();
    const f1 = await store.next(0, 5000);
    expect(f1).toBeDefined();
    expect(cam.connections).toBe(1);
    await clock.advanceAsync(0);
    expect(fetches()).toBe(1); // idle, IDLE_FPS=0: nothing more ...
    expect(clock.pending()).toEqual([]); // ... and nothing scheduled
    // many clients get the cached frame: one fetch, but not before 100 ms (MAX_FPS 10) after the last
    store.nudge();
    store.nudge();
    await clock.advanceAsync(99);
    expect(fetches()).toBe(1);
    await clock.advanceAsync(1);
    await waitFor(() => store.latest?.seq === 2, 5000, 'nudged fetch');
    store.nudge(); // emitted: a new frame was published since the last nudge
    await clock.advanceAsync(100);
    await waitFor(() => store.latest?.seq === 3, 5000, 'second nudged fetch');
    await clock.advanceAsync(10_000);
    expect(fetches()).toBe(3); // nudges do not turn into a lasting rate
    expect(cam.connections).toBe(3);
  });

  test('discards the first frame after an idle gap longer than STALE_AFTER_IDLE_MS', async () => {
    const clock = new FakeClock();
    const { source, store, metrics } = make({ idleFps: 0, maxFps: 10, staleAfterIdleMs: 5000 }, { clock });
    await source.start();
    // start-up: no previous frame, so the first one may be an old buffered one -> discarded
    const f1 = await store.next(0, 5000);
    expect(cam.connections).toBe(2);
    expect(frameNo(f1!.data)).toBe(2);
    expect(await metricValue(metrics.staleFramesDiscarded)).toBe(1);

    // short gap: kept
    await clock.advanceAsync(4000);
    const f2 = await store.next(f1!.seq, 5000);
    expect(frameNo(f2!.data)).toBe(3);
    expect(await metricValue(metrics.staleFramesDiscarded)).toBe(1);

    // long gap: discarded, replaced at once
    await clock.advanceAsync(6000);
    const f3 = await store.next(f2!.seq, 5000);
    expect(frameNo(f3!.data)).toBe(5);
    expect(await metricValue(metrics.staleFramesDiscarded)).toBe(2);
    expect(source.status().staleDiscarded).toBe(2);
  });
});

describe('readFrame', () => {
  test('trims zero padding after EOI', async () => {
    cam.behaviour = (s) => s.end(Buffer.concat([jpeg(7), Buffer.alloc(5)]));
    const o = await readFrame(net.connect({ host: '127.0.0.1', port: cam.port }), { connectTimeoutMs: 500, idleTimeoutMs: 500, deadlineMs: 1000, maxBytes: 4096 }, false);
    expect(o.ok).toBe(true);
    if (o.ok) expect(o.data.length).toBe(16);
  });

  test('reads a frame larger than one read from a connected socket (the push path)', async () => {
    const big = jpeg(9, 150_000);
    for (let i = 6; i < big.length - 2; i++) big[i] = i & 0x7f;
    cam.behaviour = (s) => {
      s.write(big.subarray(0, 70_000));
      setTimeout(() => s.end(big.subarray(70_000)), 5);
    };
    const socket = net.connect({ host: '127.0.0.1', port: cam.port });
    await new Promise((resolve) => socket.once('connect', resolve));
    const o = await readFrame(socket, { connectTimeoutMs: 500, idleTimeoutMs: 500, deadlineMs: 2000, maxBytes: 200_000 }, true);
    expect(o.ok).toBe(true);
    if (o.ok) expect(o.data.equals(big)).toBe(true);
  });

  test('a camera that trickles bytes within the idle timeout is read whole; a longer pause fails', async () => {
    const limits = { connectTimeoutMs: 500, idleTimeoutMs: 150, deadlineMs: 3000, maxBytes: 4096 };
    const trickle = (gapMs: number) => (s: net.Socket, n: number) => {
      const b = jpeg(n, 64);
      let at = 0;
      const step = () => {
        if (s.destroyed) return;
        if (at + 8 >= b.length) return s.end(b.subarray(at));
        s.write(b.subarray(at, at + 8));
        at += 8;
        setTimeout(step, gapMs);
      };
      step();
    };
    cam.behaviour = trickle(60); // 8 writes over ~480 ms: longer than the idle timeout in all, never idle
    const whole = await readFrame(net.connect({ host: '127.0.0.1', port: cam.port }), limits, false);
    expect(whole.ok).toBe(true);
    cam.behaviour = trickle(400);
    const idle = await readFrame(net.connect({ host: '127.0.0.1', port: cam.port }), limits, false);
    expect(idle).toMatchObject({ ok: false, reason: 'idle_timeout', bytes: 8 });
  });

  test('a reader keeps its gathering buffer for frames like its last, not after an oversized answer', async () => {
    const reader = new FrameReader();
    const limits = { connectTimeoutMs: 500, idleTimeoutMs: 500, deadlineMs: 3000, maxBytes: 3 * 2 ** 20 };
    const read = async (answer: Buffer) => {
      cam.behaviour = (s) => s.end(answer);
      return reader.read(net.connect({ host: '127.0.0.1', port: cam.port, onread: reader.onread }), limits, false);
    };
    expect(await read(jpeg(1, 2 ** 20))).toMatchObject({ ok: true });
    expect(reader.retainedBytes).toBeGreaterThanOrEqual(2 ** 20); // kept: the next frame is likely as large
    expect(await read(jpeg(2, 10_000))).toMatchObject({ ok: true });
    expect(reader.retainedBytes).toBe(0); // frames got small: let the megabyte go
    expect(await read(jpeg(3, 10_000))).toMatchObject({ ok: true });
    expect(reader.retainedBytes).toBeGreaterThan(0);
    expect(reader.retainedBytes).toBeLessThanOrEqual(256 * 1024);
    expect(await read(jpeg(4, 4 * 2 ** 20))).toMatchObject({ ok: false, reason: 'too_large' });
    expect(reader.retainedBytes).toBe(0);
    const after = await read(jpeg(5, 10_000));
    expect(after.ok && frameNo(after.data)).toBe(5);
  });
});
