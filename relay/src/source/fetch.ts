/**
 * One frame from a camera connection: read to EOF under a connect timeout, an idle (no byte)
 * timeout, a total deadline and a size cap, then validate. Used by the pull source (it opens the
 * connection) and the push source (the camera opened it). Never throws; every failure has a reason
 * from FETCH_ERROR_REASONS.
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

/** Opens a TCP connection; injectable so tests can count or fail connections. */
export type SocketFactory = (opts: { host: string; port: number }) => net.Socket;

export const defaultSocketFactory: SocketFactory = ({ host, port }) => net.connect({ host, port, noDelay: true });

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

/**
 * Reads one frame from `socket`. `connected` says whether the socket is already connected (push);
 * otherwise the connect timeout applies until 'connect'. Destroys the socket when done.
 */
export function readFrame(socket: net.Socket, limits: ReadLimits, connected: boolean, clock: Clock = systemClock, signal?: AbortSignal): Promise<FetchOutcome> {
  return new Promise((resolve) => {
    const t0 = clock.now();
    const chunks: Buffer[] = [];
    let bytes = 0;
    let isConnected = connected;
    let done = false;
    let idleTimer: TimerHandle | undefined;
    let connectTimer: TimerHandle | undefined;

    const finish = (o: { ok: true; data: Buffer } | { ok: false; reason: FetchErrorReason; message: string }) => {
      if (done) return;
      done = true;
      clock.clearTimeout(idleTimer);
      clock.clearTimeout(connectTimer);
      clock.clearTimeout(deadlineTimer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('data', onData);
      socket.destroy();
      const elapsed = clock.now() - t0;
      resolve(o.ok ? { ...o, ms: elapsed } : { ...o, ms: elapsed, bytes });
    };
    const fail = (reason: FetchErrorReason, message: string) => finish({ ok: false, reason, message });
    const armIdle = () => {
      clock.clearTimeout(idleTimer);
      idleTimer = clock.setTimeout(() => fail('idle_timeout', `no byte for ${limits.idleTimeoutMs} ms after ${bytes} bytes`), limits.idleTimeoutMs);
    };
    const onAbort = () => fail('other', 'aborted (shutting down)');
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limits.maxBytes) {
        fail('too_large', `frame exceeds FRAME_MAX_BYTES (${limits.maxBytes})`);
        return;
      }
      chunks.push(chunk);
      armIdle();
    };

    const deadlineTimer = clock.setTimeout(() => fail('deadline', `fetch took longer than ${limits.deadlineMs} ms (${bytes} bytes so far)`), limits.deadlineMs);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });

    if (isConnected) armIdle();
    else {
      connectTimer = clock.setTimeout(() => fail('connect_timeout', `no connection within ${limits.connectTimeoutMs} ms`), limits.connectTimeoutMs);
      socket.once('connect', () => {
        isConnected = true;
        clock.clearTimeout(connectTimer);
        armIdle();
      });
    }
    socket.on('data', onData);
    socket.on('error', (err: NodeJS.ErrnoException) => fail(reasonOf(err, isConnected), describeSocketError(err)));
    socket.on('end', () => {
      if (done) return;
      const buf = Buffer.concat(chunks, bytes);
      const check = checkJpeg(buf);
      if (check.ok) finish({ ok: true, data: check.length === buf.length ? buf : buf.subarray(0, check.length) });
      else fail(check.reason, `${check.reason === 'empty' ? 'connection closed without data' : check.reason === 'not_jpeg' ? 'data does not start with a JPEG SOI marker' : 'data does not end with a JPEG EOI marker'} (${bytes} bytes)`);
    });
    socket.on('close', () => fail('reset', `connection closed abruptly after ${bytes} bytes`));
  });
}
