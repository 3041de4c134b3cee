import { Backoff } from '../../src/backoff';
import { RateLimitedLog } from '../../src/logger';
import { checkJpeg } from '../../src/jpeg';

describe('Backoff', () => {
  test('ceiling doubles up to the cap and resets', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, jitter: 'none' });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(b.failures).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  test('full jitter is uniform between the floor and the ceiling', () => {
    let r = 0;
    const b = new Backoff({ baseMs: 100, maxMs: 10_000, minMs: 10, random: () => r });
    expect(b.next()).toBe(10);
    r = 1;
    expect(b.next()).toBe(200);
    r = 0.5;
    expect(b.next()).toBe(Math.round(10 + 0.5 * 390));
  });

  test('rejects nonsense parameters', () => {
    expect(() => new Backoff({ baseMs: 0, maxMs: 10 })).toThrow();
    expect(() => new Backoff({ baseMs: 10, maxMs: 5 })).toThrow();
  });
});

describe('RateLimitedLog', () => {
  test('lets one line through per interval per key and reports the suppressed count', () => {
    let now = 0;
    const r = new RateLimitedLog(1000, () => now);
    expect(r.check('a')).toBe(0);
    expect(r.check('a')).toBe(-1);
    expect(r.check('b')).toBe(0);
    expect(r.check('a')).toBe(-1);
    now = 1000;
    expect(r.check('a')).toBe(2);
  });
});

describe('checkJpeg', () => {
  const whole = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
  test('accepts SOI..EOI and tolerates zero padding after EOI', () => {
    expect(checkJpeg(whole)).toEqual({ ok: true, length: whole.length });
    expect(checkJpeg(Buffer.concat([whole, Buffer.alloc(3)]))).toEqual({ ok: true, length: whole.length });
  });
  test('names the reason for everything else', () => {
    expect(checkJpeg(Buffer.alloc(0))).toEqual({ ok: false, reason: 'empty' });
    expect(checkJpeg(Buffer.from('HTTP/1.1 200 OK'))).toEqual({ ok: false, reason: 'not_jpeg' });
    expect(checkJpeg(whole.subarray(0, whole.length - 1))).toEqual({ ok: false, reason: 'truncated' });
    expect(checkJpeg(Buffer.concat([whole, Buffer.from('junk')]))).toEqual({ ok: false, reason: 'truncated' });
  });
});
