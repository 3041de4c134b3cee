/**
 * The connection supervisor: one state machine that keeps the SSH session and its `-R` forwards up.
 *
 *   connecting ──ready──> binding ──all forwards bound──> forwarding
 *       │                   │  (bind refused: retry every FORWARD_BIND_RETRY_MS on the same session;
 *       │                   │   no reply within SSH_CONNECT_TIMEOUT_S: the session is wedged, drop it)
 *       ▼                   ▼
 *   unreachable (TCP connect failed: probe every UNREACHABLE_PROBE_MS, no growth; probes overlap while
 *                connects hang on a blackholed route)
 *   backoff     (the server was reached but said no, or the session died: full-jitter exponential
 *                backoff; host-key mismatches wait at least RECONNECT_MAX_S; reset after a session
 *                stayed up STABLE_AFTER_S)
 *
 * TCP probing lives in tcp-probe.ts, one session's life and teardown in session.ts; this file only
 * decides what comes next. Every attempt gets a FRESH ssh2 Client (ssh2 #451). Every timer goes
 * through the injected clock. The first failed attempt is just another failure: never exit.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { Client } from 'ssh2';
import { Backoff, Clock, Logger, RateLimitedLog, sleep, systemClock } from '@camrelay/common';
import type { AgentConfig, ForwardSpec } from './config';
import { ForwardHandler, TargetConnector } from './forward';
import type { AgentMetrics, ConnectResult, DisconnectReason } from './metrics';
import { SessionOutcome, SshSession } from './session';
import { SocketFactory, probeConnect, tcpConnector } from './tcp-probe';

export { connectTcp, tcpConnector } from './tcp-probe';
export type { SocketFactory, SocketRequest } from './tcp-probe';

export type AgentState = 'idle' | 'connecting' | 'binding' | 'forwarding' | 'backoff' | 'unreachable' | 'stopped';

export type SupervisorConfig = Pick<
  AgentConfig,
  | 'sshHost' | 'sshPort' | 'sshUser' | 'privateKey' | 'passphrase' | 'hostKey' | 'forwards'
  | 'keepaliveIntervalMs' | 'keepaliveCountMax' | 'connectTimeoutMs' | 'reconnectMinMs' | 'reconnectMaxMs'
  | 'stableAfterMs' | 'forwardConnectTimeoutMs' | 'forwardMaxConnections' | 'forwardBindRetryMs' | 'unreachableProbeMs'
>;

export interface SupervisorOptions {
  config: SupervisorConfig;
  metrics: AgentMetrics;
  log: Logger;
  clock?: Clock;
  random?: () => number;
  /** Opens the TCP connection to the server; default: real TCP with its deadline on `clock`. */
  connectSocket?: SocketFactory;
  connectTarget?: TargetConnector;
  createClient?: () => Client;
}

export interface StateInfo {
  state: AgentState;
  /** Set for backoff/unreachable: how long until the next attempt. */
  delayMs?: number;
  result?: ConnectResult;
  reason?: DisconnectReason;
}

type Outcome = { kind: 'unreachable'; code: string } | SessionOutcome;

export class Supervisor extends EventEmitter {
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly connectSocket: SocketFactory;
  private readonly createClient: () => Client;
  /** the current forwards and their handlers (same order); a reload replaces both */
  private forwards: readonly ForwardSpec[];
  private handlers: readonly ForwardHandler[];
  private readonly bindLog = new RateLimitedLog(60_000);
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private session: SshSession | undefined;
  private sessions = 0;
  private _state: AgentState = 'idle';
  private lastOutcome: Outcome['kind'] | undefined;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    const c = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff({ baseMs: c.reconnectMinMs, maxMs: c.reconnectMaxMs, minMs: Math.min(100, c.reconnectMinMs), random: opts.random });
    this.connectSocket = opts.connectSocket ?? tcpConnector(this.clock);
    this.createClient = opts.createClient ?? (() => new Client());
    this.forwards = c.forwards;
    this.handlers = c.forwards.map((spec) => this.handler(spec));
  }

  private handler(spec: ForwardSpec): ForwardHandler {
    const { config: c, metrics, log, connectTarget } = this.opts;
    return new ForwardHandler({
      spec, connectTimeoutMs: c.forwardConnectTimeoutMs, maxConnections: c.forwardMaxConnections, metrics, log, connect: connectTarget,
    });
  }

  /**
   * Applies a re-read camera list: forwards are matched by spec and camera. Unchanged ones keep their
   * handler, binding and connections; removed ones are cancelled on the live session, their
   * connections closed and their series removed; added ones get series and are requested at once (or
   * at the next session). Until every forward is bound again the agent is `binding` (not ready).
   */
  updateForwards(next: readonly ForwardSpec[]): { added: string[]; removed: string[]; unchanged: string[] } {
    const { metrics } = this.opts;
    const key = (f: ForwardSpec) => `${f.spec}\u0000${f.camera ?? ''}`;
    const old = new Map(this.handlers.map((h) => [key(h.spec), h]));
    const handlers = next.map((f) => old.get(key(f)) ?? this.handler(f));
    const kept = new Set(handlers);
    const removed = this.handlers.filter((h) => !kept.has(h));
    const added = handlers.filter((h) => !this.handlers.includes(h));
    for (const h of removed) {
      h.retire();
      metrics.removeForward(h.spec.spec);
    }
    for (const h of added) metrics.addForward(h.spec);
    this.forwards = handlers.map((h) => h.spec);
    this.handlers = handlers;
    // Also a session still in its handshake: it must bind the new set once it is ready, not the old one.
    const s = this.session;
    if (s && !s.closed) {
      const allBound = s.updateForwards(this.forwards, handlers);
      if (s.ready) {
        // a forward whose camera was renamed keeps its binding: its new series says so
        for (const h of added) if (s.isBound(h.spec.spec)) metrics.forwardBound.set(metrics.labels(h.spec.spec), 1);
        if (!allBound && this._state === 'forwarding') this.setState('binding');
        else if (allBound && this._state === 'binding') this.setState('forwarding');
      }
    }
    return {
      added: added.map((h) => h.spec.spec),
      removed: removed.map((h) => h.spec.spec),
      unchanged: handlers.filter((h) => !added.includes(h)).map((h) => h.spec.spec),
    };
  }

  get state(): AgentState {
    return this._state;
  }

  /** Ready = an authenticated session with every forward bound. */
  get ready(): boolean {
    return this._state === 'forwarding';
  }

  /** Per forward spec: bound on the server right now. */
  forwardStatus(): Record<string, boolean> {
    const out: Record<string, boolean> = {};
    for (const f of this.forwards) out[f.spec] = this.session?.isBound(f.spec) === true;
    return out;
  }

  /** Seconds since the current session was authenticated, 0 without one. */
  sessionUptimeSeconds(): number {
    return this.session?.uptimeSeconds() ?? 0;
  }

  /** Failures counted by the backoff since its last reset (for tests and logs). */
  get backoffFailures(): number {
    return this.backoff.failures;
  }

  get activeConnections(): number {
    return this.handlers.reduce((n, h) => n + h.activeCount, 0);
  }

  private setState(state: AgentState, extra: Omit<StateInfo, 'state'> = {}): void {
    this._state = state;
    this.opts.metrics.up.set(state === 'forwarding' ? 1 : 0);
    this.emit('state', { state, ...extra } satisfies StateInfo);
  }

  async start(): Promise<void> {
    if (this.abort) return;
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
  }

  async stop(): Promise<void> {
    const ac = this.abort;
    if (!ac) return;
    if (!ac.signal.aborted) {
      ac.abort();
      const s = this.session;
      if (s && !s.closed) await s.close('stopped');
    }
    await this.loop;
    this.setState('stopped');
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { config: c, metrics, log } = this.opts;
    while (!signal.aborted) {
      let outcome: Outcome;
      try {
        outcome = await this.attempt(signal);
      } catch (err) {
        // Defensive: attempt() handles its own errors; an exception here is a bug, not a reason to stop.
        log.error({ err }, 'connection attempt threw unexpectedly');
        outcome = { kind: 'failed', result: 'error' };
      }
      if (signal.aborted) break;
      let delay: number;
      if (outcome.kind === 'unreachable') {
        delay = c.unreachableProbeMs;
        if (this.lastOutcome !== 'unreachable') {
          log.warn({ host: c.sshHost, port: c.sshPort, code: outcome.code, probeMs: delay }, 'SSH server unreachable; probing until it answers');
        }
        this.setState('unreachable', { delayMs: delay });
      } else {
        const maxDelayMs = this.backoff.ceilingMs;
        delay = this.backoff.next();
        if (outcome.kind === 'failed' && outcome.result === 'host_key_mismatch') delay = Math.max(delay, c.reconnectMaxMs);
        log.info({ delayMs: delay, maxDelayMs, failures: this.backoff.failures }, 'backing off before reconnecting');
        this.setState('backoff', { delayMs: delay, ...(outcome.kind === 'failed' ? { result: outcome.result } : { reason: outcome.reason }) });
      }
      this.lastOutcome = outcome.kind;
      metrics.backoffSeconds.set(delay / 1000);
      await sleep(delay, signal, this.clock);
      metrics.backoffSeconds.set(0);
    }
  }

  private async attempt(signal: AbortSignal): Promise<Outcome> {
    const { config: c, metrics, log } = this.opts;
    this.setState('connecting');
    log.debug({ host: c.sshHost, port: c.sshPort }, 'connecting');
    let sock: net.Socket;
    try {
      sock = await probeConnect({
        host: c.sshHost, port: c.sshPort, connectTimeoutMs: c.connectTimeoutMs, probeMs: c.unreachableProbeMs,
        connect: this.connectSocket, clock: this.clock, signal,
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      if (!signal.aborted) metrics.connectAttempts.inc({ result: code === 'ETIMEDOUT' ? 'connect_timeout' : 'unreachable' });
      return { kind: 'unreachable', code };
    }
    if (signal.aborted) {
      sock.destroy();
      return { kind: 'ended', reason: 'stopped' };
    }
    const session = new SshSession({
      config: { ...c, forwards: this.forwards }, sock, client: this.createClient(), metrics, log, clock: this.clock,
      handlers: this.handlers, bindLog: this.bindLog,
      onReady: () => {
        if (this.sessions++ > 0) metrics.reconnects.inc();
        this.setState('binding');
        session.after(c.stableAfterMs, () => {
          if (this.backoff.failures > 0) log.debug('session stable; backoff reset');
          this.backoff.reset();
        });
      },
      onForwarding: () => this.setState('forwarding'),
    });
    this.session = session;
    try {
      return await session.run();
    } finally {
      if (this.session === session) this.session = undefined;
    }
  }
}
