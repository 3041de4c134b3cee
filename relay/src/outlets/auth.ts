/**
 * Optional viewer credentials for the HTTP outlet: a token (VIEWER_TOKEN, sent as
 * `Authorization: Bearer <token>` or `?token=<token>` because browsers cannot put headers on <img>)
 * and/or a password (VIEWER_USER + VIEWER_PASSWORD, HTTP Basic). Either valid credential is enough.
 *
 * Comparisons are constant-time: both sides are hashed to 32 bytes first so that neither the
 * content nor the length of the secret leaks through timing, then compared with timingSafeEqual.
 * Nothing here ever logs a credential.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface AuthOptions {
  /** VIEWER_TOKEN; undefined/empty = no token */
  viewerToken?: string;
  /** VIEWER_USER (default "viewer"); used only when viewerPassword is set */
  viewerUser?: string;
  /** VIEWER_PASSWORD; undefined/empty = no password */
  viewerPassword?: string;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time string equality (independent of where the strings differ and of their lengths). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export const AUTH_REALM = 'camrelay';

export class ViewerAuth {
  private readonly token: Buffer | undefined;
  private readonly user: Buffer | undefined;
  private readonly password: Buffer | undefined;

  constructor(opts: AuthOptions) {
    this.token = opts.viewerToken ? digest(opts.viewerToken) : undefined;
    if (opts.viewerPassword) {
      this.user = digest(opts.viewerUser ?? 'viewer');
      this.password = digest(opts.viewerPassword);
    }
  }

  /** True when any credential is configured (the HTTP outlet is closed). */
  get enabled(): boolean {
    return this.token !== undefined || this.password !== undefined;
  }

  /**
   * Checks the Authorization header and the `token` query parameter. Every configured check runs
   * (no early exit on the first mismatch).
   */
  check(authorization: string | undefined, queryToken: string | null | undefined): boolean {
    if (!this.enabled) return true;
    let ok = false;
    if (this.token) {
      if (queryToken) ok = timingSafeEqual(digest(queryToken), this.token) || ok;
      const bearer = authorization && /^Bearer\s+(.+)$/i.exec(authorization.trim());
      if (bearer) ok = timingSafeEqual(digest(bearer[1].trim()), this.token) || ok;
    }
    if (this.user && this.password) {
      const basic = authorization && /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization.trim());
      if (basic) {
        const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon >= 0) {
          const userOk = timingSafeEqual(digest(decoded.slice(0, colon)), this.user);
          const passOk = timingSafeEqual(digest(decoded.slice(colon + 1)), this.password);
          ok = (userOk && passOk) || ok;
        }
      }
    }
    return ok;
  }

  /**
   * True when the request carries credentials of a configured kind (Bearer or `?token=` with a
   * token; Basic with a password), right or wrong: only those count towards the sign-in limit.
   */
  presented(authorization: string | undefined, queryToken: string | null | undefined): boolean {
    const a = authorization?.trim() ?? '';
    return (this.token !== undefined && (Boolean(queryToken) || /^Bearer\s/i.test(a))) || (this.password !== undefined && /^Basic\s/i.test(a));
  }

  /**
   * The sign-in form: the user name and password, or the token typed as the password (the user name
   * is then ignored). Every configured check runs, in constant time.
   */
  checkForm(user: string, secret: string): boolean {
    let ok = false;
    if (this.token && secret) ok = timingSafeEqual(digest(secret), this.token) || ok;
    if (this.user && this.password) {
      const userOk = timingSafeEqual(digest(user), this.user);
      const passOk = timingSafeEqual(digest(secret), this.password);
      ok = (userOk && passOk) || ok;
    }
    return ok;
  }

  /** What the sign-in form asks for: a user name and password, a token, or either. */
  get formFields(): 'password' | 'token' | 'both' {
    return this.password && this.token ? 'both' : this.password ? 'password' : 'token';
  }

  /** WWW-Authenticate values for a 401 (Basic makes browsers show their login prompt). */
  challenges(): string[] {
    const out: string[] = [];
    if (this.password) out.push(`Basic realm="${AUTH_REALM}", charset="UTF-8"`);
    if (this.token) out.push(`Bearer realm="${AUTH_REALM}"`);
    return out;
  }
}
