/**
 * One SSH session's life, from a connected socket to its teardown: a FRESH ssh2 Client (reusing one
 * leaks listeners, ssh2 #451) on our own socket (noDelay + TCP keepalive), the host-key check,
 * ssh2 keepalive (off by default in ssh2: we always set it, so a dead link is detected within
 * interval x (count + 1)), the tcpip-forward binds with their retries and reply timeout, dispatch of
 * forwarded channels, and a teardown that destroys our socket ourselves (ssh2's destroy()/end() may
 * leave it open, #1124). Every timer of ours goes through the injected clock; ssh2's own timers
 * (readyTimeout, keepalive) are ssh2's.
 *
 * run() resolves once with how the session ended, classified for the supervisor's backoff.
 */
import net from 'node:net';
import type { Client, ClientChannel, TcpConnectionDetails } from 'ssh2';
import { Clock, Logger, RateLimitedLog, TimerHandle } from '@camrelay/common';
import type { AgentConfig, ForwardSpec } from './config';
import type { ForwardHandler } from './forward';
import { HostKeyCheck, makeHostVerifier } from './host-key';
import type { AgentMetrics, ConnectResult, DisconnectReason } from './metrics';

export type SessionConfig = Pick<
  AgentConfig,
  | 'sshHost' | 'sshPort' | 'sshUser' | 'privateKey' | 'passphrase' | 'hostKey' | 'forwards'
  | 'keepaliveIntervalMs' | 'keepaliveCountMax' | 'connectTimeoutMs' | 'forwardBindRetryMs'
>;

/** How a session ended: refused before it was ready, or ended after. */
export type SessionOutcome = { kind: 'failed'; result: ConnectResult } | { kind: 'ended'; reason: DisconnectReason };

export interface SessionOptions {
  config: SessionConfig;
  /** A connected socket; the session owns it from now on. */
  sock: net.Socket;
  /** A client never used before. */
  client: Client;
  metrics: AgentMetrics;
  log: Logger;
  clock: Clock;
  /** Where forwarded channels go (owned by the caller: they outlive a session). */
  handlers: readonly ForwardHandler[];
  /** Rate limit of the "still not bound" warning, shared across sessions. */
  bindLog?: RateLimitedLog;
  /** Authenticated (before the forwards are requested). */
  onReady?: () => void;
  /** Every forward bound. */
  onForwarding?: () => void;
}

const noop = () => {};

/** How long a socket ssh2 has ended may wait for the server's close before we destroy it. */
export const END_GRACE_MS = 2000;
/** How long stop() waits for the server to confirm each cancel-tcpip-forward. */
export const UNFORWARD_WAIT_MS = 1000;
/** How long a deliberate stop waits for the server's close after our DISCONNECT. */
export const STOP_CLOSE_WAIT_MS = 500;

export class SshSession {
  private readonly c: SessionConfig;
  private readonly client: Client;
  private readonly sock: net.Socket;
  private readonly clock: Clock;
  private readonly bindLog: RateLimitedLog;
  private _ready = false;
  private _readyAt = 0;
  private _closed = false;
  private started = false;
  private endArmed = false;
  private hostKey?: HostKeyCheck;
  private lastError?: Error & { level?: string };
  private endReason?: DisconnectReason;
  private readonly bound = new Map<string, boolean>();
  private readonly timers = new Set<TimerHandle>();
  private readonly bindWarned = new Set<string>();
  /** forwards with a tcpip-forward request out (one at a time per forward) */
  private readonly requesting = new Set<string>();
  /** forwards waiting to retry a refused request, and their timer */
  private readonly retries = new Map<string, TimerHandle>();
  /** the forwards of this session: the config's, until a reload changes them (updateForwards) */
  private forwards: readonly ForwardSpec[];
  private handlers: readonly ForwardHandler[];
  private resolveDone: (o: SessionOutcome) => void = noop;
  private readonly done = new Promise<SessionOutcome>((resolve) => (this.resolveDone = resolve));

  constructor(private readonly opts: SessionOptions) {
    this.c = opts.config;
    this.client = opts.client;
    this.sock = opts.sock;
    this.clock = opts.clock;
    this.bindLog = opts.bindLog ?? new RateLimitedLog(60_000);
    this.forwards = opts.config.forwards;
    this.handlers = opts.handlers;
  }

  /** Every forward of this session is bound on the server. */
  get allBound(): boolean {
    return this.forwards.every((f) => this.bound.get(f.spec) === true);
  }

  /**
   * A reload changed the forwards (camera list re-read): on this live session, cancel the removed ones
   * and request the added ones (in that order, so a port that changed its target is bound again).
   * Unchanged forwards, and the connections through them, are not touched. Returns allBound.
   */
  updateForwards(forwards: readonly ForwardSpec[], handlers: readonly ForwardHandler[]): boolean {
    const { metrics, log } = this.opts;
    const removed = this.forwards.filter((f) => !forwards.some((n) => n.spec === f.spec));
    const added = forwards.filter((f) => !this.forwards.some((o) => o.spec === f.spec));
    this.forwards = forwards;
    this.handlers = handlers;
    if (!this._ready || this._closed) return this.allBound;
    for (const f of removed) {
      const wasBound = this.bound.get(f.spec) === true;
      this.bound.delete(f.spec);
      this.bindWarned.delete(f.spec);
      this.cancelTimer(this.retries.get(f.spec));
      this.retries.delete(f.spec);
      // a request still out is answered later: its reply gives the port back (see bind)
      if (wasBound) void this.cancel(f);
      log.info({ forward: f.spec }, 'forward removed');
    }
    for (const f of added) {
      metrics.forwardBound.set(metrics.labels(f.spec), 0);
      this.bind(f.spec);
    }
    return this.allBound;
  }

  /** cancel-tcpip-forward; resolves on the server's reply or after UNFORWARD_WAIT_MS. */
  private cancel(f: ForwardSpec): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = this.clock.setTimeout(resolve, UNFORWARD_WAIT_MS);
      try {
        this.client.unforwardIn(f.bindAddress, f.bindPort, () => {
          this.clock.clearTimeout(t);
          resolve();
        });
      } catch {
        this.clock.clearTimeout(t);
        resolve();
      }
    });
  }

  /** Authenticated and not yet torn down. */
  get ready(): boolean {
    return this._ready && !this._closed;
  }

  get closed(): boolean {
    return this._closed;
  }

  /** This forward is bound on the server right now. */
  isBound(spec: string): boolean {
    return !this._closed && this.bound.get(spec) === true;
  }

  /** Seconds since authentication, 0 before it or after the end. */
  uptimeSeconds(): number {
    return this.ready ? Math.max(0, (this.clock.now() - this._readyAt) / 1000) : 0;
  }

  /** Runs fn after ms on the session's clock, unless the session has ended by then. */
  after(ms: number, fn: () => void): TimerHandle {
    const h = this.clock.setTimeout(() => {
      this.timers.delete(h);
      if (!this._closed) fn();
    }, ms);
    this.timers.add(h);
    return h;
  }

  private cancelTimer(h: TimerHandle | undefined): void {
    if (!h) return;
    this.clock.clearTimeout(h);
    this.timers.delete(h);
  }

  /** Starts the SSH handshake; resolves once with how the session ended. Call once. */
  run(): Promise<SessionOutcome> {
    if (this.started) return this.done;
    this.started = true;
    const { config: c, metrics, log } = this.opts;
    const { client, sock } = this;
    sock.setNoDelay(true);
    sock.setKeepAlive(true, c.keepaliveIntervalMs);
    sock.on('error', (err) => {
      this.lastError ??= Object.assign(err, { level: 'client-socket' });
    });
    const finish = () => {
      if (this._closed) return;
      this.teardown();
      this.resolveDone(this.classify());
    };
    sock.once('finish', () => this.armEndGrace());
    client.on('error', (err: Error & { level?: string }) => {
      // The first error is the cause; later ones are consequences of it.
      this.lastError ??= err;
      log.debug({ err: err.message, level: err.level }, 'ssh client error');
      this.armEndGrace();
    });
    client.on('close', finish);
    sock.on('close', finish);
    client.on('ready', () => this.onReady());
    client.on('tcp connection', (info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void) =>
      this.onTcpConnection(info, accept, reject),
    );

    const verify = makeHostVerifier(c.hostKey, (check) => {
      this.hostKey = check;
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
      this.lastError = err as Error;
      finish();
    }
    return this.done;
  }

  /**
   * After an error (host key refused, auth failed, protocol error) or a DISCONNECT, ssh2 only
   * half-closes the socket (end()) and waits for the peer's close. A peer or middlebox that never
   * closes would leave this session, and so the whole agent, waiting forever: destroy our socket
   * ourselves after a short grace.
   */
  private armEndGrace(): void {
    if (this.endArmed || this._closed) return;
    this.endArmed = true;
    this.after(Math.min(END_GRACE_MS, this.c.connectTimeoutMs), () => this.sock.destroy());
  }

  private onReady(): void {
    const { config: c, metrics, log } = this.opts;
    if (this._closed) return;
    this._ready = true;
    this._readyAt = this.clock.now();
    metrics.connectAttempts.inc({ result: 'success' });
    log.info({ host: c.sshHost, port: c.sshPort, user: c.sshUser, hostKey: this.hostKey?.fingerprint }, 'connected');
    this.opts.onReady?.();
    for (const f of this.forwards) this.bind(f.spec);
  }

  /**
   * Requests one forward. One request (or one retry timer) per forward at a time: a forward removed
   * and added again while its request is out waits for that request's reply instead of starting a
   * second chain. Labels are read when used, so a camera renamed meanwhile gets the right series.
   */
  private bind(spec: string): void {
    const { config: c, metrics, log } = this.opts;
    const f = this.forwards.find((x) => x.spec === spec);
    if (!f || this._closed || this.bound.get(spec) === true || this.requesting.has(spec)) return;
    this.cancelTimer(this.retries.get(spec));
    this.retries.delete(spec);
    this.requesting.add(spec);
    const labels = () => metrics.labels(spec);
    const current = () => this.forwards.some((x) => x.spec === spec);
    let answered = false;
    // forwardIn has no reply timeout of its own. Replies come in request order, so a request that is
    // never answered wedges every later one (keepalives included): drop the session.
    this.after(c.connectTimeoutMs, () => {
      if (answered) return;
      answered = true;
      this.requesting.delete(spec);
      metrics.forwardBindFailures.inc(labels());
      log.warn({ forward: spec, timeoutMs: c.connectTimeoutMs }, 'no reply to the forward request; dropping the session');
      void this.close('bind_timeout');
    });
    try {
      this.client.forwardIn(f.bindAddress, f.bindPort, (err) => {
        if (answered || this._closed) return;
        answered = true;
        this.requesting.delete(spec);
        if (!current()) {
          // removed by a reload while the request was out: give back a port the server just bound
          if (!err) void this.cancel(f);
          return;
        }
        if (err) {
          metrics.forwardBindFailures.inc(labels());
          if (!this.bindWarned.has(spec)) {
            this.bindWarned.add(spec);
            log.warn({ forward: spec, err: err.message, retryMs: c.forwardBindRetryMs }, 'forward bind refused (port still held by an old session?); retrying until it binds');
          } else {
            this.bindLog.warn(log, spec, { forward: spec, err: err.message }, 'forward still not bound; retrying');
          }
          this.retries.set(spec, this.after(c.forwardBindRetryMs, () => {
            this.retries.delete(spec);
            this.bind(spec);
          }));
          return;
        }
        this.bound.set(spec, true);
        metrics.forwardBound.set(labels(), 1);
        log.info({ forward: spec, camera: f.camera || undefined, remote: `${f.bindAddress || '*'}:${f.bindPort}`, target: `${f.host}:${f.port}` }, 'forward bound');
        if (this.allBound) {
          log.info({ forwards: this.forwards.map((x) => x.spec) }, 'forwarding');
          this.opts.onForwarding?.();
        }
      });
    } catch (err) {
      answered = true;
      this.requesting.delete(spec);
      this.lastError ??= err as Error;
      void this.close('socket_error');
    }
  }

  private onTcpConnection(info: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void): void {
    const hs = this.handlers;
    const h =
      hs.find((x) => x.spec.bindPort === info.destPort && x.spec.bindAddress === info.destIP) ??
      hs.find((x) => x.spec.bindPort === info.destPort);
    if (!h || this._closed || !this.bound.get(h.spec.spec)) {
      reject();
      return;
    }
    h.handle(accept, reject);
  }

  /**
   * Ends the session on purpose: cancel the forwards (when stopping), say goodbye, destroy our
   * socket (at once, or after STOP_CLOSE_WAIT_MS when stopping). Resolves once our socket is closed.
   */
  async close(reason: DisconnectReason): Promise<void> {
    if (this._closed) return;
    this.endReason ??= reason;
    const { client, sock, clock } = this;
    if (reason === 'stopped' && this._ready) {
      await Promise.all(this.forwards.filter((f) => this.bound.get(f.spec)).map((f) => this.cancel(f)));
    }
    if (this._closed) return;
    const closed = new Promise<void>((resolve) => {
      if (sock.destroyed) resolve();
      sock.once('close', () => resolve());
    });
    try {
      client.end();
    } catch {
      /* already gone */
    }
    const t = clock.setTimeout(() => sock.destroy(), reason === 'stopped' ? STOP_CLOSE_WAIT_MS : 0);
    await closed;
    clock.clearTimeout(t);
  }

  private classify(): SessionOutcome {
    const { metrics, log } = this.opts;
    const e = this.lastError;
    if (!this._ready) {
      let result: ConnectResult;
      if (this.hostKey && !this.hostKey.ok) result = 'host_key_mismatch';
      else if (this.endReason === 'stopped') return { kind: 'ended', reason: 'stopped' };
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
    if (this.endReason) reason = this.endReason;
    else if (e?.message === 'Keepalive timeout') reason = 'keepalive_timeout';
    else if (e?.level === 'client-socket') reason = 'socket_error';
    else reason = 'server_closed';
    metrics.disconnects.inc({ reason });
    if (reason === 'keepalive_timeout') metrics.keepaliveTimeouts.inc();
    const uptimeS = Math.round((this.clock.now() - this._readyAt) / 100) / 10;
    if (reason === 'stopped') log.info({ uptimeS }, 'disconnected (stopping)');
    else log.warn({ reason, err: e?.message, uptimeS }, 'disconnected');
    return { kind: 'ended', reason };
  }

  private teardown(): void {
    const { metrics } = this.opts;
    this._closed = true;
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    for (const h of this.handlers) h.closeAll();
    for (const f of this.forwards) metrics.forwardBound.set(metrics.labels(f.spec), 0);
    metrics.up.set(0);
    this.sock.destroy();
    this.client.removeAllListeners();
    this.client.on('error', noop);
    this.sock.on('error', noop);
  }
}
