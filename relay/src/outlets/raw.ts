/**
 * Raw TCP outlet (CLIENT_PORT): the camera's own protocol. Each connection gets ONE whole JPEG and
 * is closed, so `nc relay 8080 > frame.jpg` works like talking to the camera itself.
 *
 * On connect: the latest frame when it is at most MAX_FRAME_AGE_MS old, else the next published
 * frame (waiting at most CLIENT_WAIT_TIMEOUT_MS; on timeout the connection closes with nothing).
 * Clients that wait together get the very same Buffer. Whatever a client sends is read and thrown
 * away (a client that sends more than MAX_INPUT_BYTES is cut). A client that stops reading is
 * destroyed after CLIENT_WRITE_TIMEOUT_MS.
 */
import { setMaxListeners } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { listen, type Logger, type Service } from '@camrelay/common';
import type { Frame } from '../frame-store';
import type { BucketCounts, CameraMetrics } from '../metrics';
import type { OutletDeps } from './deps';

export interface RawOutletOptions {
  /** BIND_HOST */
  bindHost: string;
  /** CLIENT_PORT (0 = pick a free port; see .port after start) */
  rawPort: number;
  /** MAX_FRAME_AGE_MS */
  maxFrameAgeMs: number;
  /** CLIENT_WAIT_TIMEOUT_MS */
  waitTimeoutMs: number;
  /** CLIENT_WRITE_TIMEOUT_MS */
  writeTimeoutMs: number;
  /** SHUTDOWN_GRACE_MS: on stop(), in-flight sends get this long before they are cut (default 2000) */
  shutdownGraceMs?: number;
}

/** Bytes a raw client may send before it is disconnected (the protocol has no request). */
export const MAX_INPUT_BYTES = 4096;

/** Shared abort reasons: abort() without one builds a DOMException (with a stack) every time. */
const CLOSED = new Error('client closed');
const STOPPED = new Error('outlet stopping');

/** A raw connection's state (one small object per connection). */
interface Conn {
  /** normalised address holding the limiter slot */
  ip: string;
  /** Date.now() after which the sweeper destroys the socket; 0 = not writing yet */
  deadline: number;
  /** the frame being written */
  frame: Frame | undefined;
  /** only for clients that wait for the next frame */
  waitAbort: AbortController | undefined;
  onStop: (() => void) | undefined;
}

function destroySocket(this: net.Socket): void {
  this.destroy();
}

function discardInput(this: net.Socket): void {
  if (this.bytesRead > MAX_INPUT_BYTES) this.destroy();
}

export class RawOutlet implements Service {
  readonly name = 'raw-outlet';
  private server: net.Server | undefined;
  /** open connections and their state */
  private readonly conns = new Map<net.Socket, Conn>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly pending: CameraMetrics['pending'];
  private abort = RawOutlet.newAbort();
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;
  /** relay_delivery_latency_seconds{protocol="raw"}, counted in plain numbers */
  private readonly latency: BucketCounts;
  /** shared 'close' / 'finish' handlers (`this` is the socket): no closures per connection */
  private readonly onClose: (this: net.Socket) => void;
  private readonly onFinish: (this: net.Socket) => void;

  constructor(
    private readonly opts: RawOutletOptions,
    private readonly deps: OutletDeps,
  ) {
    this.log = deps.log;
    this.pending = deps.metrics.pending;
    this.latency = deps.metrics.deliveryLatency.child('raw');
    const conns = this.conns;
    const { limiter } = deps;
    this.onClose = function (this: net.Socket) {
      const conn = conns.get(this);
      if (!conn) return;
      conns.delete(this);
      if (conn.waitAbort) {
        conn.waitAbort.abort(CLOSED);
        outletAbort().removeEventListener('abort', conn.onStop as () => void);
      }
      limiter.leave('raw');
      limiter.give(conn.ip);
    };
    const outletAbort = () => this.abort.signal;
    const pending = this.pending;
    const latency = this.latency;
    this.onFinish = function (this: net.Socket) {
      const frame = conns.get(this)?.frame;
      if (!frame) return;
      pending.served.raw++;
      pending.bytes.raw += frame.data.length;
      latency.observe((performance.now() - frame.publishedMono) / 1000);
    };
  }

  /** One listener per waiting client is added to the stop signal: lift the leak warning. */
  private static newAbort(): AbortController {
    const a = new AbortController();
    setMaxListeners(0, a.signal);
    return a;
  }

  /** The real listening port after start() (useful with port 0), or -1. */
  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? a.port : -1;
  }

  /** Open client connections (tests, shutdown). */
  get connections(): number {
    return this.conns.size;
  }

  async start(): Promise<void> {
    if (this.server) return;
    this.abort = RawOutlet.newAbort();
    this.stopping = undefined;
    // allowHalfOpen: a client that half-closes right after connecting (`nc -N`, ncat, shutdown(SHUT_WR))
    // still gets its frame; we end our side ourselves once the frame is written.
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.onConnection(s));
    this.server = server;
    const w = this.opts.writeTimeoutMs;
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, w / 4)));
    this.sweeper.unref();
    try {
      await listen(server, { port: this.opts.rawPort, host: this.opts.bindHost }, (err) => this.log.error({ err }, 'raw outlet server error'));
    } catch (err) {
      // e.g. EADDRINUSE: leave the outlet startable again
      this.server = undefined;
      clearInterval(this.sweeper);
      throw err;
    }
  }

  private onConnection(socket: net.Socket): void {
    // Everything here runs once per frame served: it is the raw outlet's cost per frame (see
    // bench/findings.md). Handlers are shared functions (no closures), the slot and the live count
    // are plain counter updates, metrics are plain numbers added in at scrape time, the write
    // timeout is one sweeper for all sockets, and a client that gets the cached frame is served
    // synchronously with no AbortController, Promise or stop listener.
    socket.on('error', destroySocket);
    const address = socket.remoteAddress;
    if (!address) {
      // already gone (reset before we got here): nothing to serve, nothing to count
      socket.destroy();
      return;
    }
    const { limiter, store } = this.deps;
    const slot = limiter.take(address);
    if (!slot.ok) {
      limiter.reject(slot.reason, address, 'raw');
      socket.destroy();
      return;
    }
    limiter.enter('raw');
    this.pending.connections.raw++;
    const conn: Conn = { ip: slot.ip, deadline: 0, frame: undefined, waitAbort: undefined, onStop: undefined };
    this.conns.set(socket, conn);
    // on(), not once(): each is emitted once per socket anyway, and once() allocates a wrapper
    socket.on('close', this.onClose);
    // The protocol has no request: read and discard whatever arrives (so closing never resets the
    // connection because of unread input), but cut clients that flood. The client half-closing (nc
    // with stdin at EOF) is normal: our side stays open until the frame is sent; once both sides
    // have ended the socket destroys itself (autoDestroy).
    socket.on('data', discardInput);

    const fresh = store.fresh(this.opts.maxFrameAgeMs);
    if (fresh) {
      store.nudge(); // a polling audience keeps the source at MAX_FPS, one fetch per frame served
      this.send(socket, conn, fresh);
      return;
    }
    const waitAbort = new AbortController();
    conn.waitAbort = waitAbort;
    conn.onStop = () => waitAbort.abort(STOPPED);
    this.abort.signal.addEventListener('abort', conn.onStop, { once: true });
    void store.next(store.latest?.seq ?? 0, this.opts.waitTimeoutMs, waitAbort.signal).then((f) => this.send(socket, conn, f));
  }

  private send(socket: net.Socket, conn: Conn, frame: Frame | undefined): void {
    if (socket.destroyed) return;
    // from now on a client that stops reading is cut by the sweeper after the write timeout
    conn.deadline = Date.now() + this.opts.writeTimeoutMs;
    if (!frame) {
      socket.end();
      return;
    }
    conn.frame = frame;
    // 'finish': the whole frame is handed to the kernel and FIN follows it (never after destroy);
    // the client closing its side then closes the socket.
    socket.on('finish', this.onFinish);
    socket.write(frame.data);
    socket.end();
  }

  /** Destroys sockets whose write has taken longer than the write timeout. */
  private sweep(): void {
    const now = Date.now();
    for (const [socket, conn] of this.conns) {
      if (conn.deadline !== 0 && now > conn.deadline) socket.destroy();
    }
  }

  /** Stops accepting, lets sends in flight finish within shutdownGraceMs, then cuts the rest. */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.abort.abort();
    const grace = this.opts.shutdownGraceMs ?? 2000;
    const sockets = this.conns;
    if (sockets.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          const check = () => (sockets.size === 0 ? resolve() : undefined);
          for (const s of sockets.keys()) s.once('close', check);
          check();
        }),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, grace);
        }),
      ]);
      clearTimeout(timer);
      for (const s of sockets.keys()) s.destroy();
    }
    await closed;
    clearInterval(this.sweeper);
    this.server = undefined;
  }
}
