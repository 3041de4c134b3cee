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
 * Every attempt uses a FRESH ssh2 Client (reusing one leaks listeners, ssh2 #451) on a socket we
 * open ourselves (noDelay + TCP keepalive) and destroy ourselves (ssh2's destroy() may leave it
 * open, #1124). ssh2 keepalive is off by default; we always set it, so a dead link is detected
 * within interval × (count + 1). The first failed attempt is just another failure: never exit.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Client, type ClientChannel, type TcpConnectionDetails } from 'ssh2';
import { Backoff, Clock, Logger, RateLimitedLog, TimerHandle, sleep, systemClock } from '@camrelay/common';
import type { AgentConfig } from './config';
import { ForwardHandler, TargetConnector } from './forward';
import { HostKeyCheck, makeHostVerifier } from './host-key';
import type { AgentMetrics, ConnectResult, DisconnectReason } from './metrics';

export type AgentState = 'idle' | 'connecting' | 'binding' | 'forwarding' | 'backoff' | 'unreachable' | 'stopped';

export interface SocketRequest {
  host: string;
  port: number;
  timeoutMs: number;
  signal: AbortSignal;
}
/** Resolves with a CONNECTED socket or rejects (err.code set) when TCP cannot get through. */
export type SocketFactory = (req: SocketRequest) => Promise<net.Socket>;

export const connectTcp: SocketFactory = ({ host, port, timeoutMs, signal }) =>
  new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, noDelay: true });
    const fail = (err: Error) => {
      cleanup();
      sock.destroy();
      reject(err);
    };
    const onAbort = () => fail(Object.assign(new Error('aborted'), { code: 'ABORT_ERR' }));
    const timer = setTimeout(() => fail(Object.assign(new Error(`TCP connect timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
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

type Outcome =
  | { kind: 'unreachable'; code: string }
  | { kind: 'failed'; result: ConnectResult }
  | { kind: 'ended'; reason: DisconnectReason };

interface Session {
  client: Client;
  sock: net.Socket;
  ready: boolean;
  readyAt: number;
  closed: boolean;
  hostKey?: HostKeyCheck;
  lastError?: Error & { level?: string };
  endReason?: DisconnectReason;
  bound: Map<string, boolean>;
  timers: Set<TimerHandle>;
  bindWarned: Set<string>;
}

const noop = () => {};

/** How long a socket ssh2 has ended may wait for the server's close before we destroy it. */
const END_GRACE_MS = 2000;

export class Supervisor extends EventEmitter {
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly connectSocket: SocketFactory;
  private readonly createClient: () => Client;
  private readonly handlers: ForwardHandler[];
  private readonly bindLog = new RateLimitedLog(60_000);
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private session: Session | undefined;
  private sessions = 0;
  private _state: AgentState = 'idle';
  private lastOutcome: Outcome['kind'] | undefined;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    const c = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff({ baseMs: c.reconnectMinMs, maxMs: c.reconnectMaxMs, minMs: Math.min(100, c.reconnectMinMs), random: opts.random });
    this.connectSocket = opts.connectSocket ?? connectTcp;
    this.createClient = opts.createClient ?? (() => new Client());
    this.handlers = c.forwards.map(
      (spec) =>
        new ForwardHandler({
          spec, connectTimeoutMs: c.forwardConnectTimeoutMs, maxConnections: c.forwardMaxConnections,
          metrics: opts.metrics, log: opts.log, connect: opts.connectTarget,
        }),
    );
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
    for (const f of this.opts.config.forwards) out[f.spec] = this.session?.bound.get(f.spec) === true;
    return out;
  }

  /** Seconds since the current session was authenticated, 0 without one. */
  sessionUptimeSeconds(): number {
    const s = this.session;
    return s && s.ready && !s.closed ? Math.max(0, (this.clock.now() - s.readyAt) / 1000) : 0;
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
      if (s && !s.closed) await this.closeSession(s, 'stopped');
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
    const c = this.opts.config;
    this.setState('connecting');
    this.opts.log.debug({ host: c.sshHost, port: c.sshPort }, 'connecting');
    let sock: net.Socket;
    try {
      sock = await this.probeConnect(signal);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      if (!signal.aborted) this.opts.metrics.connectAttempts.inc({ result: code === 'ETIMEDOUT' ? 'connect_timeout' : 'unreachable' });
      return { kind: 'unreachable', code };
    }
    if (signal.aborted) {
      sock.destroy();
      return { kind: 'ended', reason: 'stopped' };
    }
    return this.runSession(sock);
  }

  /**
   * Opens the TCP connection to the server. While nothing answers at all (a blackholed route: SYNs
   * dropped, no RST, no ICMP) another connect is started every UNREACHABLE_PROBE_MS next to the
   * pending ones, so a route that comes back is used within about one probe interval rather than
   * after the whole connect timeout. The first connect wins and the others are aborted; a fast
   * failure (refused, no route) ends the attempt at once. Every connect ends by the same deadline:
   * min(SSH_CONNECT_TIMEOUT_S, max(2 s, 4 x UNREACHABLE_PROBE_MS)) after the first.
   */
  private probeConnect(signal: AbortSignal): Promise<net.Socket> {
    const c = this.opts.config;
    const budgetMs = Math.min(c.connectTimeoutMs, Math.max(2000, 4 * c.unreachableProbeMs));
    const started = this.clock.now();
    return new Promise<net.Socket>((resolve, reject) => {
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      let settled = false;
      let pending = 0;
      let timer: TimerHandle | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) this.clock.clearTimeout(timer);
        timer = undefined;
        signal.removeEventListener('abort', onAbort);
        ac.abort(); // the losers
        fn();
      };
      const launch = () => {
        timer = undefined;
        if (settled) return;
        const remainingMs = budgetMs - (this.clock.now() - started);
        pending++;
        this.connectSocket({ host: c.sshHost, port: c.sshPort, timeoutMs: Math.max(1, remainingMs), signal: ac.signal }).then(
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
        if (remainingMs > 2 * c.unreachableProbeMs) timer = this.clock.setTimeout(launch, c.unreachableProbeMs);
      };
      if (signal.aborted) {
        reject(Object.assign(new Error('aborted'), { code: 'ABORT_ERR' }));
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      launch();
    });
  }

  private runSession(sock: net.Socket): Promise<Outcome> {
    const { config: c, metrics, log } = this.opts;
    return new Promise<Outcome>((resolve) => {
      const client = this.createClient();
      const s: Session = {
        client, sock, ready: false, readyAt: 0, closed: false,
        bound: new Map(), timers: new Set(), bindWarned: new Set(),
      };
      this.session = s;
      sock.setNoDelay(true);
      sock.setKeepAlive(true, c.keepaliveIntervalMs);
      sock.on('error', (err) => {
        s.lastError ??= Object.assign(err, { level: 'client-socket' });
      });

      const finish = () => {
        if (s.closed) return;
        this.teardown(s);
        resolve(this.classify(s));
      };
      // After an error (host key refused, auth failed, protocol error) or a DISCONNECT, ssh2 only
      // half-closes the socket (end()) and waits for the peer's close. A peer or middlebox that never
      // closes would leave this attempt, and so the whole agent, waiting forever: destroy our socket
      // ourselves after a short grace.
      let endArmed = false;
      const armEndGrace = () => {
        if (endArmed || s.closed) return;
        endArmed = true;
        this.timer(s, () => s.sock.destroy(), Math.min(END_GRACE_MS, c.connectTimeoutMs));
      };
      sock.once('finish', armEndGrace);
      client.on('error', (err: Error & { level?: string }) => {
        // The first error is the cause; later ones are consequences of it.
        s.lastError ??= err;
        log.debug({ err: err.message, level: err.level }, 'ssh client error');
        armEndGrace();
      });
      client.on('close', finish);
      sock.on('close', finish);
      client.on('ready', () => this.onReady(s));
      client.on('tcp connection', (info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void) =>
        this.onTcpConnection(s, info, accept, reject),
      );

      const verify = makeHostVerifier(c.hostKey, (check) => {
        s.hostKey = check;
        if (!check.ok) {
          metrics.hostKeyMismatches.inc();
          log.error(
            {
              host: c.sshHost, port: c.sshPort, got: check.fingerprint, keyType: check.keyType,
              expected: c.hostKey.kind === 'pinned' ? c.hostKey.accept : [], source: c.hostKey.kind === 'pinned' ? c.hostKey.source : undefined,
              reason: check.reason,
            },
            'HOST KEY MISMATCH: refusing to connect (possible man-in-the-middle, or the server key changed: update the pin)',
          );
        } else if (c.hostKey.kind === 'insecure') {
          log.warn({ got: check.fingerprint, keyType: check.keyType }, 'host key NOT verified (SSH_INSECURE_ACCEPT_ANY_HOST_KEY=true)');
        }
      });
      try {
        client.connect({
          sock,
          username: c.sshUser,
          privateKey: c.privateKey,
          passphrase: c.passphrase,
          // Only the key: no "none"/password round trips that count as failures on the server.
          authHandler: ['publickey'],
          hostVerifier: verify,
          keepaliveInterval: c.keepaliveIntervalMs,
          keepaliveCountMax: c.keepaliveCountMax,
          readyTimeout: c.connectTimeoutMs,
          ident: 'camrelay-tunnel-agent',
        });
      } catch (err) {
        s.lastError = err as Error;
        finish();
      }
    });
  }

  private classify(s: Session): Outcome {
    const { metrics, log } = this.opts;
    const e = s.lastError;
    if (!s.ready) {
      let result: ConnectResult;
      if (s.hostKey && !s.hostKey.ok) result = 'host_key_mismatch';
      else if (s.endReason === 'stopped') return { kind: 'ended', reason: 'stopped' };
      else if (e?.level === 'client-authentication') result = 'auth_failed';
      else if (e?.level === 'client-timeout') result = 'handshake_timeout';
      else result = 'handshake_failed';
      metrics.connectAttempts.inc({ result });
      if (result !== 'host_key_mismatch') {
        log.warn({ result, err: e?.message }, result === 'auth_failed' ? 'SSH authentication failed (is the public key in the server authorized_keys?)' : 'SSH connection failed');
      }
      return { kind: 'failed', result };
    }
    let reason: DisconnectReason;
    if (s.endReason) reason = s.endReason;
    else if (e?.message === 'Keepalive timeout') reason = 'keepalive_timeout';
    else if (e?.level === 'client-socket') reason = 'socket_error';
    else reason = 'server_closed';
    metrics.disconnects.inc({ reason });
    if (reason === 'keepalive_timeout') metrics.keepaliveTimeouts.inc();
    const uptimeS = Math.round((this.clock.now() - s.readyAt) / 100) / 10;
    if (reason === 'stopped') log.info({ uptimeS }, 'disconnected (stopping)');
    else log.warn({ reason, err: e?.message, uptimeS }, 'disconnected');
    return { kind: 'ended', reason };
  }

  private onReady(s: Session): void {
    const { config: c, metrics, log } = this.opts;
    if (s.closed) return;
    s.ready = true;
    s.readyAt = this.clock.now();
    metrics.connectAttempts.inc({ result: 'success' });
    if (this.sessions++ > 0) metrics.reconnects.inc();
    log.info({ host: c.sshHost, port: c.sshPort, user: c.sshUser, hostKey: s.hostKey?.fingerprint }, 'connected');
    this.setState('binding');
    this.timer(s, () => {
      if (this.backoff.failures > 0) log.debug('session stable; backoff reset');
      this.backoff.reset();
    }, c.stableAfterMs);
    for (const f of c.forwards) this.bind(s, f.spec);
  }

  private timer(s: Session, fn: () => void, ms: number): void {
    const h = this.clock.setTimeout(() => {
      s.timers.delete(h);
      if (!s.closed) fn();
    }, ms);
    s.timers.add(h);
  }

  private bind(s: Session, spec: string): void {
    const { config: c, metrics, log } = this.opts;
    const f = c.forwards.find((x) => x.spec === spec);
    if (!f || s.closed) return;
    let answered = false;
    // forwardIn has no reply timeout of its own. Replies come in request order, so a request that is
    // never answered wedges every later one (keepalives included): drop the session.
    this.timer(s, () => {
      if (answered) return;
      answered = true;
      metrics.forwardBindFailures.inc({ forward: spec });
      log.warn({ forward: spec, timeoutMs: c.connectTimeoutMs }, 'no reply to the forward request; dropping the session');
      void this.closeSession(s, 'bind_timeout');
    }, c.connectTimeoutMs);
    try {
      s.client.forwardIn(f.bindAddress, f.bindPort, (err) => {
        if (answered || s.closed) return;
        answered = true;
        if (err) {
          metrics.forwardBindFailures.inc({ forward: spec });
          if (!s.bindWarned.has(spec)) {
            s.bindWarned.add(spec);
            log.warn({ forward: spec, err: err.message, retryMs: c.forwardBindRetryMs }, 'forward bind refused (port still held by an old session?); retrying until it binds');
          } else {
            this.bindLog.warn(log, spec, { forward: spec, err: err.message }, 'forward still not bound; retrying');
          }
          this.timer(s, () => this.bind(s, spec), c.forwardBindRetryMs);
          return;
        }
        s.bound.set(spec, true);
        metrics.forwardBound.set({ forward: spec }, 1);
        log.info({ forward: spec, remote: `${f.bindAddress || '*'}:${f.bindPort}`, target: `${f.host}:${f.port}` }, 'forward bound');
        if (c.forwards.every((x) => s.bound.get(x.spec))) {
          log.info({ forwards: c.forwards.map((x) => x.spec) }, 'forwarding');
          this.setState('forwarding');
        }
      });
    } catch (err) {
      answered = true;
      s.lastError ??= err as Error;
      void this.closeSession(s, 'socket_error');
    }
  }

  private onTcpConnection(s: Session, info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void): void {
    const h =
      this.handlers.find((x) => x.spec.bindPort === info.destPort && x.spec.bindAddress === info.destIP) ??
      this.handlers.find((x) => x.spec.bindPort === info.destPort);
    if (!h || s.closed || !s.bound.get(h.spec.spec)) {
      reject();
      return;
    }
    h.handle(accept, reject);
  }

  /** Ends a session on purpose: cancel forwards (when stopping), say goodbye, destroy our socket. */
  private async closeSession(s: Session, reason: DisconnectReason): Promise<void> {
    if (s.closed) return;
    s.endReason ??= reason;
    if (reason === 'stopped' && s.ready) {
      const bound = this.opts.config.forwards.filter((f) => s.bound.get(f.spec));
      await Promise.all(
        bound.map(
          (f) =>
            new Promise<void>((resolve) => {
              const t = setTimeout(resolve, 1000);
              try {
                s.client.unforwardIn(f.bindAddress, f.bindPort, () => {
                  clearTimeout(t);
                  resolve();
                });
              } catch {
                clearTimeout(t);
                resolve();
              }
            }),
        ),
      );
    }
    if (s.closed) return;
    const closed = new Promise<void>((resolve) => {
      if (s.sock.destroyed) resolve();
      s.sock.once('close', () => resolve());
    });
    try {
      s.client.end();
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => s.sock.destroy(), reason === 'stopped' ? 500 : 0);
    await closed;
    clearTimeout(t);
  }

  private teardown(s: Session): void {
    const { config: c, metrics } = this.opts;
    s.closed = true;
    for (const t of s.timers) this.clock.clearTimeout(t);
    s.timers.clear();
    for (const h of this.handlers) h.closeAll();
    for (const f of c.forwards) metrics.forwardBound.set({ forward: f.spec }, 0);
    metrics.up.set(0);
    s.sock.destroy();
    s.client.removeAllListeners();
    s.client.on('error', noop);
    s.sock.on('error', noop);
    if (this.session === s) this.session = undefined;
  }
}
