/**
 * TCP probing of the SSH server: one connect (noDelay, deadline on the injected clock), and the
 * overlapping probe race used while nothing answers at all.
 */
import net from 'node:net';
import { Clock, TimerHandle, systemClock } from '@camrelay/common';

export interface SocketRequest {
  host: string;
  port: number;
  timeoutMs: number;
  signal: AbortSignal;
}
/** Resolves with a CONNECTED socket or rejects (err.code set) when TCP cannot get through. */
export type SocketFactory = (req: SocketRequest) => Promise<net.Socket>;

const codeError = (message: string, code: string) => Object.assign(new Error(message), { code });

/** A SocketFactory that opens real TCP connections, timing them out on `clock`. */
export function tcpConnector(clock: Clock = systemClock): SocketFactory {
  return ({ host, port, timeoutMs, signal }) =>
    new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, noDelay: true });
      const fail = (err: Error) => {
        cleanup();
        sock.destroy();
        reject(err);
      };
      const onAbort = () => fail(codeError('aborted', 'ABORT_ERR'));
      const timer = clock.setTimeout(() => fail(codeError(`TCP connect timed out after ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
      const cleanup = () => {
        clock.clearTimeout(timer);
        sock.off('error', fail);
        signal.removeEventListener('abort', onAbort);
      };
      sock.once('error', fail);
      sock.once('connect', () => {
        cleanup();
        resolve(sock);
      });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
}

/** Real TCP connects with their deadline on the system clock. */
export const connectTcp: SocketFactory = tcpConnector(systemClock);

export interface ProbeOptions {
  host: string;
  port: number;
  /** SSH_CONNECT_TIMEOUT_S in ms: the budget never exceeds it. */
  connectTimeoutMs: number;
  /** UNREACHABLE_PROBE_MS: a new connect starts this often while the others hang. */
  probeMs: number;
  connect: SocketFactory;
  clock: Clock;
  signal: AbortSignal;
}

/** How long every connect of one race may take, from its start: min(connect timeout, max(2 s, 4 x probe)). */
export function probeBudgetMs(connectTimeoutMs: number, probeMs: number): number {
  return Math.min(connectTimeoutMs, Math.max(2000, 4 * probeMs));
}

/**
 * Opens the TCP connection to the server. While nothing answers at all (a blackholed route: SYNs
 * dropped, no RST, no ICMP) another connect is started every UNREACHABLE_PROBE_MS next to the
 * pending ones, so a route that comes back is used within about one probe interval rather than
 * after the whole connect timeout. The first connect wins and the others are aborted; a fast
 * failure (refused, no route) ends the attempt at once. Every connect ends by the same deadline:
 * probeBudgetMs() after the first.
 */
export function probeConnect(o: ProbeOptions): Promise<net.Socket> {
  const { clock, signal } = o;
  const budgetMs = probeBudgetMs(o.connectTimeoutMs, o.probeMs);
  const started = clock.now();
  return new Promise<net.Socket>((resolve, reject) => {
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    let settled = false;
    let pending = 0;
    let timer: TimerHandle | undefined;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      signal.removeEventListener('abort', onAbort);
      ac.abort(); // the losers
      fn();
    };
    const launch = () => {
      timer = undefined;
      if (settled) return;
      const remainingMs = budgetMs - (clock.now() - started);
      pending++;
      o.connect({ host: o.host, port: o.port, timeoutMs: Math.max(1, remainingMs), signal: ac.signal }).then(
        (sock) => {
          pending--;
          if (settled) sock.destroy();
          else finish(() => resolve(sock));
        },
        (err: NodeJS.ErrnoException) => {
          pending--;
          // A timeout means "nothing answered": only the last one still trying ends the attempt.
          if (err.code === 'ETIMEDOUT' && (pending > 0 || timer !== undefined)) return;
          finish(() => reject(err));
        },
      );
      if (remainingMs > 2 * o.probeMs) timer = clock.setTimeout(launch, o.probeMs);
    };
    if (signal.aborted) {
      reject(codeError('aborted', 'ABORT_ERR'));
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    launch();
  });
}
