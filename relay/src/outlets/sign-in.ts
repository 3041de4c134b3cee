/**
 * Credentials and signing in, for the HTTP outlet (http.ts routes, this module decides and answers).
 *
 * credentials(): a request's sign-in cookie (session.ts), then its Basic, Bearer or ?token=
 * credentials (auth.ts), checked only while its client address is under the sign-in limit (login.ts).
 * A failed check counts towards that limit; a right one forgets the address's failures.
 *
 * unauthorized(): the answer to a request that needs credentials it does not have. Over HTTPS
 * (X-Forwarded-Proto https from a trusted proxy) a page (`/`, `/cam/<name>/`, `?login=1`) gets 401
 * with the sign-in form instead of the Basic challenge (unknown and private cameras alike); anything
 * else gets the challenges. Over the sign-in limit: 429 with Retry-After (credentials not checked).
 *
 * signIn(): POST <BASE_PATH>/login, the form's submission: right credentials set the signed session
 * cookie and redirect (303) back to `next` (login.ts safeNext); signOut(): POST <BASE_PATH>/logout
 * clears it. Both POSTs must be same-origin (Origin / Sec-Fetch-Site, login.ts); the cookie is
 * SameSite=Lax. The cookie is a credential like the others on every route.
 */
import { STATUS_CODES, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { RateLimitedLog, type Logger } from '@camrelay/common';
import type { CameraMetrics } from '../metrics';
import { AUTH_REALM, ViewerAuth, type AuthOptions } from './auth';
import type { ClientInfo } from './forwarded';
import { REJECT_LOG_INTERVAL_MS, type ClientLimiter } from './limits';
import { LoginThrottle, readForm, safeNext, sameOrigin, throttleKey } from './login';
import { PAGE_HEADERS, plain, redirect, send } from './respond';
import { SESSION_COOKIE, SessionCookies } from './session';
import { LOGIN_CSP, loginHtml, type LoginPage } from './viewer-page';

/** Default SESSION_TTL_MS. */
export const DEFAULT_SESSION_TTL_MS = 7 * 86_400_000;

export interface SignInOptions extends AuthOptions {
  /** SESSION_SECRET */
  sessionSecret?: string;
  /** SESSION_TTL_MS (default 7 days) */
  sessionTtlMs?: number;
  /** BASE_PATH ('' or undefined = at /) */
  basePath?: string;
}

export interface SignInDeps {
  metrics: CameraMetrics;
  limiter: ClientLimiter;
  log: Logger;
  /** wall clock (ms) for the cookie's expiry and the sign-in limit */
  now?: () => number;
}

/** How a request authenticated. */
export interface Credentials {
  authed: boolean;
  /** by the sign-in cookie */
  session: boolean;
  /** a sign-in cookie was sent but is expired, revoked or forged */
  staleCookie: boolean;
  /** > 0: credentials were sent but not checked (too many failures): ms until they will be */
  blockedMs: number;
}

export class SignIn {
  private readonly auth: ViewerAuth;
  private readonly sessions: SessionCookies;
  private readonly throttle: LoginThrottle;
  private readonly throttleLog: RateLimitedLog;
  /** BASE_PATH, '' at / */
  private readonly base: string;

  constructor(
    opts: SignInOptions,
    private readonly deps: SignInDeps,
  ) {
    const now = deps.now ?? Date.now;
    this.auth = new ViewerAuth(opts);
    this.base = opts.basePath ?? '';
    this.sessions = new SessionCookies({ ...opts, ttlMs: opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS, path: this.base || '/' }, now);
    this.throttle = new LoginThrottle({}, now);
    this.throttleLog = new RateLimitedLog(REJECT_LOG_INTERVAL_MS, now);
  }

  /** True when viewer credentials are configured (else every request is authed). */
  get enabled(): boolean {
    return this.auth.enabled;
  }

  /** Derives the cookie's key when credentials are configured (scrypt, once: session.ts). */
  async start(): Promise<void> {
    if (this.auth.enabled) await this.sessions.start();
  }

  /** Checks the sign-in cookie, then Basic / Bearer / ?token= (limited per client address). */
  credentials(req: IncomingMessage, token: string | null, client: ClientInfo): Credentials {
    if (!this.auth.enabled) return { authed: true, session: false, staleCookie: false, blockedMs: 0 };
    const cookie = this.sessions.check(req.headers.cookie);
    if (cookie === 'valid') return { authed: true, session: true, staleCookie: false, blockedMs: 0 };
    const staleCookie = cookie === 'invalid';
    if (!this.auth.presented(req.headers.authorization, token)) return { authed: false, session: false, staleCookie, blockedMs: 0 };
    const blockedMs = this.throttle.retryAfterMs(client.address);
    if (blockedMs > 0) return { authed: false, session: false, staleCookie, blockedMs };
    const authed = this.auth.check(req.headers.authorization, token);
    if (authed) this.throttle.succeed(client.address);
    else this.failedCheck(client.address);
    return { authed, session: false, staleCookie, blockedMs: 0 };
  }

  private failedCheck(address: string): void {
    if (this.throttle.fail(address)) {
      this.throttleLog.warn(this.deps.log, 'limit', { ip: address, limited: throttleKey(address) }, 'too many failed sign-ins: credentials from this address are not checked for a while');
    }
  }

  /**
   * 401 (429 while the client's credentials are not checked). `page` (the path a browser navigated to)
   * over HTTPS: the sign-in form, which posts back to it; else a challenge (without Basic for a
   * browser whose sign-in cookie went stale, so it sees no prompt).
   */
  unauthorized(res: ServerResponse, creds: Credentials, client: ClientInfo, page: string | undefined): void {
    const { limiter } = this.deps;
    const form = page !== undefined && client.proto === 'https';
    const clear = creds.staleCookie ? { 'Set-Cookie': this.sessions.clear() } : {};
    const next = () => {
      const [p, query = ''] = (page as string).split('?', 2);
      const keep = new URLSearchParams(query);
      keep.delete('token');
      keep.delete('login');
      return safeNext(keep.size > 0 ? `${p}?${keep}` : p, this.base);
    };
    if (creds.blockedMs > 0) {
      limiter.reject('rate_limited', client.address, 'http');
      const secs = Math.ceil(creds.blockedMs / 1000);
      if (form) return this.loginPage(res, 429, { next: next(), message: `too many failed attempts: try again in ${secs} s` }, { 'Retry-After': String(secs), ...clear });
      return plain(res, 429, 'too many failed sign-ins, try again later\n', { 'Retry-After': String(secs) });
    }
    limiter.reject('unauthorized', client.address, 'http');
    if (form) return this.loginPage(res, 401, { next: next() }, { 'WWW-Authenticate': this.cookieChallenge(), ...clear });
    const challenge = creds.staleCookie && client.proto === 'https' ? this.cookieChallenge() : this.auth.challenges();
    plain(res, 401, 'unauthorized\n', { 'WWW-Authenticate': challenge, ...clear });
  }

  /** A challenge browsers do not prompt for (draft-broyer-http-cookie-auth): sign in with the form. */
  private cookieChallenge(): string {
    return `Cookie realm="${AUTH_REALM}", form-action="${this.base}/login", cookie-name="${SESSION_COOKIE}"`;
  }

  /** The sign-in form (GET <base>/login answers it with 200, unauthorized() with 401/429). */
  loginPage(res: ServerResponse, status: number, p: Omit<LoginPage, 'base' | 'fields'>, extra: OutgoingHttpHeaders = {}): void {
    const html = loginHtml({ ...p, base: this.base, fields: this.auth.formFields });
    send(res, status, 'text/html; charset=utf-8', html, { 'Content-Security-Policy': LOGIN_CSP, ...PAGE_HEADERS, ...extra });
  }

  /** POST <base>/login: the sign-in form's submission (HTTPS through a trusted proxy only). */
  async signIn(req: IncomingMessage, res: ServerResponse, client: ClientInfo): Promise<void> {
    const { metrics } = this.deps;
    if (client.proto !== 'https') {
      req.resume();
      return plain(res, 403, 'the sign-in form works over HTTPS (through the TLS proxy) only; scripts can use HTTP Basic, Bearer or ?token=\n');
    }
    if (!sameOrigin(req.headers, client.host)) {
      req.resume();
      return plain(res, 403, 'cross-site sign-in refused\n');
    }
    const form = await readForm(req);
    if (res.destroyed) return;
    if (typeof form === 'number') return plain(res, form, `${STATUS_CODES[form]}\n`, { Connection: 'close' });
    const next = safeNext(form.get('next'), this.base);
    const user = form.get('user') ?? '';
    const blockedMs = this.throttle.retryAfterMs(client.address);
    if (blockedMs > 0) {
      metrics.loginAttempts.inc({ result: 'rate_limited' });
      const secs = Math.ceil(blockedMs / 1000);
      return this.loginPage(res, 429, { next, user, message: `too many failed attempts: try again in ${secs} s` }, { 'Retry-After': String(secs) });
    }
    if (!this.auth.checkForm(user, form.get('password') ?? '')) {
      this.failedCheck(client.address);
      metrics.loginAttempts.inc({ result: 'bad_credentials' });
      return this.loginPage(res, 401, { next, user, message: 'wrong user name or password' }, { 'WWW-Authenticate': this.cookieChallenge() });
    }
    this.throttle.succeed(client.address);
    metrics.loginAttempts.inc({ result: 'ok' });
    redirect(res, 303, next, { 'Set-Cookie': this.sessions.issue() });
  }

  /** POST <base>/logout: clears the sign-in cookie (same-origin only), back to the start. */
  async signOut(req: IncomingMessage, res: ServerResponse, client: ClientInfo): Promise<void> {
    req.resume();
    if (!sameOrigin(req.headers, client.host)) return plain(res, 403, 'cross-site sign-out refused\n');
    redirect(res, 303, `${this.base}/`, { 'Set-Cookie': this.sessions.clear() });
  }
}
