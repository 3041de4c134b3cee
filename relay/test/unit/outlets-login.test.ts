/**
 * Signing in: the signed, expiring session cookie (session.ts), the per-address limit on failed
 * credential checks, where the browser goes afterwards and the same-origin check (login.ts), and the
 * sign-in form's credential check (auth.ts). Fake time throughout.
 */
import crypto from 'node:crypto';
import { parseSetCookie } from 'cookie';
import { FakeClock } from '../../../test-support';
import { ViewerAuth } from '../../src/outlets/auth';
import { LOGIN_MAX_FAILURES, LOGIN_WINDOW_MS, LoginThrottle, safeNext, sameOrigin } from '../../src/outlets/login';
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
