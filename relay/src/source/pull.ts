/**
 * Pull source (seed Options 1 and 2): connect to the camera, read one JPEG to EOF, validate,
 * publish, repeat. Exactly one fetch in flight. Pacing: MAX_FPS while anyone wants frames
 * (store.demand > 0), IDLE_FPS while nobody does, and an immediate wake-up when the first client
 * arrives. Failures back off exponentially (full jitter, capped, reset on success).
 *
 * Stale frames: an ESP32 driver keeps the frame it grabbed after the previous request, so the
 * first frame after a gap is as old as the gap. When more than STALE_AFTER_IDLE_MS passed since the
 * last frame (or none was fetched yet) the first frame is discarded and fetched again at once.
 */
import { Backoff, Clock, Logger, sleep, systemClock } from '@camrelay/common';
import type { SourceConfig } from '../config';
import type { FrameStore } from '../frame-store';
import type { CameraMetrics } from '../metrics';
import { defaultSocketFactory, describeSocketError, FetchOutcome, FrameReader, SocketFactory } from './fetch';
import { Source, SourceState, SourceStatus } from './source';

export type PullSourceConfig = Pick<
  SourceConfig,
  'host' | 'port' | 'connectTimeoutMs' | 'idleTimeoutMs' | 'deadlineMs' | 'frameMaxBytes' | 'retryBaseMs' | 'retryMaxMs' | 'maxFps' | 'idleFps' | 'staleAfterIdleMs'
>;

export interface PullSourceOptions {
  config: PullSourceConfig;
  store: FrameStore;
  metrics: CameraMetrics;
  log: Logger;
  clock?: Clock;
  connect?: SocketFactory;
  /** for the backoff jitter */
  random?: () => number;
}

export class PullSource implements Source {
  readonly name = 'pull-source';
  private readonly clock: Clock;
  private readonly connect: SocketFactory;
  private readonly backoff: Backoff;
  private readonly state: SourceState;
  /** one for the source's life: its buffers are reused from frame to frame (see fetch.ts) */
  private readonly reader: FrameReader;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private lastStart = -Infinity;
  private lastFrameEnd: number | undefined;
  private target = 0;
  /** a client was served the cached frame since the last fetch began: fetch once (at MAX_FPS spacing) */
  private nudged = false;

  constructor(private readonly opts: PullSourceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.connect = opts.connect ?? defaultSocketFactory;
    this.reader = new FrameReader(this.clock);
    this.backoff = new Backoff({ baseMs: opts.config.retryBaseMs, maxMs: opts.config.retryMaxMs, minMs: Math.min(50, opts.config.retryBaseMs), random: opts.random });
    this.state = new SourceState(opts.log, opts.metrics, () => this.clock.now());
  }

  private readonly onDemand = (wanted: boolean) => {
    this.updateTarget();
    if (wanted) this.wake?.();
  };

  private readonly onNudge = () => {
    this.nudged = true;
    this.wake?.();
  };

  async start(): Promise<void> {
    if (this.loop) return;
    const abort = new AbortController();
    this.abort = abort;
    this.opts.store.on('demand', this.onDemand);
    this.opts.store.on('nudge', this.onNudge);
    this.updateTarget();
    this.opts.log.info({ host: this.opts.config.host, port: this.opts.config.port, maxFps: this.opts.config.maxFps, idleFps: this.opts.config.idleFps }, 'pull source started');
    this.loop = this.run(abort.signal).catch((err) => this.opts.log.error({ err }, 'pull loop crashed'));
  }

  async stop(): Promise<void> {
    if (!this.abort) return;
    this.abort.abort();
    this.wake?.();
    this.opts.store.off('demand', this.onDemand);
    this.opts.store.off('nudge', this.onNudge);
    await this.loop;
    this.abort = undefined;
    this.loop = undefined;
  }

  status(): SourceStatus {
    return this.state.status('pull', this.target);
  }

  /** frames/s aimed for now: MAX_FPS while watched, IDLE_FPS otherwise (0 = unlimited resp. paused) */
  private updateTarget(): number {
    const watched = this.opts.store.demand > 0;
    this.target = watched ? this.opts.config.maxFps : this.opts.config.idleFps;
    this.opts.metrics.fetchRate.set(this.target);
    // relay_target_fps 0 means "unlimited" while watched and "paused" while idle: say which
    this.opts.metrics.sourcePaused.set(!watched && this.opts.config.idleFps === 0 ? 1 : 0);
    return this.target;
  }

  /** Waits up to ms (Infinity = until woken); a demand rise or stop() ends it early. */
  private pause(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      let timer: ReturnType<Clock['setTimeout']> | undefined;
      const done = () => {
        this.clock.clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      if (Number.isFinite(ms)) timer = this.clock.setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async run(signal: AbortSignal): Promise<void> {
    const c = this.opts.config;
    while (!signal.aborted) {
      const watched = this.opts.store.demand > 0;
      const target = this.updateTarget();
      // a nudge (a polling client got the cached frame) earns one fetch at the watched pace
      const fps = !watched && this.nudged ? c.maxFps : target;
      if (!watched && !this.nudged && fps === 0) {
        await this.pause(Infinity, signal);
        continue;
      }
      const interval = fps > 0 ? 1000 / fps : 0;
      const wait = this.lastStart + interval - this.clock.now();
      if (wait > 0) {
        await this.pause(wait, signal);
        continue;
      }
      const start = this.clock.now();
      this.lastStart = start;
      this.nudged = false;
      const stale = c.staleAfterIdleMs > 0 && (this.lastFrameEnd === undefined || start - this.lastFrameEnd > c.staleAfterIdleMs);
      const outcome = await this.fetchOnce(signal);
      if (signal.aborted) break;
      if (outcome.ok) {
        this.backoff.reset();
        this.lastFrameEnd = this.clock.now();
        this.state.setUp(true, { host: c.host, port: c.port });
        if (stale) {
          this.state.staleDiscarded++;
          this.opts.metrics.staleFramesDiscarded.inc();
          this.lastStart = -Infinity; // fetch the replacement at once
          this.nudged = true; // ... also when only a nudge (no waiting client) asked for this fetch
          continue;
        }
        this.opts.store.publish(outcome.data, this.lastFrameEnd);
        this.state.frame(outcome.data.length, outcome.ms / 1000);
      } else {
        this.state.error(outcome.reason, outcome.message);
        this.state.setUp(false, { host: c.host, port: c.port, reason: outcome.reason, error: outcome.message });
        await sleep(this.backoff.next(), signal, this.clock);
      }
    }
  }

  private fetchOnce(signal: AbortSignal): Promise<FetchOutcome> {
    const c = this.opts.config;
    this.state.fetches++;
    let socket;
    try {
      socket = this.connect({ host: c.host, port: c.port, onread: this.reader.onread });
    } catch (err) {
      // keep the address out of the message (it reaches /status.json); the down log names host/port
      return Promise.resolve({ ok: false, reason: 'other', message: describeSocketError(err as NodeJS.ErrnoException), ms: 0, bytes: 0 });
    }
    return this.reader.read(socket, { connectTimeoutMs: c.connectTimeoutMs, idleTimeoutMs: c.idleTimeoutMs, deadlineMs: c.deadlineMs, maxBytes: c.frameMaxBytes }, false, signal);
  }
}
