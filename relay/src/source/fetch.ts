/**
 * One frame from a camera connection: read to EOF under a connect timeout, an idle (no byte)
 * timeout, a total deadline and a size cap, then validate. Used by the pull source (it opens the
 * connection) and the push source (the camera opened it). Never throws; every failure has a reason
 * from FETCH_ERROR_REASONS.
 *
 * Allocation: every Buffer a Node process allocates counts against V8's old-generation limit until
 * the next full (mark-compact) GC, so the bytes a relay receives set how often that GC runs, and
 * each full GC drops the optimised code of short-lived closures that then gets compiled again
 * (docs/soak.md, "What the soak found"). A pull source therefore keeps one FrameReader: the socket
 * it opens reads into the reader's scratch buffer (net's `onread`) instead of a fresh Buffer per
 * read, the bytes gather in a buffer kept from frame to frame, and each frame costs one allocation
 * of its own size. Its handlers are made once per reader, not per fetch.
 */
import net from 'node:net';
import { checkJpeg, Clock, systemClock, TimerHandle } from '@camrelay/common';
import type { FetchErrorReason } from '../metrics';

export type FetchOutcome =
  | { ok: true; data: Buffer; ms: number }
  | { ok: false; reason: FetchErrorReason; message: string; ms: number; bytes: number };

export interface ReadLimits {
  /** only for connections we open; ignored when the socket is already connected */
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  deadlineMs: number;
  maxBytes: number;
}

/**
 * Opens a TCP connection; injectable so tests can count or fail connections. `onread` (net's
 * option) is where the reader wants the bytes; a factory may ignore it, and the reader then takes
 * them from 'data' events.
 */
export type SocketFactory = (opts: { host: string; port: number; onread?: net.OnReadOpts }) => net.Socket;

export const defaultSocketFactory: SocketFactory = ({ host, port, onread }) => net.connect({ host, port, noDelay: true, onread });

/** Maps a socket error to a reason. */
export function reasonOf(err: NodeJS.ErrnoException, connected: boolean): FetchErrorReason {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return connected ? 'idle_timeout' : 'connect_timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return connected ? 'other' : 'refused';
    default:
      return 'other';
  }
}

/**
 * A socket error as text WITHOUT the peer's address: Node's messages ("connect ECONNREFUSED
 * 10.0.0.5:1234", "getaddrinfo ENOTFOUND cam.lan") name the camera or tunnel end, and the message
 * ends up in /status.json on a public port. The log lines name host and port in fields of their own.
 */
export function describeSocketError(err: NodeJS.ErrnoException): string {
  if (err.code) return err.syscall ? `${err.syscall} ${err.code}` : err.code;
  return 'socket error';
}

const SCRATCH_BYTES = 64 * 1024;
/**
 * Between reads a reader keeps its gathering buffer only up to this, or twice its last good frame:
 * one oversized answer (up to FRAME_MAX_BYTES, 4 MiB by default) must not stay resident for good.
 */
const KEEP_BYTES = 256 * 1024;
const ignore = (): void => undefined;

function failureText(reason: 'empty' | 'not_jpeg' | 'truncated', bytes: number): string {
  const what = reason === 'empty' ? 'connection closed without data' : reason === 'not_jpeg' ? 'data does not start with a JPEG SOI marker' : 'data does not end with a JPEG EOI marker';
  return `${what} (${bytes} bytes)`;
}

type Finish = { ok: true; data: Buffer } | { ok: false; reason: FetchErrorReason; message: string };

/**
 * Reads frames one at a time (the next read starts after the previous one settled). Keep one per
 * pull source; `readFrame` makes a single-use one for a socket someone else opened.
 */
export class FrameReader {
  /** pass to the socket factory, so the socket reads into `scratch` */
  readonly onread: net.OnReadOpts;
  private readonly scratch: Buffer;
  private gathered: Buffer = Buffer.alloc(0);
  /** bytes of the last whole frame read */
  private lastFrameBytes = 0;
  private limits: ReadLimits = { connectTimeoutMs: 0, idleTimeoutMs: 0, deadlineMs: 0, maxBytes: 0 };
  private socket: net.Socket | undefined;
  private signal: AbortSignal | undefined;
  private resolve: ((o: FetchOutcome) => void) | undefined;
  private bytes = 0;
  private connected = false;
  private t0 = 0;
  private lastByteAt = 0;
  private idleTimer: TimerHandle | undefined;
  private connectTimer: TimerHandle | undefined;
  private deadlineTimer: TimerHandle | undefined;

  /** `reuse`: keep the gathering buffer for the next frame (the frame is then a copy of its bytes) */
  constructor(
    private readonly clock: Clock = systemClock,
    private readonly reuse = true,
  ) {
    this.scratch = reuse ? Buffer.allocUnsafeSlow(SCRATCH_BYTES) : Buffer.alloc(0);
    this.onread = { buffer: this.scratch, callback: (n, buf) => this.received(buf, n) };
  }

  /**
   * Reads one frame from `socket`. `connected` says whether the socket is already connected
   * (push); otherwise the connect timeout applies until 'connect'. Destroys the socket when done.
   */
  read(socket: net.Socket, limits: ReadLimits, connected: boolean, signal?: AbortSignal): Promise<FetchOutcome> {
    if (this.socket) throw new Error('FrameReader: one read at a time');
    return new Promise((resolve) => {
      this.socket = socket;
      this.limits = limits;
      this.signal = signal;
      this.resolve = resolve;
      this.bytes = 0;
      this.connected = connected;
      this.t0 = this.clock.now();
      this.deadlineTimer = this.clock.setTimeout(this.onDeadline, limits.deadlineMs);
      if (signal?.aborted) return this.onAbort();
      signal?.addEventListener('abort', this.onAbort, { once: true });
      if (connected) this.armIdle(limits.idleTimeoutMs);
      else {
        this.connectTimer = this.clock.setTimeout(this.onConnectTimer, limits.connectTimeoutMs);
        socket.once('connect', this.onConnect);
      }
      socket.on('data', this.onData);
      socket.on('error', this.onError);
      socket.on('end', this.onEnd);
      socket.on('close', this.onClose);
    });
  }

  /** what the reader holds between reads besides its scratch buffer (for tests) */
  get retainedBytes(): number {
    return this.gathered.length;
  }

  /** the `onread` callback; false pauses the socket */
  private received(buf: Uint8Array, n: number): boolean {
    if (!this.socket) return false;
    this.gather(buf, n);
    return this.socket !== undefined;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.gather(chunk, chunk.length);
  };

  private gather(src: Uint8Array, n: number): void {
    const end = this.bytes + n;
    if (end > this.limits.maxBytes) {
      this.bytes = end;
      return this.fail('too_large', `frame exceeds FRAME_MAX_BYTES (${this.limits.maxBytes})`);
    }
    if (end > this.gathered.length) {
      const grown = Buffer.allocUnsafeSlow(Math.min(this.limits.maxBytes, Math.max(end, 2 * this.gathered.length, SCRATCH_BYTES)));
      this.gathered.copy(grown, 0, 0, this.bytes);
      this.gathered = grown;
    }
    this.gathered.set(n === src.length ? src : src.subarray(0, n), this.bytes);
    this.bytes = end;
    this.lastByteAt = this.clock.now();
  }

  private armIdle(ms: number): void {
    this.clock.clearTimeout(this.idleTimer);
    this.idleTimer = this.clock.setTimeout(this.onIdleTimer, ms);
  }

  /** one idle timer per read, not one per chunk: when it fires early it waits out the rest */
  private readonly onIdleTimer = (): void => {
    const quiet = this.bytes > 0 ? this.clock.now() - this.lastByteAt : Infinity;
    const idle = this.limits.idleTimeoutMs;
    if (quiet < idle) return this.armIdle(idle - quiet);
    this.fail('idle_timeout', `no byte for ${idle} ms after ${this.bytes} bytes`);
  };

  private readonly onConnect = (): void => {
    this.connected = true;
    this.clock.clearTimeout(this.connectTimer);
    this.armIdle(this.limits.idleTimeoutMs);
  };

  private readonly onConnectTimer = (): void => {
    this.fail('connect_timeout', `no connection within ${this.limits.connectTimeoutMs} ms`);
  };

  private readonly onDeadline = (): void => {
    this.fail('deadline', `fetch took longer than ${this.limits.deadlineMs} ms (${this.bytes} bytes so far)`);
  };

  private readonly onAbort = (): void => {
    this.fail('other', 'aborted (shutting down)');
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.fail(reasonOf(err, this.connected), describeSocketError(err));
  };

  private readonly onClose = (): void => {
    this.fail('reset', `connection closed abruptly after ${this.bytes} bytes`);
  };

  private readonly onEnd = (): void => {
    if (!this.socket) return;
    const bytes = this.gathered.subarray(0, this.bytes);
    const check = checkJpeg(bytes);
    if (!check.ok) return this.fail(check.reason, failureText(check.reason, this.bytes));
    const frame = bytes.subarray(0, check.length);
    this.lastFrameBytes = frame.length;
    this.finish({ ok: true, data: this.reuse ? Buffer.from(frame) : frame });
  };

  private fail(reason: FetchErrorReason, message: string): void {
    this.finish({ ok: false, reason, message });
  }

  private finish(o: Finish): void {
    const socket = this.socket;
    const resolve = this.resolve;
    if (!socket || !resolve) return;
    this.clock.clearTimeout(this.idleTimer);
    this.clock.clearTimeout(this.connectTimer);
    this.clock.clearTimeout(this.deadlineTimer);
    this.idleTimer = this.connectTimer = this.deadlineTimer = undefined;
    this.signal?.removeEventListener('abort', this.onAbort);
    socket.removeListener('connect', this.onConnect);
    socket.removeListener('data', this.onData);
    socket.removeListener('error', this.onError);
    socket.removeListener('end', this.onEnd);
    socket.removeListener('close', this.onClose);
    socket.on('error', ignore); // a late error from the destroyed socket
    socket.destroy();
    const bytes = this.bytes;
    this.socket = this.signal = this.resolve = undefined;
    if (!this.reuse || this.gathered.length > Math.max(KEEP_BYTES, 2 * this.lastFrameBytes)) this.gathered = Buffer.alloc(0);
    const ms = this.clock.now() - this.t0;
    resolve(o.ok ? { ...o, ms } : { ...o, ms, bytes });
  }
}

/** Reads one frame from a socket someone else opened or made (the push source, tests). */
export function readFrame(socket: net.Socket, limits: ReadLimits, connected: boolean, clock: Clock = systemClock, signal?: AbortSignal): Promise<FetchOutcome> {
  return new FrameReader(clock, false).read(socket, limits, connected, signal);
}
