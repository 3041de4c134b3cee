/**
 * Sign-in helpers for the HTTP outlet: the per-address limit on failed credential checks, reading
 * the sign-in form's body, where to go after signing in, and the same-origin check of the form POSTs.
 *
 * The limit: at most LOGIN_MAX_FAILURES failed checks in any LOGIN_WINDOW_MS from one (real) client
 * address. A failure is a wrong user/password/token in the sign-in form, or wrong Basic, Bearer or
 * ?token= credentials on any request. While an address is over the limit its credentials are not
 * checked at all (a 429 with Retry-After instead), so guessing stops; a success forgets its failures.
 * At most LOGIN_TRACKED_MAX addresses are remembered (the oldest is forgotten first), so a flood of
 * addresses cannot grow memory without bound. Time comes from the injected clock.
 */
import type { IncomingMessage } from 'node:http';

export const LOGIN_MAX_FAILURES = 5;
export const LOGIN_WINDOW_MS = 60_000;
export const LOGIN_TRACKED_MAX = 10_000;
/** Largest sign-in form body accepted (bytes); more gets 413. */
export const LOGIN_BODY_MAX = 4096;

export interface ThrottleOptions {
  maxFailures?: number;
  windowMs?: number;
  maxTracked?: number;
}

export class LoginThrottle {
  /** address -> times of its recent failures, oldest first (at most maxFailures) */
  private readonly failures = new Map<string, number[]>();
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

  private recent(address: string): number[] {
    const list = this.failures.get(address);
    if (!list) return [];
    const since = this.now() - this.windowMs;
    while (list.length > 0 && list[0] <= since) list.shift();
    if (list.length === 0) this.failures.delete(address);
    return list;
  }

  /** Milliseconds until this address may be checked again; 0 = now. */
  retryAfterMs(address: string): number {
    const list = this.recent(address);
    if (list.length < this.maxFailures) return 0;
    return Math.max(1, list[0] + this.windowMs - this.now());
  }

  /** Books a failed check. True when it puts the address over the limit (for a log line). */
  fail(address: string): boolean {
    const list = this.recent(address);
    list.push(this.now());
    if (list.length > this.maxFailures) list.shift();
    // re-insert: the Map's order is then least recently failed first
    this.failures.delete(address);
    this.failures.set(address, list);
    while (this.failures.size > this.maxTracked) this.failures.delete(this.failures.keys().next().value as string);
    return list.length === this.maxFailures;
  }

  /** A successful check forgets the address's failures. */
  succeed(address: string): void {
    this.failures.delete(address);
  }

  /** Addresses remembered (tests). */
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
 * `Origin: null`, which fails: the sign-in page uses strict-origin for that reason). A request with
 * neither header (a script) passes: it cannot ride on a browser's cookie.
 */
export function sameOrigin(headers: IncomingMessage['headers'], host: string | undefined): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const origin = headers.origin;
  if (origin === undefined) return true;
  return host !== undefined && origin.toLowerCase() === `https://${host}`;
}
