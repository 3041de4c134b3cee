/**
 * HTTP outlet (HTTP_PORT), node:http:
 *   GET /              viewer page (+ /viewer.js, /viewer.css, /favicon.svg)
 *   GET /snapshot.jpg  one JPEG (see snapshot.ts)
 *   GET /stream.mjpg   MJPEG stream (see mjpeg.ts)
 *   GET /status.json   camera state, fps, frame age/seq/size, clients by protocol, uptime
 *   GET /healthz       200 while the process serves requests
 *   GET /readyz        200 when a fresh frame exists, else 503 with the reason
 * HEAD works on all of them; other methods get 405, other paths 404.
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
import { ViewerAuth } from './auth';
import type { Lease } from './limits';
import { MJPEG_CONTENT_TYPE, MjpegStreamer } from './mjpeg';
import type { OutletDeps } from './deps';
import { SnapshotHandler, newBootId } from './snapshot';
import { FpsMeter, SourceStatus, buildStatus, readiness } from './status';
import { FAVICON_SVG, VIEWER_CSP, VIEWER_CSS, VIEWER_HTML, VIEWER_JS } from './viewer-page';

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
  /** camera state from the source, for /status.json and /readyz */
  status: () => SourceStatus;
  /**
   * The relay's own readiness rule for /readyz (e.g. the one the metrics server uses, which allows
   * for IDLE_FPS). Default: a frame at most MAX_FRAME_AGE_MS old exists.
   */
  readiness?: () => { ready: boolean; detail?: Record<string, unknown> };
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

type Route = 'page' | 'js' | 'css' | 'icon' | 'snapshot' | 'stream' | 'status' | 'healthz' | 'readyz';
const ROUTES: Record<string, Route> = {
  '/': 'page',
  '/index.html': 'page',
  '/viewer.js': 'js',
  '/viewer.css': 'css',
  '/favicon.svg': 'icon',
  '/snapshot.jpg': 'snapshot',
  '/stream.mjpg': 'stream',
  '/status.json': 'status',
  '/healthz': 'healthz',
  '/readyz': 'readyz',
};
const PROTECTED: ReadonlySet<Route> = new Set<Route>(['page', 'snapshot', 'stream', 'status']);
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
  private readonly streamer: MjpegStreamer;
  private readonly snapshot: SnapshotHandler;
  private readonly fps = new FpsMeter();
  private readonly onFrame = () => this.fps.mark();
  private startedAt = Date.now();
  private readonly log: Logger;

  constructor(
    private readonly opts: HttpOutletOptions,
    private readonly deps: HttpOutletDeps,
  ) {
    this.log = deps.log;
    this.auth = new ViewerAuth(opts);
    this.streamer = new MjpegStreamer({ writeTimeoutMs: opts.writeTimeoutMs, maxFrameAgeMs: opts.maxFrameAgeMs }, deps);
    this.snapshot = new SnapshotHandler(opts, deps, newBootId());
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

  /** MJPEG viewers: count and each one's queued bytes (tests, diagnostics). */
  get mjpeg(): Pick<MjpegStreamer, 'size' | 'backlogs'> {
    return this.streamer;
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
    this.deps.store.on('frame', this.onFrame);
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
    const route = ROUTES[path];
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

    if (PROTECTED.has(route) && this.auth.enabled) {
      const token = q >= 0 ? new URLSearchParams(rawUrl.slice(q + 1)).get('token') : null;
      if (!this.auth.check(req.headers.authorization, token)) {
        limiter.reject('unauthorized', req.socket.remoteAddress, 'http');
        return this.plain(res, 401, 'unauthorized\n', { 'WWW-Authenticate': this.auth.challenges() });
      }
    }

    switch (route) {
      case 'healthz':
        return this.plain(res, 200, 'ok\n');
      case 'readyz': {
        if (this.deps.readiness) {
          const r = this.deps.readiness();
          return this.json(res, r.ready ? 200 : 503, { ready: r.ready, ...r.detail });
        }
        const r = readiness(this.deps.store, this.opts.maxFrameAgeMs);
        return this.json(res, r.ready ? 200 : 503, { ...r, cameraUp: this.deps.status().cameraUp });
      }
      case 'status':
        return this.json(res, 200, buildStatus({
          store: this.deps.store,
          status: this.deps.status,
          clients: () => limiter.clientCounts(),
          connections: () => limiter.connections,
          fps: () => this.fps.fps(),
          startedAt: this.startedAt,
          maxFrameAgeMs: this.opts.maxFrameAgeMs,
        }));
      case 'page':
        return this.send(res, 200, 'text/html; charset=utf-8', VIEWER_HTML, { 'Content-Security-Policy': VIEWER_CSP, 'X-Frame-Options': 'DENY' });
      case 'js':
        return this.send(res, 200, 'text/javascript; charset=utf-8', VIEWER_JS);
      case 'css':
        return this.send(res, 200, 'text/css; charset=utf-8', VIEWER_CSS);
      case 'icon':
        return this.send(res, 200, 'image/svg+xml', FAVICON_SVG);
      case 'snapshot':
        void this.snapshot.handle(req, res, this.abort.signal).catch((err) => {
          this.log.error({ err }, 'snapshot failed');
          res.destroy();
        });
        return;
      case 'stream':
        if (this.stopping) return this.plain(res, 503, 'shutting down\n', { 'Retry-After': '5' });
        if (req.method === 'HEAD') {
          res.writeHead(200, { ...COMMON_HEADERS, 'Content-Type': MJPEG_CONTENT_TYPE, 'Cache-Control': 'no-store' });
          res.end();
          return;
        }
        this.streamer.add(res);
        return;
    }
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
    this.deps.store.off('frame', this.onFrame);
    const grace = this.opts.shutdownGraceMs ?? 2000;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.abort.abort();
    server.closeIdleConnections();
    await this.streamer.endAll(grace);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, grace)))]);
    clearTimeout(timer);
    server.closeAllConnections();
    for (const s of this.conns.keys()) s.destroy();
    await closed;
    this.server = undefined;
  }
}
