/**
 * One handler per `-R` forward. For every `tcp connection` the server opens:
 *   1. enforce the per-forward concurrency cap (reject when full),
 *   2. connect to the target FIRST (timeout, noDelay: without it Nagle stalls each one-shot frame),
 *   3. only then accept() the channel and forward both ways with backpressure, with error handlers
 *      on both ends, counting bytes by direction,
 *   4. if the target fails, reject() the channel so the remote client sees a closed connection at once.
 * Every connection is settled (accepted or rejected) exactly once, and counted once.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Counter, Gauge } from 'prom-client';
import type { Logger } from '@camrelay/common';
import { RateLimitedLog } from '@camrelay/common';
import type { ForwardSpec } from './config';
import type { AgentMetrics, ForwardResult } from './metrics';

/** How long a channel may stay open after the target closed and we sent EOF. */
const LINGER_MS = 10_000;

export type TargetConnector = (opts: { host: string; port: number }) => net.Socket;

export interface ForwardHandlerOptions {
  spec: ForwardSpec;
  connectTimeoutMs: number;
  maxConnections: number;
  metrics: AgentMetrics;
  log: Logger;
  connect?: TargetConnector;
}

interface Conn {
  target: net.Socket;
  channel?: Duplex;
  /** Settles a pending (not yet accepted) connection as rejected. */
  abort(result: ForwardResult): void;
}

export class ForwardHandler {
  private readonly active = new Set<Conn>();
  /** removed by a reload: its series are gone and must not be re-created by late events */
  private retired = false;
  private readonly limitLog = new RateLimitedLog(60_000);
  private readonly connect: TargetConnector;
  private readonly label: string;
  /** Metric children looked up once: prom-client's labels() hashes the label set on every call. */
  private readonly bytes: { toTarget: Counter.Internal; fromTarget: Counter.Internal };
  private readonly results = new Map<ForwardResult, Counter.Internal>();
  private readonly activeGauge: Gauge.Internal<'forward' | 'camera'>;
  private readonly labels: { forward: string; camera: string };

  constructor(private readonly opts: ForwardHandlerOptions) {
    this.connect = opts.connect ?? ((o) => net.connect({ ...o, noDelay: true }));
    this.label = opts.spec.spec;
    const { metrics } = opts;
    this.labels = { forward: this.label, camera: opts.spec.camera ?? '' };
    this.bytes = {
      toTarget: metrics.bytes.labels({ ...this.labels, direction: 'to_target' }),
      fromTarget: metrics.bytes.labels({ ...this.labels, direction: 'from_target' }),
    };
    this.activeGauge = metrics.activeConnections.labels(this.labels);
  }

  get spec(): ForwardSpec {
    return this.opts.spec;
  }

  get activeCount(): number {
    return this.active.size;
  }

  private count(result: ForwardResult): void {
    if (this.retired) return;
    let c = this.results.get(result);
    if (!c) {
      c = this.opts.metrics.forwardedConnections.labels({ ...this.labels, result });
      this.results.set(result, c);
    }
    c.inc();
  }

  private setActive(): void {
    if (!this.retired) this.activeGauge.set(this.active.size);
  }

  /** The `tcp connection` listener body. accept/reject are ssh2's; each is called at most once. */
  handle(accept: () => Duplex, reject: () => void): void {
    const { log, spec } = this.opts;
    let settled = false;
    const settle = <T>(fn: () => T): T | undefined => {
      if (settled) return undefined;
      settled = true;
      return fn();
    };

    if (this.active.size >= this.opts.maxConnections) {
      settle(reject);
      this.count('rejected_limit');
      this.limitLog.warn(log, 'limit', { forward: spec.spec, max: this.opts.maxConnections }, 'forward connection limit reached; rejecting');
      return;
    }

    const target = this.connect({ host: spec.host, port: spec.port });
    let finished = false;
    const conn: Conn = {
      target,
      abort: (result) => {
        if (settled) return;
        settle(reject);
        this.count(result);
        done();
      },
    };
    let lingerTimer: NodeJS.Timeout | undefined;
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(lingerTimer);
      target.destroy();
      this.active.delete(conn);
      this.setActive();
    };
    this.active.add(conn);
    this.setActive();

    const timer = setTimeout(() => conn.abort('target_timeout'), this.opts.connectTimeoutMs);
    target.on('error', (err: NodeJS.ErrnoException) => {
      if (!settled) {
        conn.abort(err.code === 'ECONNREFUSED' ? 'target_refused' : 'target_error');
        return;
      }
      log.debug({ forward: spec.spec, err: err.message }, 'target connection error');
      conn.channel?.destroy();
      done();
    });
    target.once('connect', () => {
      clearTimeout(timer);
      if (settled) return;
      target.setNoDelay(true);
      let channel: Duplex | undefined;
      try {
        channel = settle(accept);
      } catch (err) {
        log.warn({ forward: spec.spec, err: (err as Error).message }, 'accepting tunnel channel failed');
      }
      if (!channel) {
        this.count('session_closed');
        done();
        return;
      }
      this.count('accepted');
      conn.channel = channel;
      const { toTarget, fromTarget } = this.bytes;
      channel.on('error', (err: Error) => {
        log.debug({ forward: spec.spec, err: err.message }, 'tunnel channel error');
        done();
      });
      // Both directions by hand instead of pipe(): one 'data' listener per side that counts and
      // forwards, backpressure both ways (a full target pauses the channel, so ssh2 stops widening the
      // SSH window and the server stops sending; a full channel pauses the target), and no per-stream
      // pipe bookkeeping. A side that can no longer take data gets none (what pipe's unpipe did).
      channel.on('data', (c: Buffer) => {
        if (!this.retired) toTarget.inc(c.length);
        if (target.writable && !target.write(c)) channel.pause();
      });
      target.on('drain', () => channel.resume());
      target.on('data', (c: Buffer) => {
        if (!this.retired) fromTarget.inc(c.length);
        if (channel.writable && !channel.write(c)) target.pause();
      });
      channel.on('drain', () => target.resume());
      // The remote's EOF ends our side of the target connection; the target's EOF sends ours.
      channel.on('end', () => {
        if (target.writable) target.end();
      });
      target.on('end', () => {
        if (channel.writable) channel.end();
      });
      // The channel closes once both sides are done (or the session died): then the target goes too,
      // after what the remote sent has been flushed to it (bounded by the same grace).
      channel.on('close', () => {
        if (target.destroyed || target.writableFinished) return done();
        target.end();
        target.once('finish', done);
        lingerTimer ??= setTimeout(done, LINGER_MS).unref();
      });
      // The target closing ends our side of the channel after its queued data is sent (EOF, not abort).
      // A remote peer that never closes its side after our EOF would hold a slot: cut it after a grace.
      target.on('close', () => {
        if (channel.writable) channel.end();
        // Nothing takes the channel's data any more; keep draining it so its 'end' (and so its
        // 'close') can happen.
        channel.resume();
        if (!finished) {
          lingerTimer = setTimeout(() => {
            channel.destroy();
            done();
          }, LINGER_MS);
          lingerTimer.unref();
        }
      });
    });
  }

  /**
   * The forward was removed by a reload: close everything, and from now on touch no metric (its series
   * are removed; a connection closing later must not bring them back).
   */
  retire(): void {
    this.closeAll();
    this.retired = true;
  }

  /** Session gone: settle pending connections and tear down open ones. */
  closeAll(): void {
    for (const c of [...this.active]) {
      c.abort('session_closed');
      c.channel?.destroy();
      c.target.destroy();
      this.active.delete(c);
    }
    this.setActive();
  }
}
