import { checkJpeg } from '@camrelay/common';
import { parseClientArgs, run } from '../../src/client';
import { jpeg, TestCamera } from './support';

describe('test client', () => {
  test('parses its flags with defaults', () => {
    expect(parseClientArgs(['--port', '8080'])).toEqual({ host: '127.0.0.1', port: 8080, frames: 10, concurrency: 1, timeoutMs: 10_000 });
    expect(parseClientArgs(['--host', 'vps', '--port', '1', '--frames', '5', '--concurrency', '2', '--out', 'd', '--timeout-ms', '50'])).toEqual({
      host: 'vps', port: 1, frames: 5, concurrency: 2, out: 'd', timeoutMs: 50,
    });
    expect(parseClientArgs(['--help'])).toBe('help');
  });

  test.each([
    [[], /--port is required/],
    [['--port', '0'], /invalid --port="0": expected an integer from 1 to 65535/],
    [['--port', '1', '--frames', 'x'], /invalid --frames="x"/],
    [['--port', '1', '--bogus'], /unknown argument "--bogus"/],
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
