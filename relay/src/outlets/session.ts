/**
 * The sign-in cookie that the HTTPS sign-in form sets: a signed, expiring token that stands for "this
 * browser gave the viewer credentials". The relay keeps no session table: the cookie carries its own
 * expiry and an HMAC-SHA256 over it.
 *
 *   value  = "1." + expiry (Unix seconds) + "." + nonce (16 random bytes) + "." + MAC   (base64url)
 *   MAC    = HMAC-SHA256(key, "1." + expiry + "." + nonce)
 *   key    = scrypt(password = JSON [VIEWER_TOKEN, VIEWER_USER, VIEWER_PASSWORD],
 *                   salt = JSON [KEY_LABEL, SESSION_SECRET or null], 32 bytes, SESSION_KEY_SCRYPT)
 *
 * So changing the password, the token, the user name or SESSION_SECRET revokes every cookie at once,
 * a relay restart keeps them, and nobody can make one without knowing the credentials (or, with
 * SESSION_SECRET, that secret too). The MAC is compared with timingSafeEqual; the expiry inside the
 * signed part is checked against the injected clock (the browser's Max-Age is only a hint).
 *
 * Why scrypt: a cookie is a known message with its MAC, so whoever steals one can test guesses of the
 * credentials offline. With a fast key (one HMAC per guess) that is billions of guesses a second on a
 * GPU; scrypt (N=2^14, r=8: 16 MiB and some 40-100 ms per guess on a small VPS) makes every guess as
 * costly as deriving the key. With SESSION_SECRET set (random, at least 16 characters) the attacker
 * would have to guess it too, which is hopeless. The key is derived ONCE, in start() (asynchronously,
 * on a libuv pool thread), never per request.
 *
 * Attributes: HttpOnly (scripts cannot read it), Secure (only sent over HTTPS; the `__Secure-` name
 * prefix makes browsers refuse it from a plain-HTTP origin), Path = BASE_PATH (or /), and
 * SameSite=Lax: a link to the viewer from a mail or a chat still opens it signed in (Strict would show
 * the sign-in form to someone who is signed in), while cross-site POSTs, images and fetches do not
 * carry it. The sign-in and sign-out POSTs also check Origin (see sign-in.ts), so Lax loses nothing.
 */
import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { parseCookie, stringifySetCookie } from 'cookie';

export const SESSION_COOKIE = '__Secure-camrelay-session';
const VERSION = '1';
/** part of the salt: a key for this purpose only (v2: scrypt; v1 keys were HMAC(label, credentials)) */
export const KEY_LABEL = 'camrelay sign-in cookie key v2';
/** scrypt cost of the key: 128 * N * r bytes of memory (16 MiB), some 40-100 ms on a small VPS */
export const SESSION_KEY_SCRYPT = { N: 2 ** 14, r: 8, p: 1 } as const;

export interface SessionOptions {
  viewerToken?: string;
  viewerUser?: string;
  viewerPassword?: string;
  /** SESSION_SECRET */
  sessionSecret?: string;
  /** SESSION_TTL_MS */
  ttlMs: number;
  /** the cookie's Path: BASE_PATH or / */
  path: string;
}

/** The cookie signing key of these credentials (scrypt: slow on purpose, see the file comment). */
export function deriveSessionKey(opts: Omit<SessionOptions, 'ttlMs' | 'path'>): Promise<Buffer> {
  const material = JSON.stringify([opts.viewerToken ?? null, opts.viewerUser ?? 'viewer', opts.viewerPassword ?? null]);
  const salt = JSON.stringify([KEY_LABEL, opts.sessionSecret ?? null]);
  return new Promise((resolve, reject) => {
    scrypt(material, salt, 32, SESSION_KEY_SCRYPT, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export type SessionCheck = 'none' | 'valid' | 'invalid';

export class SessionCookies {
  private key: Buffer | undefined;
  private deriving: Promise<void> | undefined;

  constructor(
    private readonly opts: SessionOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Derives the signing key; once per instance (later calls share the first derivation). */
  start(): Promise<void> {
    this.deriving ??= deriveSessionKey(this.opts).then((k) => {
      this.key = k;
    });
    return this.deriving;
  }

  private mac(payload: string): Buffer {
    if (!this.key) throw new Error('SessionCookies: start() has not finished');
    return createHmac('sha256', this.key).update(payload, 'utf8').digest();
  }

  /** A fresh cookie value, valid for SESSION_TTL_MS from now. */
  value(): string {
    const expiry = Math.floor((this.now() + this.opts.ttlMs) / 1000);
    const payload = `${VERSION}.${expiry}.${randomBytes(16).toString('base64url')}`;
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** True when the value was signed with the current key and has not expired. */
  verify(value: string): boolean {
    const parts = value.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION || !/^\d{1,12}$/.test(parts[1])) return false;
    const given = Buffer.from(parts[3], 'base64url');
    const want = this.mac(parts.slice(0, 3).join('.'));
    // a MAC's length is no secret; timingSafeEqual needs equal lengths
    if (given.length !== want.length || !timingSafeEqual(given, want)) return false;
    return Number(parts[1]) * 1000 > this.now();
  }

  /** Looks for the cookie in a Cookie header: absent, valid, or present but not (expired, revoked, forged). */
  check(cookieHeader: string | undefined): SessionCheck {
    if (!cookieHeader || !cookieHeader.includes(SESSION_COOKIE)) return 'none';
    const v = parseCookie(cookieHeader)[SESSION_COOKIE];
    if (v === undefined) return 'none';
    return this.verify(v) ? 'valid' : 'invalid';
  }

  /** Set-Cookie header value that signs the browser in. */
  issue(): string {
    return stringifySetCookie({
      name: SESSION_COOKIE, value: this.value(), maxAge: Math.floor(this.opts.ttlMs / 1000),
      path: this.opts.path, httpOnly: true, secure: true, sameSite: 'lax',
    });
  }

  /** Set-Cookie header value that removes the cookie (sign-out, or a stale one). */
  clear(): string {
    return stringifySetCookie({ name: SESSION_COOKIE, value: '', maxAge: 0, path: this.opts.path, httpOnly: true, secure: true, sameSite: 'lax' });
  }
}
