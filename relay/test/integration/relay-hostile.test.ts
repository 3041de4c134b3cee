/**
 * Hostile clients against the real relay process (loopback only, bounded counts): garbage on both
 * client ports, oversized HTTP heads, resets in the middle of a raw frame and of an MJPEG stream,
 * and a burst of connections far over MAX_CLIENTS that never read. Afterwards the daemon must still
 * run, serve whole frames, hold no client slots and have logged no crash.
 */
import net from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { CameraProc, killAllChildren, rawFetch, RelayProc, sleep, startCamera, startRelay, waitFor } from '../../../test-support';

jest.setTimeout(90_000);

/** Connects, runs `act` once connected, resolves with what came back when the socket closes. */
function poke(port: number, act: (s: net.Socket) => void, timeoutMs = 15_000): Promise<{ head: string; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let head = '';
    let error: string | undefined;
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('data', (d: Buffer) => {
      if (head.length < 64) head += d.toString('latin1');
    });
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ head, error });
    });
    s.on('connect', () => act(s));
  });
}

/** Connects and resets the connection as soon as the first bytes of the answer arrive. */
function resetOnFirstByte(port: number, request?: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      if (request) s.write(request);
    });
    s.on('error', () => undefined);
    s.once('data', () => s.resetAndDestroy());
    s.on('close', () => resolve());
  });
}

describe('hostile clients', () => {
  let cam: CameraProc;
  let relay: RelayProc;
  beforeAll(async () => {
    // 1 MiB frames, so a reset lands in the middle of a write
    cam = await startCamera(['--size-kb', '1024']);
    relay = await startRelay({
      CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), MAX_CLIENTS: '200', MAX_CLIENTS_PER_IP: '200',
      CLIENT_WRITE_TIMEOUT_MS: '1500', HTTP_HEADERS_TIMEOUT_MS: '1000', MAX_FPS: '10',
    });
    await waitFor(async () => checkJpeg((await rawFetch(relay.clientPort)).data).ok, 15_000, 'first frame');
  });
  afterAll(() => killAllChildren());

  test('garbage, oversized heads, resets mid-frame and a non-reading flood leave the relay serving', async () => {
    // garbage: raw port (cut or answered with a whole frame), HTTP port (400), huge head (431)
    const raw = await poke(relay.clientPort, (s) => s.write(Buffer.alloc(64 * 1024, 0x41)));
    expect(raw.head === '' || raw.head.startsWith('\xff\xd8')).toBe(true);
    expect((await poke(relay.httpPort, (s) => s.write('\x00\x01GARBAGE\r\n\r\n'))).head).toMatch(/^HTTP\/1\.1 400/);
    expect((await poke(relay.httpPort, (s) => s.write(`GET / HTTP/1.1\r\nX: ${'a'.repeat(64 * 1024)}\r\n\r\n`))).head).toMatch(/^HTTP\/1\.1 431/);

    // resets in the middle of a raw frame, a snapshot and an MJPEG stream
    for (let i = 0; i < 20; i++) {
      await Promise.all([
        resetOnFirstByte(relay.clientPort),
        resetOnFirstByte(relay.httpPort, 'GET /snapshot.jpg HTTP/1.1\r\nHost: x\r\n\r\n'),
        resetOnFirstByte(relay.httpPort, 'GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n'),
      ]);
    }
    // resets right after connect, before the relay even looked at the socket
    await Promise.all(Array.from({ length: 100 }, (_, i) => new Promise<void>((resolve) => {
      const s = net.connect({ port: i % 2 ? relay.clientPort : relay.httpPort, host: '127.0.0.1' }, () => s.resetAndDestroy());
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    })));

    // a flood 5x over MAX_CLIENTS that never reads (half raw, half MJPEG)
    const flood: net.Socket[] = [];
    for (let i = 0; i < 1000; i++) {
      const port = i % 2 ? relay.clientPort : relay.httpPort;
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => undefined);
      if (port === relay.httpPort) s.on('connect', () => s.write('GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.pause();
      flood.push(s);
    }
    await waitFor(async () => (await relay.metric('relay_clients_rejected_total', { reason: 'max_clients' })) > 0, 10_000, 'flood refused');
    expect(await relay.metric('relay_clients', { protocol: 'raw' }) + (await relay.metric('relay_clients', { protocol: 'mjpeg' }))).toBeLessThanOrEqual(200);
    // the non-readers are cut after CLIENT_WRITE_TIMEOUT_MS, freeing the slots by themselves
    await waitFor(async () => checkJpeg((await rawFetch(relay.clientPort, '127.0.0.1', 3000)).data).ok, 20_000, 'a whole frame during the flood');
    for (const s of flood) s.destroy();

    await waitFor(async () => (await relay.metric('relay_clients', { protocol: 'raw' })) === 0 && (await relay.metric('relay_clients', { protocol: 'mjpeg' })) === 0, 10_000, 'all slots free');
    await sleep(200); // asserts that nothing happens: the relay stays alive after the flood
    expect(relay.child.proc.exitCode).toBeNull();
    expect(checkJpeg((await rawFetch(relay.clientPort)).data).ok).toBe(true);
    const logs = relay.child.logs();
    expect(logs.filter((l) => (l.level as number) >= 50)).toEqual([]); // no error/fatal lines
    expect(logs.length).toBeLessThan(50); // refusals are rate-limited, nothing per connection
  });
});
