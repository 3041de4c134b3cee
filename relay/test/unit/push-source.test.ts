import net from 'node:net';
import { CidrList } from '@camrelay/common';
import { FrameStore } from '../../src/frame-store';
import { PushSource } from '../../src/source/push';
import { captureLog, FakeClock, frameNo, jpeg, metricValue, testMetrics, waitFor } from '../../../test-support';

let source: PushSource | undefined;
afterEach(async () => {
  await source?.stop();
  source = undefined;
});

// Timeouts (idle, deadline, the up window) run on fake time; the pushes are real loopback sockets.
function make(allow: string[] = [], over: { upWindowMs?: number; maxConnections?: number } = {}) {
  const clock = new FakeClock();
  const store = new FrameStore(clock);
  const metrics = testMetrics('push');
  const { log, lines } = captureLog();
  source = new PushSource({
    ingest: { host: '127.0.0.1', port: 0, allow: new CidrList(allow), maxConnections: over.maxConnections ?? 4, upWindowMs: over.upWindowMs ?? 5000 },
    limits: { idleTimeoutMs: 200, deadlineMs: 1000, frameMaxBytes: 2048 },
    store, metrics, log, clock,
  });
  return { store, metrics, lines, source, clock };
}

/** Connects like a pushing camera, sends data, closes; resolves when the relay closed its side. */
function push(port: number, data: Buffer, end = true): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('connect', () => (end ? s.end(data) : s.write(data)));
    s.resume();
  });
}

describe('PushSource', () => {
  test('each connection delivers one whole JPEG; the camera is up while frames arrive', async () => {
    const { store, metrics, source, lines, clock } = make([], { upWindowMs: 300 });
    await source.start();
    expect(source.port).toBeGreaterThan(0);
    await push(source.port, jpeg(1));
    await waitFor(() => store.latest !== undefined, 2000, 'frame 1');
    expect(frameNo(store.latest!.data)).toBe(1);
    await push(source.port, jpeg(2));
    await waitFor(() => store.latest?.seq === 2, 2000, 'frame 2');
    expect(await metricValue(metrics.frames)).toBe(2);
    expect(await metricValue(metrics.cameraUp)).toBe(1);
    expect(source.status()).toMatchObject({ mode: 'push', cameraUp: true, frames: 2, fetches: 2 });
    // no frame within the window -> down, logged once
    await clock.advanceAsync(299);
    expect(source.status().cameraUp).toBe(true);
    await clock.advanceAsync(1);
    expect(source.status().cameraUp).toBe(false);
    expect(await metricValue(metrics.cameraUp)).toBe(0);
    expect(lines.filter((l) => l.msg === 'camera down')).toHaveLength(1);
  });

  test('broken pushes are counted by reason and never published', async () => {
    const { store, metrics, source, clock } = make();
    await source.start();
    await push(source.port, jpeg(1).subarray(0, 10));
    await push(source.port, Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    await push(source.port, Buffer.alloc(0));
    await push(source.port, jpeg(4, 5000));
    const silent = push(source.port, jpeg(5).subarray(0, 6), false); // then silence -> idle timeout
    await waitFor(() => source.status().fetches === 5 && source.status().errors === 4, 3000, 'the silent push accepted');
    await clock.advanceAsync(199);
    expect(source.status().errors).toBe(4);
    await clock.advanceAsync(1);
    await silent;
    expect(source.status().errors).toBe(5);
    for (const reason of ['truncated', 'not_jpeg', 'empty', 'too_large', 'idle_timeout']) {
      expect(await metricValue(metrics.fetchErrors, { reason })).toBe(1);
    }
    expect(store.latest).toBeUndefined();
  });

  test('INGEST_ALLOW_CIDRS refuses other sources and counts them', async () => {
    const { store, metrics, source } = make(['10.0.0.0/8']);
    await source.start();
    await push(source.port, jpeg(1));
    await waitFor(async () => (await metricValue(metrics.clientsRejected, { reason: 'push_not_allowed' })) === 1, 2000, 'rejection');
    expect(store.latest).toBeUndefined();
  });

  test('over INGEST_MAX_CONNECTIONS a push is closed at once and counted; the slot frees when a push ends', async () => {
    const { store, metrics, source, lines, clock } = make([], { maxConnections: 2 });
    await source.start();
    const held = [push(source.port, jpeg(1).subarray(0, 6), false), push(source.port, jpeg(2).subarray(0, 6), false)];
    await waitFor(() => source.status().fetches === 2, 2000, 'two pushes open');
    await push(source.port, jpeg(3)); // closed at once, not read
    expect(await metricValue(metrics.clientsRejected, { reason: 'push_busy' })).toBe(1);
    expect(lines.filter((l) => l.msg === 'too many concurrent push connections; closing the newest')).toHaveLength(1);
    await clock.advanceAsync(200);
    await Promise.all(held); // idle timeout ends them
    await push(source.port, jpeg(4));
    await waitFor(() => store.latest !== undefined, 2000, 'frame after the slots freed');
    expect(frameNo(store.latest!.data)).toBe(4);
  });

  test('stop() closes the listener and open pushes', async () => {
    const { source } = make();
    await source.start();
    const port = source.port;
    const hanging = push(port, jpeg(1).subarray(0, 4), false);
    await waitFor(() => source.status().fetches === 1, 2000, 'the push accepted');
    await source.stop();
    await hanging;
    await source.stop();
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});
