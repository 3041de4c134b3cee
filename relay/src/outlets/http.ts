/**
 * HTTP outlet (HTTP_PORT), node:http:
 *   GET /              page (+ /viewer.js, /viewer.css, /favicon.svg)
 *   GET /snapshot.jpg  one JPEG of the FIRST camera (see snapshot.ts; seed-era links)
 *   GET /stream.mjpg   MJPEG stream of the first camera (see mjpeg.ts)
 *   GET /status.json   { version, uptimeS, cameras: [...] } (the cameras the visitor may see) and,
 *                      at the top level, the first visible camera's fields as before the camera list
 *   GET /cam/<name>/   one camera's viewer page; /cam/<name>/{snapshot.jpg,stream.mjpg,status.json}
 *                      (and the page's static files); /cam/<name> -> 301 /cam/<name>/
 *   GET /healthz       200 while the process serves requests
 *   GET /readyz        200 when every camera has a fresh frame, else 503; the body lists each camera
 *                      the visitor may see (with credentials configured and none given: the public ones)
 *   GET/POST /login    the sign-in form / its submission; POST /logout (only with credentials set)
 * HEAD works on all GET routes; other methods get 405, other paths 404.
 *
 * Camera access (with credentials configured): a `public` camera needs none; the others do. Without
 * valid credentials an unknown camera and a private one get the same 401, so names cannot be probed;
 * with valid credentials an unknown camera is 404. `/` and `/status.json` are open when any camera
 * is public (status then lists only the public ones); without public cameras they need credentials.
 * `/readyz` is always open, but its body, too, names only the public cameras to such a visitor.
 *
 * Access: every connection takes a slot from the shared limiter when it is accepted. A connection
 * refused by ALLOW_CIDRS gets 403, one over MAX_CLIENTS / MAX_CLIENTS_PER_IP gets 503 with
 * Retry-After, and is closed. /healthz and /readyz stay answerable on such connections (Docker
 * health checks), except that ALLOW_CIDRS still hides them from non-loopback addresses. With
 * VIEWER_TOKEN and/or VIEWER_PASSWORD set, the page, snapshot, stream and status need credentials
 * (401 + WWW-Authenticate); /healthz, /readyz and the static viewer.js/css/favicon do not.
 *
 * Behind a trusted proxy (TRUSTED_PROXY_CIDRS, see forwarded.ts) one upstream keep-alive connection
 * carries many clients' requests. So a connection from a trusted proxy takes no slot itself: EVERY
 * REQUEST on it takes one (held until its response closes: a whole MJPEG stream) for the client
 * address the proxy names, and ALLOW_CIDRS, MAX_CLIENTS / MAX_CLIENTS_PER_IP, the rejection logs and
 * the sign-in limit all use that address. Refusals there do not close the proxy's connection. A
 * request whose forwarding headers name no client (malformed, `unknown`, or Forwarded and
 * X-Forwarded-For disagreeing) gets 400 (`bad_forwarding`), never the proxy's own address.
 *
 * Credentials and signing in are sign-in.ts's: which credentials a request carries (the sign-in
 * cookie, Basic, Bearer, ?token=; limited per client address), the 401 / 429 / sign-in form for a
 * request without them (the form over HTTPS, for pages: `/`, `/cam/<name>/`, `?login=1`), and the
 * POSTs to <BASE_PATH>/login and <BASE_PATH>/logout. This file routes; it decides who may see what.
 *
 * BASE_PATH (e.g. /camrelay): every route lives under it (/camrelay/, /camrelay/cam/<name>/ ...),
 * /camrelay redirects to /camrelay/, redirects and the cookie's Path carry it; /healthz and /readyz
 * also answer at /; anything else is 404. The pages' own links are relative, so they follow.
 *
 * Slowloris: headersTimeout, requestTimeout, keepAliveTimeout, maxHeaderSize, maxHeadersCount; the
 * server checks the timeouts every second (Node's default is 30 s); malformed requests get a
 * 400/408/431 and are closed.
 */
import { setMaxListeners } from 'node:events';
import http, { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CAMERA_NAME_RE, CidrList, listen, normaliseAddress, type Logger, type Service } from '@camrelay/common';
import type { RejectReason } from '../metrics';
import type { OutletDeps } from './deps';
import { type BadForwarding, type ClientInfo, TrustedProxies } from './forwarded';
import { HttpCamera } from './http-camera';
import type { Lease } from './limits';
import { MJPEG_CONTENT_TYPE, MjpegStreamer, parseFpsParam } from './mjpeg';
import { COMMON_HEADERS, PAGE_HEADERS, json, plain, redirect, send } from './respond';
import { SignIn } from './sign-in';
import { newBootId } from './snapshot';
import { SourceStatus, buildStatus } from './status';
import { CAMERA_VIEWER_HTML, FAVICON_SVG, OVERVIEW_HTML, OVERVIEW_JS, VIEWER_CSP, VIEWER_CSS, VIEWER_HTML, VIEWER_JS } from './viewer-page';

export interface HttpOutletOptions {
  /** BIND_HOST */
  bindHost: string;
  /** HTTP_PORT (0 = pick a free port; see .port after start) */
  httpPort: number;
  /** MAX_FRAME_AGE_MS */
  maxFrameAgeMs: number;
  /** CLIENT_WAIT_TIMEOUT_MS */
  waitTimeoutMs: number;
  /** CLIENT_WRITE_TIMEOUT_MS */
  writeTimeoutMs: number;
  /** HTTP_HEADERS_TIMEOUT_MS */
  headersTimeoutMs: number;
  /** HTTP_KEEPALIVE_TIMEOUT_MS */
  keepAliveTimeoutMs: number;
  /** VIEWER_TOKEN */
  viewerToken?: string;
  /** VIEWER_USER */
  viewerUser?: string;
  /** VIEWER_PASSWORD */
  viewerPassword?: string;
  /** SHUTDOWN_GRACE_MS: on stop(), in-flight responses get this long (default 2000) */
  shutdownGraceMs?: number;
  /** TRUSTED_PROXY_CIDRS (default: none) */
  trustedProxies?: CidrList;
  /** BASE_PATH ('' or undefined = at /) */
  basePath?: string;
  /** SNAPSHOT_CACHE_S (default 0 = every snapshot no-store) */
  snapshotCacheS?: number;
  /** SESSION_TTL_MS (default 7 days) */
  sessionTtlMs?: number;
  /** SESSION_SECRET */
  sessionSecret?: string;
}

export { DEFAULT_SESSION_TTL_MS } from './sign-in';

export interface HttpOutletDeps extends OutletDeps {
  /** camera state from the source, for /status.json and /readyz (single camera: when `cameras` is not given) */
  status: () => SourceStatus;
  /**
   * The relay's own readiness rule for /readyz (e.g. the one the metrics server uses, which allows
   * for IDLE_FPS). Default: every camera's rule (a frame at most MAX_FRAME_AGE_MS old exists).
   */
  readiness?: () => { ready: boolean; detail?: Record<string, unknown> };
  /**
   * The cameras to serve, in list order (the first one also serves /snapshot.jpg and /stream.mjpg),
   * read on every request so a reload takes effect at once; their owner attaches and closes them.
   * Not given: one camera named `name` from store/metrics/status/readiness, owned by the outlet.
   */
  cameras?: () => readonly HttpCamera[];
  /** single-camera default's name (default `default`) */
  name?: string;
  /** /status.json `version` */
  version?: string;
  /** wall clock (ms) for the sign-in cookie's expiry and the sign-in limit (tests: a fake clock) */
  now?: () => number;
}

/** Largest request head accepted (bytes); more gets 431. */
export const MAX_HEADER_BYTES = 8192;
export const MAX_HEADERS_COUNT = 50;
/** Refused connections kept open to receive their 403/503 at most; beyond this they are cut at once. */
export const MAX_REFUSED_PENDING = 256;

interface Conn {
  /** from a trusted proxy: no slot of its own; every request takes one for its client (see above) */
  proxy: boolean;
  lease?: Lease;
  refused?: RejectReason;
  counted: boolean;
  active: number;
}

type Route = 'page' | 'js' | 'overviewJs' | 'css' | 'icon' | 'snapshot' | 'stream' | 'status' | 'healthz' | 'readyz' | 'login' | 'logout' | 'base';
/** what /cam/<name>/<sub> serves */
const CAM_ROUTES: Record<string, Route> = {
  '': 'page',
  'index.html': 'page',
  'viewer.js': 'js',
  'viewer.css': 'css',
  'favicon.svg': 'icon',
  'snapshot.jpg': 'snapshot',
  'stream.mjpg': 'stream',
  'status.json': 'status',
};
const ROUTES: Record<string, Route> = {
  '/': 'page',
  '/index.html': 'page',
  '/viewer.js': 'js',
  '/overview.js': 'overviewJs',
  '/viewer.css': 'css',
  '/favicon.svg': 'icon',
  '/snapshot.jpg': 'snapshot',
  '/stream.mjpg': 'stream',
  '/status.json': 'status',
  '/healthz': 'healthz',
  '/readyz': 'readyz',
  '/login': 'login',
  '/logout': 'logout',
};

/** What a request path names (after BASE_PATH). */
interface Match {
  route?: Route;
  /** /cam/<name>... */
  camName?: string;
  /** /cam/<name> without the slash: 301 to /cam/<name>/ */
  redirect?: boolean;
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = normaliseAddress(address);
  return a === '::1' || a.startsWith('127.');
}

export class HttpOutlet implements Service {
  readonly name = 'http-outlet';
  private server: http.Server | undefined;
  private readonly conns = new Map<Socket, Conn>();
  private refusedPending = 0;
  private abort = new AbortController();
  private stopping: Promise<void> | undefined;
  private readonly proxies: TrustedProxies;
  /** credentials, the sign-in form and cookie (sign-in.ts) */
  private readonly login: SignIn;
  /** BASE_PATH, '' at / */
  private readonly base: string;
  /** the single camera the outlet owns when no `cameras` list is given */
  private own: HttpCamera | undefined;
  private startedAt = Date.now();
  private readonly log: Logger;

  constructor(
    private readonly opts: HttpOutletOptions,
    private readonly deps: HttpOutletDeps,
  ) {
    this.log = deps.log;
    this.proxies = new TrustedProxies(opts.trustedProxies ?? new CidrList([]));
    this.base = opts.basePath ?? '';
    this.login = new SignIn(opts, { metrics: deps.metrics, limiter: deps.limiter, log: deps.log, now: deps.now });
    if (!deps.cameras) this.own = this.newOwn();
  }

  private newOwn(): HttpCamera {
    const { opts, deps } = this;
    return new HttpCamera(
      { name: deps.name ?? 'default', public: false, maxFrameAgeMs: opts.maxFrameAgeMs, waitTimeoutMs: opts.waitTimeoutMs, writeTimeoutMs: opts.writeTimeoutMs },
      { store: deps.store, metrics: deps.metrics, limiter: deps.limiter, status: deps.status },
      newBootId(),
    );
  }

  private cameras(): readonly HttpCamera[] {
    return this.deps.cameras ? this.deps.cameras() : [this.own as HttpCamera];
  }

  /** The real listening port after start() (useful with port 0), or -1. */
  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? a.port : -1;
  }

  /** True when viewer credentials are required. */
  get authEnabled(): boolean {
    return this.login.enabled;
  }

  /** MJPEG viewers of the first camera: count and each one's queued bytes (tests, diagnostics). */
  get mjpeg(): Pick<MjpegStreamer, 'size' | 'backlogs'> {
    return this.cameras()[0].streamer;
  }

  async start(): Promise<void> {
    // the sign-in cookie's key: scrypt, once (slow on purpose, see session.ts), before any request
    await this.login.start();
    if (this.server) return;
    this.abort = new AbortController();
    // one listener per waiting snapshot request: lift the leak warning
    setMaxListeners(0, this.abort.signal);
    this.stopping = undefined;
    this.startedAt = Date.now();
    const headersTimeout = this.opts.headersTimeoutMs;
    const server = http.createServer(
      {
        noDelay: true,
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout,
        requestTimeout: headersTimeout * 2,
        keepAliveTimeout: this.opts.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
      },
      (req, res) => this.onRequest(req, res),
    );
    server.maxHeadersCount = MAX_HEADERS_COUNT;
    server.on('connection', (s: Socket) => this.onConnection(s));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    this.server = server;
    try {
      await listen(server, { port: this.opts.httpPort, host: this.opts.bindHost }, (err) => this.log.error({ err }, 'http outlet server error'));
    } catch (err) {
      // e.g. EADDRINUSE: leave the outlet startable again
      this.server = undefined;
      throw err;
    }
    if (this.own?.closed) this.own = this.newOwn();
    this.own?.attach();
  }

  private onConnection(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    if (!socket.remoteAddress) {
      socket.destroy();
      return;
    }
    if (this.proxies.trusts(socket.remoteAddress)) {
      // a trusted proxy: admission happens per request, for the client it names (route())
      const conn: Conn = { proxy: true, counted: false, active: 0 };
      this.conns.set(socket, conn);
      socket.once('close', () => this.conns.delete(socket));
      return;
    }
    const { limiter } = this.deps;
    const admission = limiter.admit(socket.remoteAddress);
    const conn: Conn = { proxy: false, counted: false, active: 0 };
    if (admission.ok) {
      conn.lease = admission.lease;
    } else {
      conn.refused = admission.reason;
      if (this.refusedPending >= MAX_REFUSED_PENDING) {
        limiter.reject(admission.reason, socket.remoteAddress, 'http');
        socket.destroy();
        return;
      }
      this.refusedPending++;
    }
    this.conns.set(socket, conn);
    socket.once('close', () => {
      this.conns.delete(socket);
      conn.lease?.release();
      if (conn.refused) {
        this.refusedPending--;
        if (!conn.counted) limiter.reject(conn.refused, socket.remoteAddress, 'http');
      }
    });
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const conn = this.conns.get(socket as Socket);
    if (!socket.writable || err.code === 'ECONNRESET' || (conn && conn.active > 0)) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.conns.get(req.socket);
    if (conn) {
      conn.active++;
      res.once('close', () => conn.active--);
    }
    try {
      this.route(req, res, conn);
    } catch (err) {
      this.log.error({ err }, 'http request failed');
      if (!res.headersSent) res.writeHead(500, { Connection: 'close' });
      res.end();
    }
  }

  /** What a path names: BASE_PATH stripped (health checks also answer at /), then the route table. */
  private match(fullPath: string): Match {
    let path = fullPath;
    if (this.base) {
      if (path === this.base) return { route: 'base' };
      if (path.startsWith(`${this.base}/`)) path = path.slice(this.base.length);
      else if (path !== '/healthz' && path !== '/readyz') return {};
    }
    if (!path.startsWith('/cam/')) {
      const route = ROUTES[path];
      // the sign-in routes exist only when there is something to sign in with
      if ((route === 'login' || route === 'logout') && !this.login.enabled) return {};
      return { route };
    }
    const rest = path.slice(5);
    const slash = rest.indexOf('/');
    if (slash < 0) return { route: 'page', camName: rest, redirect: true };
    return { route: CAM_ROUTES[rest.slice(slash + 1)], camName: rest.slice(0, slash) };
  }

  /**
   * The request's own admission: behind a trusted proxy a slot per request for the client it names
   * (released when the response closes), else the connection's. Returns the refusal, if any.
   */
  private admitRequest(res: ServerResponse, conn: Conn | undefined, client: ClientInfo): RejectReason | undefined {
    if (!conn) return 'max_clients';
    if (!conn.proxy) return conn.refused;
    const a = this.deps.limiter.admit(client.address);
    if (!a.ok) return a.reason;
    res.once('close', () => a.lease.release());
    return undefined;
  }

  /**
   * A trusted proxy's request whose forwarding headers name no client (forwarded.ts): 400, never the
   * proxy's own address. Counted and logged (rate-limited) with the headers, cut to a readable length.
   */
  private badForwarding(req: IncomingMessage, res: ServerResponse, bad: BadForwarding): void {
    const cut = (h: string | string[] | undefined) => (h === undefined ? undefined : String(h).slice(0, 200));
    this.deps.limiter.reject('bad_forwarding', bad.peer, 'http', {
      problem: bad.bad, forwarded: cut(req.headers.forwarded), xForwardedFor: cut(req.headers['x-forwarded-for']),
      hint: "make the proxy strip the client's Forwarded/X-Forwarded-For headers and write its own",
    });
    // the proxy's connection carries other clients' requests: keep it open
    plain(res, 400, "conflicting or malformed forwarding headers from the proxy: make it strip the client's Forwarded/X-Forwarded-For\n");
  }

  private route(req: IncomingMessage, res: ServerResponse, conn: Conn | undefined): void {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const search = q >= 0 ? rawUrl.slice(q) : '';
    // /cam/<name>/<sub>: one camera; the seed paths serve the first camera
    const { route, camName, redirect: addSlash } = this.match(path);
    const resolved = this.proxies.resolve(req);
    if ('bad' in resolved) return this.badForwarding(req, res, resolved);
    const client = resolved;
    const { limiter } = this.deps;

    const refused = this.admitRequest(res, conn, client);
    if (refused) {
      const healthRoute = route === 'healthz' || route === 'readyz';
      const healthOk = healthRoute && (refused !== 'not_allowed' || isLoopback(client.address));
      // a proxy's connection carries other clients' requests: keep it open
      if (!conn?.proxy) res.setHeader('Connection', 'close');
      if (healthOk && conn && !conn.proxy) conn.counted = true; // served, not refused
      if (!healthOk) {
        if (conn?.proxy) limiter.reject(refused, client.address, 'http');
        else if (conn && !conn.counted) {
          conn.counted = true;
          limiter.reject(refused, req.socket.remoteAddress, 'http');
        }
        if (refused === 'not_allowed') plain(res, 403, 'forbidden\n');
        else plain(res, 503, 'too many clients, try again later\n', { 'Retry-After': '5' });
        return;
      }
    }
    if (!route) return plain(res, 404, 'not found\n');
    if (route === 'base') return redirect(res, 301, `${this.base}/${search}`);
    if (route === 'logout' || (route === 'login' && req.method === 'POST')) {
      if (req.method !== 'POST') return plain(res, 405, 'method not allowed\n', { Allow: 'POST' });
      const done = route === 'login' ? this.login.signIn(req, res, client) : this.login.signOut(req, res, client);
      void done.catch((err) => {
        this.log.error({ err }, 'sign-in request failed');
        res.destroy();
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return plain(res, 405, 'method not allowed\n', { Allow: route === 'login' ? 'GET, HEAD, POST' : 'GET, HEAD' });
    }

    const cameras = this.cameras();
    const params = () => new URLSearchParams(search);
    const creds = this.login.credentials(req, q >= 0 ? params().get('token') : null, client);
    const authed = creds.authed;
    // `page`: a browser navigation, which gets the sign-in form over HTTPS instead of a challenge
    const unauthorized = (page: boolean) => this.login.unauthorized(res, creds, client, page ? `${path}${search}` : undefined);

    let cam: HttpCamera | undefined;
    if (camName !== undefined) {
      cam = CAMERA_NAME_RE.test(camName) ? cameras.find((c) => c.name === camName) : undefined;
      // static files of the page carry nothing of the camera: served like the top-level ones
      const open = route === 'js' || route === 'overviewJs' || route === 'css' || route === 'icon';
      if (!open && !authed && !cam?.public) return unauthorized(route === 'page'); // unknown and private: the same answer
      if (!cam) return plain(res, 404, 'not found\n');
      if (addSlash) return redirect(res, 301, `${this.base}/cam/${cam.name}/${search}`);
    } else if (route === 'snapshot' || route === 'stream') {
      cam = cameras[0];
      if (!authed && !cam?.public) return unauthorized(false);
      if (!cam) return plain(res, 503, 'no camera configured\n', { 'Retry-After': '5' });
    } else if ((route === 'page' || route === 'status') && !authed && !cameras.some((c) => c.public)) {
      return unauthorized(route === 'page');
    } else if (route === 'page' && !authed && params().get('login') !== null) {
      return unauthorized(true); // the overview's "sign in" link: make the browser ask for the credentials
    } else if (route === 'login') {
      // GET <base>/login: the form over HTTPS (signed in: back to the start), else the browser's prompt
      if (authed) return redirect(res, 303, `${this.base}/`);
      if (client.proto !== 'https') return unauthorized(false);
      return this.login.loginPage(res, 200, { next: `${this.base}/` });
    }

    switch (route) {
      case 'healthz':
        return plain(res, 200, 'ok\n');
      case 'readyz': {
        const r = this.deps.readiness ? this.deps.readiness() : cameraReadiness(cameras);
        // the status covers every camera; the body names only the cameras this visitor may see, so
        // private names cannot be probed (the metrics port's /readyz keeps the full detail)
        const detail = authed ? r.detail : cameraReadiness(cameras.filter((c) => c.public)).detail;
        return json(res, r.ready ? 200 : 503, { ready: r.ready, ...detail });
      }
      case 'status': {
        if (cam) return json(res, 200, this.cameraStatus(cam));
        const visible = cameras.filter((c) => authed || c.public).map((c) => this.cameraStatus(c));
        return json(res, 200, {
          ...(visible[0] ?? {}),
          version: this.deps.version ?? 'unknown',
          uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
          authenticated: authed,
          session: creds.session,
          cameras: visible,
        });
      }
      case 'page': {
        // one camera's viewer under /cam/<name>/; at / the overview once there is more than one camera
        // (a single camera keeps today's viewer at /, so seed-era links keep working)
        const page = cam ? CAMERA_VIEWER_HTML : cameras.length > 1 ? OVERVIEW_HTML : VIEWER_HTML;
        return send(res, 200, 'text/html; charset=utf-8', page, { 'Content-Security-Policy': VIEWER_CSP, ...PAGE_HEADERS });
      }
      case 'js':
        return send(res, 200, 'text/javascript; charset=utf-8', VIEWER_JS);
      case 'overviewJs':
        return send(res, 200, 'text/javascript; charset=utf-8', OVERVIEW_JS);
      case 'css':
        return send(res, 200, 'text/css; charset=utf-8', VIEWER_CSS);
      case 'icon':
        return send(res, 200, 'image/svg+xml', FAVICON_SVG);
      case 'snapshot': {
        const c = cam as HttpCamera;
        void c.handleSnapshot(req, res, this.abort.signal, this.cacheSeconds(c)).catch((err) => {
          this.log.error({ err, camera: c.name }, 'snapshot failed');
          res.destroy();
        });
        return;
      }
      case 'stream': {
        const c = cam as HttpCamera;
        if (this.stopping || c.closed) return plain(res, 503, 'shutting down\n', { 'Retry-After': '5' });
        const fps = parseFpsParam(params().get('fps'), c.opts.maxFps || undefined);
        if (fps instanceof Error) return plain(res, 400, `${fps.message}\n`);
        if (req.method === 'HEAD') {
          res.writeHead(200, { ...COMMON_HEADERS, 'Content-Type': MJPEG_CONTENT_TYPE, 'Cache-Control': 'no-store' });
          res.end();
          return;
        }
        c.streamer.add(res, { fps });
        return;
      }
    }
  }

  /** One camera's /status.json element: today's fields plus name, public, up, frameAgeMs, viewers. */
  private cameraStatus(c: HttpCamera): Record<string, unknown> {
    const { limiter } = this.deps;
    const s = buildStatus({
      store: c.deps.store,
      status: c.deps.status,
      clients: () => limiter.clientCounts(),
      connections: () => limiter.connections,
      fps: () => c.fpsNow(),
      startedAt: this.startedAt,
      maxFrameAgeMs: c.opts.maxFrameAgeMs,
    });
    const frame = s.frame as { ageMs: number } | null;
    return { name: c.name, public: c.public, ...s, up: s.cameraUp, frameAgeMs: frame ? frame.ageMs : null, viewers: c.streamer.size };
  }

  /**
   * SNAPSHOT_CACHE_S for a camera anyone may see: public (or no credentials configured at all) and no
   * ALLOW_CIDRS (a shared cache cannot apply the relay's address list); else 0 (no-store).
   */
  private cacheSeconds(c: HttpCamera): number {
    const anyone = (c.public || !this.login.enabled) && this.deps.limiter.open;
    return anyone ? (this.opts.snapshotCacheS ?? 0) : 0;
  }

  /** Stops accepting, ends MJPEG streams, lets responses in flight finish within the grace, then cuts. */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const grace = this.opts.shutdownGraceMs ?? 2000;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.abort.abort();
    server.closeIdleConnections();
    // the owned camera is closed for good; listed cameras only lose their viewers (their owner closes them)
    await Promise.all([this.own?.close(grace), ...(this.deps.cameras ? this.deps.cameras().map((c) => c.streamer.endAll(grace)) : [])]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, grace)))]);
    clearTimeout(timer);
    server.closeAllConnections();
    for (const s of this.conns.keys()) s.destroy();
    await closed;
    this.server = undefined;
  }
}

/** Every camera ready = ready; the detail lists each camera (first camera's fields also at the top level). */
export function cameraReadiness(cameras: readonly HttpCamera[]): { ready: boolean; detail: Record<string, unknown> } {
  const each = cameras.map((c) => ({ name: c.name, ...c.readiness() }));
  return {
    ready: each.length > 0 && each.every((e) => e.ready),
    detail: { ...(each[0]?.detail ?? {}), cameras: each.map((e) => ({ name: e.name, ready: e.ready, ...e.detail })) },
  };
}
