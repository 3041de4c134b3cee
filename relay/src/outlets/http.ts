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
 * HEAD works on all of them; other methods get 405, other paths 404.
 *
 * Camera access (with credentials configured): a `public` camera needs none; the others do. Without
 * valid credentials an unknown camera and a private one get the same 401, so names cannot be probed;
 * with valid credentials an unknown camera is 404. `/` and `/status.json` are open when any camera
 * is public (status then lists only the public ones); without public cameras they need credentials.
 *
 * Access: every connection takes a slot from the shared limiter when it is accepted. A connection
 * refused by ALLOW_CIDRS gets 403, one over MAX_CLIENTS / MAX_CLIENTS_PER_IP gets 503 with
 * Retry-After, and is closed. /healthz and /readyz stay answerable on such connections (Docker
 * health checks), except that ALLOW_CIDRS still hides them from non-loopback addresses. With
 * VIEWER_TOKEN and/or VIEWER_PASSWORD set, the page, snapshot, stream and status need credentials
 * (401 + WWW-Authenticate); /healthz, /readyz and the static viewer.js/css/favicon do not.
 *
 * Slowloris: headersTimeout, requestTimeout, keepAliveTimeout, maxHeaderSize, maxHeadersCount; the
 * server checks the timeouts every second (Node's default is 30 s); malformed requests get a
 * 400/408/431 and are closed.
 */
import { setMaxListeners } from 'node:events';
import http, { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { listen, normaliseAddress, type Logger, type Service } from '@camrelay/common';
import type { RejectReason } from '../metrics';
import { CAMERA_NAME_RE } from '@camrelay/common';
import { ViewerAuth } from './auth';
import { HttpCamera } from './http-camera';
import type { Lease } from './limits';
import { MJPEG_CONTENT_TYPE, MjpegStreamer, parseFpsParam } from './mjpeg';
import type { OutletDeps } from './deps';
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
}

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
}

/** Largest request head accepted (bytes); more gets 431. */
export const MAX_HEADER_BYTES = 8192;
export const MAX_HEADERS_COUNT = 50;
/** Refused connections kept open to receive their 403/503 at most; beyond this they are cut at once. */
export const MAX_REFUSED_PENDING = 256;

interface Conn {
  lease?: Lease;
  refused?: RejectReason;
  counted: boolean;
  active: number;
}

type Route = 'page' | 'js' | 'overviewJs' | 'css' | 'icon' | 'snapshot' | 'stream' | 'status' | 'healthz' | 'readyz';
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
};
const COMMON_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };

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
  private readonly auth: ViewerAuth;
  /** the single camera the outlet owns when no `cameras` list is given */
  private own: HttpCamera | undefined;
  private startedAt = Date.now();
  private readonly log: Logger;

  constructor(
    private readonly opts: HttpOutletOptions,
    private readonly deps: HttpOutletDeps,
  ) {
    this.log = deps.log;
    this.auth = new ViewerAuth(opts);
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
    return this.auth.enabled;
  }

  /** MJPEG viewers of the first camera: count and each one's queued bytes (tests, diagnostics). */
  get mjpeg(): Pick<MjpegStreamer, 'size' | 'backlogs'> {
    return this.cameras()[0].streamer;
  }

  async start(): Promise<void> {
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
    const { limiter } = this.deps;
    const admission = limiter.admit(socket.remoteAddress);
    const conn: Conn = { counted: false, active: 0 };
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

  private route(req: IncomingMessage, res: ServerResponse, conn: Conn | undefined): void {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    // /cam/<name>/<sub>: one camera; the seed paths serve the first camera
    let camName: string | undefined;
    let route: Route | undefined = ROUTES[path];
    let redirect = false;
    if (path.startsWith('/cam/')) {
      const rest = path.slice(5);
      const slash = rest.indexOf('/');
      camName = slash < 0 ? rest : rest.slice(0, slash);
      if (slash < 0) {
        redirect = true;
        route = 'page';
      } else route = CAM_ROUTES[rest.slice(slash + 1)];
    }
    const { limiter } = this.deps;

    if (!conn || conn.refused) {
      const reason = conn?.refused ?? 'max_clients';
      const healthRoute = route === 'healthz' || route === 'readyz';
      const healthOk = healthRoute && (reason !== 'not_allowed' || isLoopback(req.socket.remoteAddress));
      res.setHeader('Connection', 'close');
      if (healthOk && conn) conn.counted = true; // served, not refused
      if (!healthOk) {
        if (conn && !conn.counted) {
          conn.counted = true;
          limiter.reject(reason, req.socket.remoteAddress, 'http');
        }
        if (reason === 'not_allowed') this.plain(res, 403, 'forbidden\n');
        else this.plain(res, 503, 'too many clients, try again later\n', { 'Retry-After': '5' });
        return;
      }
    }
    if (!route) return this.plain(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.plain(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });

    const cameras = this.cameras();
    const params = () => new URLSearchParams(q >= 0 ? rawUrl.slice(q + 1) : '');
    let authed = !this.auth.enabled;
    if (!authed) {
      const token = q >= 0 ? new URLSearchParams(rawUrl.slice(q + 1)).get('token') : null;
      authed = this.auth.check(req.headers.authorization, token);
    }
    const unauthorized = () => {
      limiter.reject('unauthorized', req.socket.remoteAddress, 'http');
      this.plain(res, 401, 'unauthorized\n', { 'WWW-Authenticate': this.auth.challenges() });
    };

    let cam: HttpCamera | undefined;
    if (camName !== undefined) {
      cam = CAMERA_NAME_RE.test(camName) ? cameras.find((c) => c.name === camName) : undefined;
      // static files of the page carry nothing of the camera: served like the top-level ones
      const open = route === 'js' || route === 'overviewJs' || route === 'css' || route === 'icon';
      if (!open && !authed && !cam?.public) return unauthorized(); // unknown and private: the same answer
      if (!cam) return this.plain(res, 404, 'not found\n');
      if (redirect) {
        res.writeHead(301, { ...COMMON_HEADERS, Location: `/cam/${cam.name}/${q >= 0 ? rawUrl.slice(q) : ''}`, 'Content-Length': 0 });
        res.end();
        return;
      }
    } else if (route === 'snapshot' || route === 'stream') {
      cam = cameras[0];
      if (!authed && !cam?.public) return unauthorized();
      if (!cam) return this.plain(res, 503, 'no camera configured\n', { 'Retry-After': '5' });
    } else if ((route === 'page' || route === 'status') && !authed && !cameras.some((c) => c.public)) {
      return unauthorized();
    } else if (route === 'page' && !authed && params().get('login') !== null) {
      return unauthorized(); // the overview's "sign in" link: make the browser ask for the credentials
    }

    switch (route) {
      case 'healthz':
        return this.plain(res, 200, 'ok\n');
      case 'readyz': {
        if (this.deps.readiness) {
          const r = this.deps.readiness();
          return this.json(res, r.ready ? 200 : 503, { ready: r.ready, ...r.detail });
        }
        const r = cameraReadiness(cameras);
        return this.json(res, r.ready ? 200 : 503, { ready: r.ready, ...r.detail });
      }
      case 'status': {
        if (cam) return this.json(res, 200, this.cameraStatus(cam));
        const visible = cameras.filter((c) => authed || c.public).map((c) => this.cameraStatus(c));
        return this.json(res, 200, {
          ...(visible[0] ?? {}),
          version: this.deps.version ?? 'unknown',
          uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
          authenticated: authed,
          cameras: visible,
        });
      }
      case 'page': {
        // one camera's viewer under /cam/<name>/; at / the overview once there is more than one camera
        // (a single camera keeps today's viewer at /, so seed-era links keep working)
        const page = cam ? CAMERA_VIEWER_HTML : cameras.length > 1 ? OVERVIEW_HTML : VIEWER_HTML;
        return this.send(res, 200, 'text/html; charset=utf-8', page, { 'Content-Security-Policy': VIEWER_CSP, 'X-Frame-Options': 'DENY' });
      }
      case 'js':
        return this.send(res, 200, 'text/javascript; charset=utf-8', VIEWER_JS);
      case 'overviewJs':
        return this.send(res, 200, 'text/javascript; charset=utf-8', OVERVIEW_JS);
      case 'css':
        return this.send(res, 200, 'text/css; charset=utf-8', VIEWER_CSS);
      case 'icon':
        return this.send(res, 200, 'image/svg+xml', FAVICON_SVG);
      case 'snapshot': {
        const c = cam as HttpCamera;
        void c.handleSnapshot(req, res, this.abort.signal).catch((err) => {
          this.log.error({ err, camera: c.name }, 'snapshot failed');
          res.destroy();
        });
        return;
      }
      case 'stream': {
        const c = cam as HttpCamera;
        if (this.stopping || c.closed) return this.plain(res, 503, 'shutting down\n', { 'Retry-After': '5' });
        const fps = parseFpsParam(params().get('fps'), c.opts.maxFps || undefined);
        if (fps instanceof Error) return this.plain(res, 400, `${fps.message}\n`);
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

  private send(res: ServerResponse, status: number, type: string, body: string, extra: http.OutgoingHttpHeaders = {}): void {
    const buf = Buffer.from(body, 'utf8');
    res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': type, 'Content-Length': buf.length, 'Cache-Control': 'no-store', ...extra });
    res.end(buf);
  }

  private plain(res: ServerResponse, status: number, body: string, extra: http.OutgoingHttpHeaders = {}): void {
    this.send(res, status, 'text/plain; charset=utf-8', body, extra);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    this.send(res, status, 'application/json', JSON.stringify(body) + '\n');
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
