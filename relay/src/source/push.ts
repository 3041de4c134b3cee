/**
 * Push source (seed Option 3, camera behind CGNAT): listen on INGEST_HOST:INGEST_PORT; every
 * connection delivers one JPEG and closes. Same validation, size cap and timeouts as pull mode.
 * INGEST_ALLOW_CIDRS restricts who may push. The camera counts as up while a whole frame arrived
 * within PUSH_UP_WINDOW_MS.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { CidrList, Clock, listen, Logger, RateLimitedLog, systemClock, TimerHandle } from '@camrelay/common';
import type { IngestConfig, SourceConfig } from '../config';
import type { FrameStore } from '../frame-store';
import type { CameraMetrics } from '../metrics';
import { readFrame } from './fetch';
import { Source, SourceState, SourceStatus } from './source';

export interface PushSourceOptions {
  ingest: Pick<IngestConfig, 'host' | 'port' | 'maxConnections' | 'upWindowMs'> & { allow: CidrList };
  limits: Pick<SourceConfig, 'idleTimeoutMs' | 'deadlineMs' | 'frameMaxBytes'>;
  store: FrameStore;
  metrics: CameraMetrics;
  log: Logger;
  clock?: Clock;
}

export class PushSource implements Source {
  readonly name = 'push-source';
  private readonly clock: Clock;
  private readonly state: SourceState;
  private readonly limited: RateLimitedLog;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private abort = new AbortController();
  private downTimer: TimerHandle | undefined;

  constructor(private readonly opts: PushSourceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.state = new SourceState(opts.log, opts.metrics, () => this.clock.now());
    this.limited = new RateLimitedLog(60_000, () => this.clock.now());
  }

  /** The port actually bound (after start), for INGEST_PORT=0. */
  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? a.port : -1;
  }

  async start(): Promise<void> {
    if (this.server) return;
    this.abort = new AbortController();
    this.opts.metrics.fetchRate.set(0);
    this.opts.metrics.sourcePaused.set(0);
    const server = net.createServer({ noDelay: true }, (s) => this.accept(s));
    this.server = server;
    await listen(server, { port: this.opts.ingest.port, host: this.opts.ingest.host }, (err) => this.opts.log.error({ err }, 'ingest server error'));
    this.opts.log.info({ host: this.opts.ingest.host, port: this.port, allow: this.opts.ingest.allow.cidrs }, 'push source listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.abort.abort();
    this.clock.clearTimeout(this.downTimer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  status(): SourceStatus {
    return this.state.status('push', 0);
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined); // readFrame adds its own; this covers the reject paths
    const addr = socket.remoteAddress;
    if (!this.opts.ingest.allow.allows(addr)) {
      this.opts.metrics.clientsRejected.inc({ reason: 'push_not_allowed' });
      this.limited.warn(this.opts.log, 'push_not_allowed', { remote: addr }, 'push connection from a source outside INGEST_ALLOW_CIDRS refused');
      socket.destroy();
      return;
    }
    if (this.sockets.size >= this.opts.ingest.maxConnections) {
      this.opts.metrics.clientsRejected.inc({ reason: 'push_busy' });
      this.limited.warn(this.opts.log, 'ingest_busy', { limit: this.opts.ingest.maxConnections }, 'too many concurrent push connections; closing the newest');
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    this.state.fetches++;
    const l = this.opts.limits;
    void readFrame(socket, { connectTimeoutMs: l.idleTimeoutMs, idleTimeoutMs: l.idleTimeoutMs, deadlineMs: l.deadlineMs, maxBytes: l.frameMaxBytes }, true, this.clock, this.abort.signal).then((o) => {
      this.sockets.delete(socket);
      if (this.abort.signal.aborted) return;
      if (o.ok) {
        this.opts.store.publish(o.data);
        this.state.frame(o.data.length, o.ms / 1000);
        this.state.setUp(true, { remote: addr });
        this.clock.clearTimeout(this.downTimer);
        this.downTimer = this.clock.setTimeout(() => this.state.setUp(false, { reason: 'no_frame', error: `no frame pushed for ${this.opts.ingest.upWindowMs} ms` }), this.opts.ingest.upWindowMs);
        this.downTimer.unref?.();
      } else {
        this.state.error(o.reason, o.message);
        this.limited.warn(this.opts.log, `push_${o.reason}`, { reason: o.reason, error: o.message }, 'push connection did not deliver a whole frame');
      }
    });
  }
}
