/**
 * Signing in: the signed, expiring session cookie (session.ts), the per-address limit on failed
 * credential checks, where the browser goes afterwards and the same-origin check (login.ts), and the
 * sign-in form's credential check (auth.ts). Fake time throughout.
 */
import crypto from 'node:crypto';
import { parseSetCookie } from 'cookie';
import { FakeClock } from '../../../test-support';
import { ViewerAuth } from '../../src/outlets/auth';
import { LOGIN_MAX_FAILURES, LOGIN_WINDOW_MS, LoginThrottle, safeNext, sameOrigin, throttleKey } from '../../src/outlets/login';
import { deriveSessionKey, KEY_LABEL, SESSION_COOKIE, SESSION_KEY_SCRYPT, SessionCookies, type SessionOptions } from '../../src/outlets/session';

const DAY = 86_400_000;
const creds: SessionOptions = { viewerUser: 'viewer', viewerPassword: 'correct horse', viewerToken: 'tok-12345678', ttlMs: 7 * DAY, path: '/camrelay' };
const cookieOf = (setCookie: string) => `other=1; ${SESSION_COOKIE}=${parseSetCookie(setCookie).value}; x=y`;

describe('SessionCookies', () => {
  /** a SessionCookies with its key derived */
  async function sessions(o: SessionOptions = creds, now?: () => number): Promise<SessionCookies> {
    const s = new SessionCookies(o, now);
    await s.start();
    return s;
  }

  test('the cookie is HttpOnly, Secure, SameSite=Lax, scoped to the base path, with Max-Age = SESSION_TTL_MS', async () => {
    const s = await sessions(creds, () => 1_000_000);
    const c = parseSetCookie(s.issue());
    expect(c).toMatchObject({ name: '__Secure-camrelay-session', httpOnly: true, secure: true, sameSite: 'lax', path: '/camrelay', maxAge: 7 * 86_400 });
    expect(c.value).toMatch(/^1\.\d+\.[\w-]{22}\.[\w-]{43}$/);
    // no credential in the cookie
    for (const secret of ['correct horse', 'tok-12345678']) expect(s.issue()).not.toContain(secret);
    expect(parseSetCookie(s.clear())).toMatchObject({ name: SESSION_COOKIE, value: '', maxAge: 0, path: '/camrelay', secure: true, httpOnly: true });
  });

  test('valid until SESSION_TTL_MS has passed (fake time), also for a restarted relay with the same credentials', async () => {
    const clock = new FakeClock();
    const s = await sessions(creds, () => clock.now());
    const header = cookieOf(s.issue());
    expect(s.check(header)).toBe('valid');
    expect((await sessions(creds, () => clock.now())).check(header)).toBe('valid');
    clock.advance(7 * DAY - 1000);
    expect(s.check(header)).toBe('valid');
    clock.advance(1000);
    expect(s.check(header)).toBe('invalid');
  });

  test.each([
    ['the password changes', { viewerPassword: 'another horse' }],
    ['the token changes', { viewerToken: 'tok-87654321' }],
    ['the user name changes', { viewerUser: 'admin' }],
    ['SESSION_SECRET is set', { sessionSecret: 'a-session-secret-0123' }],
  ])('revoked when %s', async (_what, change) => {
    const header = cookieOf((await sessions()).issue());
    expect((await sessions()).check(header)).toBe('valid');
    expect((await sessions({ ...creds, ...change })).check(header)).toBe('invalid');
  });

  test('a changed SESSION_SECRET revokes too, and the same one keeps cookies valid', async () => {
    const a = { ...creds, sessionSecret: 'a-session-secret-0123' };
    const header = cookieOf((await sessions(a)).issue());
    expect((await sessions(a)).check(header)).toBe('valid');
    expect((await sessions({ ...a, sessionSecret: 'a-session-secret-0124' })).check(header)).toBe('invalid');
  });

  test('forged, extended or garbled values are refused; no cookie is "none"', async () => {
    const clock = new FakeClock();
    const s = await sessions(creds, () => clock.now());
    const value = parseSetCookie(s.issue()).value as string;
    const [v, exp, nonce, mac] = value.split('.');
    const bad = [
      `${v}.${Number(exp) + 86_400}.${nonce}.${mac}`, // a longer life
      `${v}.${exp}.${nonce}.${mac.slice(0, -2)}AA`, // another MAC
      `${v}.${exp}.${nonce}.`, // no MAC
      `2.${exp}.${nonce}.${mac}`, // another version
      `${v}.${exp}.${nonce}`, 'garbage', '', `${value}.x`,
    ];
    for (const b of bad) expect(s.check(`${SESSION_COOKIE}=${b}`)).toBe('invalid');
    expect(s.check(undefined)).toBe('none');
    expect(s.check('other=1')).toBe('none');
    expect(s.check(`${SESSION_COOKIE}x=1`)).toBe('none');
  });

  test('the MAC is compared with crypto.timingSafeEqual', async () => {
    const s = await sessions();
    const header = cookieOf(s.issue());
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    try {
      expect(s.check(header)).toBe('valid');
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });

  describe('a stolen cookie is no cheap test of guessed credentials', () => {
    /** a cookie value signed with `key`, as an attacker who guessed the credentials would make it */
    const forge = (key: Buffer, expiry = 4_000_000_000) => {
      const payload = `1.${expiry}.${crypto.randomBytes(16).toString('base64url')}`;
      return `${SESSION_COOKIE}=${payload}.${crypto.createHmac('sha256', key).update(payload).digest('base64url')}`;
    };
    const material = JSON.stringify([creds.viewerToken, creds.viewerUser, creds.viewerPassword]);

    test('the key is no fast hash of the credentials (one HMAC per guess)', async () => {
      const s = await sessions();
      // the old key: HMAC-SHA256(label, credentials)
      const fast = crypto.createHmac('sha256', 'camrelay sign-in cookie v1').update(material).digest();
      expect(s.check(forge(fast))).toBe('invalid');
      expect(s.check(forge(crypto.createHash('sha256').update(material).digest()))).toBe('invalid');
    });

    test('it is scrypt (N >= 2^14, r = 8) of the credentials, salted with the label and SESSION_SECRET', async () => {
      expect(SESSION_KEY_SCRYPT.N).toBeGreaterThanOrEqual(2 ** 14);
      expect(SESSION_KEY_SCRYPT.r).toBe(8);
      const key = crypto.scryptSync(material, JSON.stringify([KEY_LABEL, null]), 32, SESSION_KEY_SCRYPT);
      expect((await sessions()).check(forge(key))).toBe('valid');
      const secret = { ...creds, sessionSecret: 'a-session-secret-0123' };
      const withSecret = crypto.scryptSync(material, JSON.stringify([KEY_LABEL, secret.sessionSecret]), 32, SESSION_KEY_SCRYPT);
      expect((await sessions(secret)).check(forge(withSecret))).toBe('valid');
      expect((await sessions(secret)).check(forge(key))).toBe('invalid');
      expect(await deriveSessionKey(creds)).toEqual(key);
    });

    test('derived once, asynchronously (never per request, never blocking the event loop)', async () => {
      const scrypt = jest.spyOn(crypto, 'scrypt');
      const scryptSync = jest.spyOn(crypto, 'scryptSync');
      try {
        const s = new SessionCookies(creds);
        expect(scrypt).not.toHaveBeenCalled(); // the constructor does nothing
        expect(() => s.issue()).toThrow(/start\(\)/);
        await Promise.all([s.start(), s.start()]);
        await s.start();
        const header = cookieOf(s.issue());
        for (let i = 0; i < 100; i++) expect(s.check(header)).toBe('valid');
        expect(scrypt).toHaveBeenCalledTimes(1);
        expect(scryptSync).not.toHaveBeenCalled();
      } finally {
        scrypt.mockRestore();
        scryptSync.mockRestore();
      }
    });
  });
});

describe('LoginThrottle (fake time)', () => {
  test(`${LOGIN_MAX_FAILURES} failures in a minute block the address until the oldest is a minute old`, () => {
    const clock = new FakeClock();
    const t = new LoginThrottle({}, () => clock.now());
    for (let i = 1; i < LOGIN_MAX_FAILURES; i++) {
      expect(t.fail('198.51.100.7')).toBe(false);
      expect(t.retryAfterMs('198.51.100.7')).toBe(0);
      clock.advance(1000);
    }
    expect(t.fail('198.51.100.7')).toBe(true);
    // the first failure was 4 s ago: 56 s to go
    expect(t.retryAfterMs('198.51.100.7')).toBe(LOGIN_WINDOW_MS - 4000);
    // another address is not affected
    expect(t.retryAfterMs('198.51.100.8')).toBe(0);
    clock.advance(LOGIN_WINDOW_MS - 4000 - 1);
    expect(t.retryAfterMs('198.51.100.7')).toBe(1);
    clock.advance(1);
    // the oldest failure left the window: one more try, and a failure blocks again for a second
    expect(t.retryAfterMs('198.51.100.7')).toBe(0);
    expect(t.fail('198.51.100.7')).toBe(true);
    expect(t.retryAfterMs('198.51.100.7')).toBe(1000);
  });

  test('failures spread over more than a minute never block', () => {
    const clock = new FakeClock();
    const t = new LoginThrottle({}, () => clock.now());
    for (let i = 0; i < 20; i++) {
      expect(t.fail('a')).toBe(false);
      expect(t.retryAfterMs('a')).toBe(0);
      clock.advance(LOGIN_WINDOW_MS / (LOGIN_MAX_FAILURES - 1) + 1);
    }
  });

  test('a success forgets the failures; old entries are dropped; at most maxTracked addresses are kept', () => {
    const clock = new FakeClock();
    const t = new LoginThrottle({ maxTracked: 3 }, () => clock.now());
    for (let i = 0; i < 4; i++) t.fail('a');
    t.succeed('a');
    expect(t.fail('a')).toBe(false);
    expect(t.retryAfterMs('a')).toBe(0);
    for (const a of ['b', 'c', 'd', 'e']) t.fail(a);
    expect(t.tracked).toBe(3);
    clock.advance(LOGIN_WINDOW_MS);
    for (const a of ['c', 'd', 'e']) expect(t.retryAfterMs(a)).toBe(0);
    expect(t.tracked).toBe(0);
  });

  test('IPv6 clients count per /64 (one user holds a whole /64); IPv4 per address', () => {
    const t = new LoginThrottle({}, () => 0);
    for (let i = 1; i <= LOGIN_MAX_FAILURES; i++) t.fail(`2001:db8:1:2::${i}`);
    // a fresh address of the same /64 is just as blocked, written any way
    for (const a of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002::99', '2001:db8:1:2:0:0:10.0.0.1', '[2001:db8:1:2::7]'.slice(1, -1)]) {
      expect([a, t.retryAfterMs(a) > 0]).toEqual([a, true]);
    }
    expect(t.retryAfterMs('2001:db8:1:3::1')).toBe(0);
    expect(t.tracked).toBe(1);
    // a success anywhere in the /64 forgets it
    t.succeed('2001:db8:1:2::abcd');
    expect(t.retryAfterMs('2001:db8:1:2::1')).toBe(0);
    // IPv4: neighbours are other clients
    for (let i = 0; i < LOGIN_MAX_FAILURES; i++) t.fail('198.51.100.7');
    expect(t.retryAfterMs('198.51.100.7')).toBeGreaterThan(0);
    expect(t.retryAfterMs('198.51.100.8')).toBe(0);
  });

  test('throttleKey: IPv4 as is (also IPv4-mapped), IPv6 as its /64', () => {
    expect(throttleKey('198.51.100.7')).toBe('198.51.100.7');
    expect(throttleKey('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(throttleKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(throttleKey('2001:DB8:0:0:1::')).toBe('2001:db8:0:0::/64');
    expect(throttleKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(throttleKey('::1')).toBe('0:0:0:0::/64');
    expect(throttleKey('::')).toBe('0:0:0:0::/64');
    expect(throttleKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(throttleKey('1:2:3:4:5:6:192.0.2.1')).toBe('1:2:3:4::/64');
    expect(throttleKey('1:2:3::4:5:6')).toBe('1:2:3:0::/64');
  });

  test('a flood of addresses cannot make it forget a blocked one: newcomers share one overflow entry instead', () => {
    const clock = new FakeClock();
    const t = new LoginThrottle({ maxTracked: 100 }, () => clock.now());
    for (let i = 0; i < LOGIN_MAX_FAILURES; i++) t.fail('198.51.100.7');
    const blocked = t.retryAfterMs('198.51.100.7');
    expect(blocked).toBe(LOGIN_WINDOW_MS);
    clock.advance(1000);
    // 1000 other addresses fail once each (an IPv6 attacker has 65536 /64s in a /48)
    for (let i = 0; i < 1000; i++) t.fail(`2001:db8:${i.toString(16)}::1`);
    expect(t.tracked).toBeLessThanOrEqual(100);
    expect(t.retryAfterMs('198.51.100.7')).toBe(blocked - 1000);
    // the flood's own guesses went to the overflow entry: limited like one address, 5 per window in all
    expect(t.retryAfterMs('203.0.113.99')).toBeGreaterThan(0);
    expect(t.retryAfterMs('2001:db8:ffff::1')).toBeGreaterThan(0);
    // the ones it did remember keep their own state
    expect(t.retryAfterMs('2001:db8:0::1')).toBe(0);
    // once the window has passed, everything is forgotten and newcomers are tracked again
    clock.advance(LOGIN_WINDOW_MS);
    expect(t.retryAfterMs('198.51.100.7')).toBe(0);
    expect(t.retryAfterMs('203.0.113.99')).toBe(0);
    expect(t.fail('203.0.113.99')).toBe(false);
    expect(t.tracked).toBe(1);
  });

  test('expired addresses make room before the overflow entry is used', () => {
    const clock = new FakeClock();
    const t = new LoginThrottle({ maxTracked: 3 }, () => clock.now());
    for (const a of ['a', 'b', 'c']) t.fail(a);
    clock.advance(LOGIN_WINDOW_MS / 2);
    t.fail('c'); // c failed recently: it stays
    clock.advance(LOGIN_WINDOW_MS / 2);
    // a and b left the window: the newcomer takes a place of its own
    for (let i = 0; i < LOGIN_MAX_FAILURES; i++) t.fail('d');
    expect(t.retryAfterMs('d')).toBeGreaterThan(0);
    expect(t.retryAfterMs('e')).toBe(0);
    expect(t.tracked).toBe(2);
  });
});

describe('after signing in', () => {
  test('safeNext keeps paths of this site under the base path and nothing else', () => {
    expect(safeNext('/cam/front/?fps=5', '')).toBe('/cam/front/?fps=5');
    expect(safeNext('/camrelay/cam/front/', '/camrelay')).toBe('/camrelay/cam/front/');
    for (const bad of [null, undefined, '', 'https://evil.example/', '//evil.example/', '/\\evil.example', '/camrelay/../x', 'cam/front/', '/ x', '/a\u0000b', `/${'a'.repeat(2000)}`]) {
      expect(safeNext(bad, '/camrelay')).toBe('/camrelay/');
    }
    expect(safeNext('/other/', '/camrelay')).toBe('/camrelay/');
    expect(safeNext('//evil.example/', '')).toBe('/');
    expect(safeNext('/%2e%2e/x', '')).toBe('/x');
  });

  test('safeNext: dot segments can never resolve to a protocol-relative //host', () => {
    for (const bad of ['/..//evil.com', '/.//evil.com', '/%2e%2e//evil.com', '/%2e//evil.com', '/a/..//evil.com', '/a/../..//evil.com/x?y=1']) {
      expect([bad, safeNext(bad, '')]).toEqual([bad, '/']);
    }
    expect(safeNext('/camrelay/..//evil.com', '/camrelay')).toBe('/camrelay/');
    // a result is never off-site, whatever goes in
    for (const next of ['/..//evil.com', '/camrelay/..//evil.com', '/camrelay/x/..//evil.com', '/./../\\evil.com', '/x/../..//a']) {
      for (const base of ['', '/camrelay']) {
        const out = safeNext(next, base);
        expect(new URL(out, 'https://cam.example/').origin).toBe('https://cam.example');
      }
    }
  });

  test('sameOrigin: fetch metadata must say same-origin, else Origin must be https://<host>; scripts pass', () => {
    expect(sameOrigin({ origin: 'https://cam.example:8443' }, 'cam.example:8443')).toBe(true);
    expect(sameOrigin({ origin: 'https://CAM.example' }, 'cam.example')).toBe(true);
    expect(sameOrigin({ origin: 'http://cam.example' }, 'cam.example')).toBe(false);
    expect(sameOrigin({ origin: 'https://evil.example' }, 'cam.example')).toBe(false);
    expect(sameOrigin({ origin: 'null' }, 'cam.example')).toBe(false);
    expect(sameOrigin({ origin: 'https://cam.example' }, undefined)).toBe(false);
    expect(sameOrigin({ 'sec-fetch-site': 'cross-site' }, 'cam.example')).toBe(false);
    expect(sameOrigin({ 'sec-fetch-site': 'same-site', origin: 'https://cam.example' }, 'cam.example')).toBe(false);
    expect(sameOrigin({ 'sec-fetch-site': 'same-origin', origin: 'https://cam.example' }, 'cam.example')).toBe(true);
    // a no-referrer page's form: Origin null, but the browser says same-origin
    expect(sameOrigin({ 'sec-fetch-site': 'same-origin', origin: 'null' }, 'cam.example')).toBe(true);
    expect(sameOrigin({ 'sec-fetch-site': 'none' }, 'cam.example')).toBe(false);
    expect(sameOrigin({}, 'cam.example')).toBe(true);
  });

  test('the form accepts user + password, or the token as the password', () => {
    const both = new ViewerAuth({ viewerUser: 'alice', viewerPassword: 'correct horse', viewerToken: 'tok-12345678' });
    expect(both.formFields).toBe('both');
    expect(both.checkForm('alice', 'correct horse')).toBe(true);
    expect(both.checkForm('', 'tok-12345678')).toBe(true);
    expect(both.checkForm('anyone', 'tok-12345678')).toBe(true);
    expect(both.checkForm('bob', 'correct horse')).toBe(false);
    expect(both.checkForm('alice', '')).toBe(false);
    expect(both.checkForm('', '')).toBe(false);
    const token = new ViewerAuth({ viewerToken: 'tok-12345678' });
    expect(token.formFields).toBe('token');
    expect(token.checkForm('viewer', 'tok-12345678')).toBe(true);
    expect(token.checkForm('viewer', 'correct horse')).toBe(false);
    const password = new ViewerAuth({ viewerPassword: 'correct horse' });
    expect(password.formFields).toBe('password');
    expect(password.checkForm('viewer', 'correct horse')).toBe(true);
    expect(password.checkForm('viewer', 'tok-12345678')).toBe(false);
  });

  test('presented: only credentials of a configured kind count towards the limit', () => {
    const token = new ViewerAuth({ viewerToken: 'tok-12345678' });
    expect(token.presented('Bearer x', null)).toBe(true);
    expect(token.presented(undefined, 'x')).toBe(true);
    expect(token.presented('Basic eDp5', null)).toBe(false);
    expect(token.presented(undefined, null)).toBe(false);
    const password = new ViewerAuth({ viewerPassword: 'correct horse' });
    expect(password.presented('Basic eDp5', null)).toBe(true);
    expect(password.presented(undefined, 'x')).toBe(false);
    expect(password.presented('Bearer x', null)).toBe(false);
  });
});
