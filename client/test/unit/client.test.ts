import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { parseClientArgs, run } from '../../src/client';

/** A whole JPEG (SOI ... EOI) whose 5th byte is n. */
function jpeg(n: number, size = 16): Buffer {
  const b = Buffer.alloc(size, 0x11);
  b.set([0xff, 0xd8, 0xff, 0xe0], 0);
  b.writeUInt16BE(n & 0xffff, 4);
  b.set([0xff, 0xd9], size - 2);
  return b;
}

/** A one-shot camera on loopback: connection n gets behaviour(socket, n). */
class TestCamera {
  private connections = 0;
  private readonly server: net.Server;
  constructor(behaviour: (s: net.Socket, n: number) => void) {
    this.server = net.createServer((s) => {
      s.on('error', () => undefined);
      behaviour(s, ++this.connections);
    });
  }
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }
  stop(): Promise<void> {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('test client', () => {
  test('parses its flags with defaults', () => {
    expect(parseClientArgs(['--port', '8080'])).toEqual({ host: '127.0.0.1', port: 8080, frames: 10, concurrency: 1, timeoutMs: 10_000 });
    expect(parseClientArgs(['--host', 'vps', '--port', '1', '--frames', '5', '--concurrency', '2', '--out', 'd', '--timeout-ms', '50'])).toEqual({
      host: 'vps', port: 1, frames: 5, concurrency: 2, out: 'd', timeoutMs: 50,
    });
    expect(parseClientArgs(['--help'])).toBe('help');
    expect(parseClientArgs(['--port=9', '--frames=3'])).toMatchObject({ port: 9, frames: 3 });
  });

  test.each([
    [[], /--port is required/],
    [['--port', '0'], /invalid --port="0": expected an integer from 1 to 65535/],
    [['--port', '1', '--frames', 'x'], /invalid --frames="x"/],
    [['--port', '1', '--bogus'], /unknown argument "--bogus"/],
    [['--port', '1', 'stray'], /unknown argument "stray"/],
    [['--port'], /--port needs a value/],
    [['--host', '--port', '1'], /--host needs a value/],
  ])('%j is rejected', (argv, msg) => {
    expect(() => parseClientArgs(argv)).toThrow(msg);
  });

  test('counts whole and broken frames and reports latency percentiles', async () => {
    const cam = new TestCamera((s, n) => s.end(n % 2 === 0 ? jpeg(n).subarray(0, 8) : jpeg(n)));
    const port = await cam.start();
    try {
      const s = await run({ host: '127.0.0.1', port, frames: 10, concurrency: 2, timeoutMs: 2000 });
      expect(s.results).toHaveLength(10);
      expect(s.ok).toBe(5);
      expect(s.bad).toBe(5);
      expect(s.results.filter((r) => !r.ok).every((r) => r.reason === 'truncated')).toBe(true);
      expect(s.p50Ms).toBeGreaterThan(0);
      expect(s.p99Ms).toBeGreaterThanOrEqual(s.p50Ms);
      expect(checkJpeg(jpeg(1)).ok).toBe(true);
    } finally {
      await cam.stop();
    }
  });
});
