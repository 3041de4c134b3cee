/**
 * Sign-in helpers for the HTTP outlet: the per-address limit on failed credential checks, reading
 * the sign-in form's body, where to go after signing in, and the same-origin check of the form POSTs.
 *
 * The limit: at most LOGIN_MAX_FAILURES failed checks in any LOGIN_WINDOW_MS from one (real) client
 * address. A failure is a wrong user/password/token in the sign-in form, or wrong Basic, Bearer or
 * ?token= credentials on any request. While an address is over the limit its credentials are not
 * checked at all (a 429 with Retry-After instead), so guessing stops; a success forgets its failures.
 * Time comes from the injected clock.
 *
 * What counts as one address (throttleKey): an IPv4 address, or an IPv6 /64. One IPv6 user is given a
 * whole /64 (2^64 addresses) and can pick a fresh address for every guess, so a per-address limit
 * would not limit anything.
 *
 * Memory: at most LOGIN_TRACKED_MAX addresses are remembered, and a flood of addresses cannot make
 * the limiter forget one: an address is only dropped once all its failures are older than the window
 * (it is then no longer limited anyway). When the table is full of addresses that failed within the
 * window, every address not in it shares ONE overflow entry, limited like an address: the flood (and
 * anyone new who mistypes during it) is held to LOGIN_MAX_FAILURES guesses per window in total, while
 * the addresses already remembered keep their own state, and clients with a valid sign-in cookie are
 * not affected at all (their cookie is checked before any credential).
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { normaliseAddress } from '@camrelay/common';

export const LOGIN_MAX_FAILURES = 5;
export const LOGIN_WINDOW_MS = 60_000;
export const LOGIN_TRACKED_MAX = 10_000;
/** Largest sign-in form body accepted (bytes); more gets 413. */
export const LOGIN_BODY_MAX = 4096;

/** The 8 16-bit groups of a valid IPv6 address (`::` expanded, a trailing dotted IPv4 as two groups). */
function hextets(address: string): number[] {
  let a = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number);
    a = `${a.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
}

/** Who the sign-in limit counts: an IPv4 address as is, an IPv6 address as its /64 (`2001:db8:0:1::/64`). */
export function throttleKey(address: string): string {
  const a = normaliseAddress(address).replace(/%.*$/, '');
  if (isIP(a) !== 6) return a;
  return `${hextets(a).slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

export interface ThrottleOptions {
  maxFailures?: number;
  windowMs?: number;
  maxTracked?: number;
}

export class LoginThrottle {
  /** key -> times of its recent failures, oldest first (at most maxFailures); Map order = least recently failed first */
  private readonly failures = new Map<string, number[]>();
  /** the failures of every key not tracked while the table is full (see the file comment) */
  private readonly overflow: number[] = [];
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxTracked: number;

  constructor(
    opts: ThrottleOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.maxFailures = opts.maxFailures ?? LOGIN_MAX_FAILURES;
    this.windowMs = opts.windowMs ?? LOGIN_WINDOW_MS;
    this.maxTracked = opts.maxTracked ?? LOGIN_TRACKED_MAX;
  }

  /** Drops failures that left the window from a list (in place). */
  private prune(list: number[]): number[] {
    const since = this.now() - this.windowMs;
    while (list.length > 0 && list[0] <= since) list.shift();
    return list;
  }

  /**
   * Forgets the keys whose latest failure left the window. They come first in the Map's order, so
   * this stops at the first key still inside it (amortised O(1) per call).
   */
  private sweep(): void {
    const since = this.now() - this.windowMs;
    for (const [key, list] of this.failures) {
      if (list.length > 0 && list[list.length - 1] > since) break;
      this.failures.delete(key);
    }
  }

  /** The failure list that counts for a key: its own, the overflow one (table full), or none. */
  private listOf(key: string): number[] | undefined {
    this.sweep();
    const own = this.failures.get(key);
    if (own) {
      if (this.prune(own).length > 0) return own;
      this.failures.delete(key);
      return undefined;
    }
    return this.failures.size >= this.maxTracked ? this.prune(this.overflow) : undefined;
  }

  /** Milliseconds until this address may be checked again; 0 = now. */
  retryAfterMs(address: string): number {
    const list = this.listOf(throttleKey(address));
    if (!list || list.length < this.maxFailures) return 0;
    return Math.max(1, list[0] + this.windowMs - this.now());
  }

  /** Books a failed check. True when it puts the address (or the overflow entry) at the limit (for a log line). */
  fail(address: string): boolean {
    const key = throttleKey(address);
    let list = this.listOf(key);
    if (!list) {
      list = [];
      this.failures.set(key, list);
    }
    list.push(this.now());
    if (list.length > this.maxFailures) list.shift();
    if (list !== this.overflow) {
      // re-insert: the Map's order is then least recently failed first
      this.failures.delete(key);
      this.failures.set(key, list);
    }
    return list.length === this.maxFailures;
  }

  /** A successful check forgets the address's failures (not the overflow entry's: it is shared). */
  succeed(address: string): void {
    this.failures.delete(throttleKey(address));
  }

  /** Keys remembered (tests). */
  get tracked(): number {
    return this.failures.size;
  }
}

/**
 * Reads an application/x-www-form-urlencoded body of at most LOGIN_BODY_MAX bytes. Resolves to the
 * fields, or to an HTTP status for the caller to answer with (413 too large, 415 another type, 400
 * aborted). The server's requestTimeout bounds how long the body may take.
 */
export function readForm(req: IncomingMessage): Promise<URLSearchParams | 400 | 413 | 415> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    req.resume();
    return Promise.resolve(415);
  }
  if (Number(req.headers['content-length'] ?? 0) > LOGIN_BODY_MAX) {
    req.resume();
    return Promise.resolve(413);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: URLSearchParams | 400 | 413) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > LOGIN_BODY_MAX) {
        req.resume();
        return finish(413);
      }
      chunks.push(c);
    });
    req.on('end', () => finish(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', () => finish(400));
    req.on('close', () => finish(400));
  });
}

/**
 * Where to send the browser after signing in: `next` when it is a path of this site under the base
 * path (no scheme, no host, no `//`, no backslash), else the base path's root. Never a URL elsewhere:
 * the check is repeated on the result, because resolving dot segments can make one (`/..//evil.com`
 * is `//evil.com`, which a browser reads as another host).
 */
export function safeNext(next: string | null | undefined, basePath: string): string {
  const root = `${basePath}/`;
  // printable ASCII only (a path as browsers send it, percent-encoded): no spaces, controls or backslashes
  if (!next || next.length > 1024 || !next.startsWith(root) || next.startsWith('//') || !/^[!-~]+$/.test(next) || next.includes('\\')) return root;
  let u: URL;
  try {
    u = new URL(next, 'https://relay.invalid');
  } catch {
    return root;
  }
  if (u.origin !== 'https://relay.invalid' || !u.pathname.startsWith(root)) return root;
  const out = u.pathname + u.search;
  if (out.startsWith('//') || out.includes('\\')) return root;
  return out;
}

/**
 * Same-origin check of a form POST (sign-in, sign-out). A browser that sends fetch metadata is
 * believed: `Sec-Fetch-Site` must be same-origin. Else an `Origin`, when sent, must be exactly
 * https://<the host asked for> (pages with Referrer-Policy no-referrer make browsers send
 * `Origin: null`, which fails: every page with a form uses strict-origin for that reason). A request with
 * neither header (a script) passes: it cannot ride on a browser's cookie.
 */
export function sameOrigin(headers: IncomingMessage['headers'], host: string | undefined): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const origin = headers.origin;
  if (origin === undefined) return true;
  return host !== undefined && origin.toLowerCase() === `https://${host}`;
}
