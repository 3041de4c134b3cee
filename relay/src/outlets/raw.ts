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
import type { Frame, FrameStore } from '../frame-store';
import type { RelayMetrics } from '../metrics';
import type { ClientLimiter } from './limits';

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

export interface OutletDeps {
  store: FrameStore;
  metrics: RelayMetrics;
  limiter: ClientLimiter;
  log: Logger;
}

/** Bytes a raw client may send before it is disconnected (the protocol has no request). */
export const MAX_INPUT_BYTES = 4096;

/** Shared abort reasons: abort() without one builds a DOMException (with a stack) every time. */
const CLOSED = new Error('client closed');
const STOPPED = new Error('outlet stopping');

export class RawOutlet implements Service {
  readonly name = 'raw-outlet';
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private abort = RawOutlet.newAbort();
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;
  /** label children resolved once, not per frame */
  private readonly served;
  private readonly sent;
  private readonly latency;

  constructor(
    private readonly opts: RawOutletOptions,
    private readonly deps: OutletDeps,
  ) {
    this.log = deps.log;
    this.served = deps.metrics.framesServed.labels({ protocol: 'raw' });
    this.sent = deps.metrics.bytesSent.labels({ protocol: 'raw' });
    this.latency = deps.metrics.deliveryLatency.labels({ protocol: 'raw' });
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
    return this.sockets.size;
  }

  async start(): Promise<void> {
    if (this.server) return;
    this.abort = RawOutlet.newAbort();
    this.stopping = undefined;
    // allowHalfOpen: a client that half-closes right after connecting (`nc -N`, ncat, shutdown(SHUT_WR))
    // still gets its frame; we end our side ourselves once the frame is written.
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.onConnection(s));
    this.server = server;
    try {
      await listen(server, { port: this.opts.rawPort, host: this.opts.bindHost }, (err) => this.log.error({ err }, 'raw outlet server error'));
    } catch (err) {
      // e.g. EADDRINUSE: leave the outlet startable again
      this.server = undefined;
      throw err;
    }
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    if (!socket.remoteAddress) {
      // already gone (reset before we got here): nothing to serve, nothing to count
      socket.destroy();
      return;
    }
    const { limiter, metrics } = this.deps;
    const admission = limiter.admit(socket.remoteAddress);
    if (!admission.ok) {
      limiter.reject(admission.reason, socket.remoteAddress, 'raw');
      socket.destroy();
      return;
    }
    const untrack = limiter.track('raw');
    this.sockets.add(socket);
    metrics.clientConnections.inc({ protocol: 'raw' });
    socket.setNoDelay(true);

    // Per-connection work is the raw outlet's cost per frame (see bench/findings.md): a client that
    // gets the cached frame is served synchronously, with no AbortController, Promise or stop
    // listener; only clients that must wait for the next frame get those.
    const { store } = this.deps;
    const fresh = store.fresh(this.opts.maxFrameAgeMs);
    let timer: NodeJS.Timeout | undefined;
    const waitAbort = fresh ? undefined : new AbortController();
    const onStop = () => waitAbort?.abort(STOPPED);
    socket.once('close', () => {
      clearTimeout(timer);
      if (waitAbort) {
        waitAbort.abort(CLOSED);
        this.abort.signal.removeEventListener('abort', onStop);
      }
      this.sockets.delete(socket);
      untrack();
      admission.lease.release();
    });

    // The protocol has no request: read and discard whatever arrives (so closing never resets the
    // connection because of unread input), but cut clients that flood.
    let input = 0;
    socket.on('data', (chunk: Buffer) => {
      input += chunk.length;
      if (input > MAX_INPUT_BYTES) socket.destroy();
    });
    // The client half-closing (nc with stdin at EOF) is normal: our side stays open until the frame
    // is sent; once both sides have ended the socket destroys itself (autoDestroy).

    const send = (frame: Frame | undefined) => {
      if (socket.destroyed) return;
      timer = setTimeout(() => socket.destroy(), this.opts.writeTimeoutMs);
      if (!frame) {
        socket.end();
        return;
      }
      socket.write(frame.data, (err) => {
        // Node also calls back (without an error) when the socket was destroyed mid-write.
        if (err || socket.destroyed) return;
        this.served.inc();
        this.sent.inc(frame.data.length);
        this.latency.observe((performance.now() - frame.publishedMono) / 1000);
      });
      // end() after the frame: FIN follows the data; the client closing its side closes the socket.
      // A client that never closes is destroyed by the timer once the write timeout passes.
      socket.end();
    };

    if (!waitAbort) {
      store.nudge(); // a polling audience keeps the source at MAX_FPS, one fetch per frame served
      send(fresh);
      return;
    }
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    void store.next(store.latest?.seq ?? 0, this.opts.waitTimeoutMs, waitAbort.signal).then(send);
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
    if (this.sockets.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          const check = () => (this.sockets.size === 0 ? resolve() : undefined);
          for (const s of this.sockets) s.once('close', check);
          check();
        }),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, grace);
        }),
      ]);
      clearTimeout(timer);
      for (const s of this.sockets) s.destroy();
    }
    await closed;
    this.server = undefined;
  }
}
