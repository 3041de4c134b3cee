/**
 * What pull and push sources share: the Service shape, status() for /readyz and /status.json, and
 * the bookkeeping of camera up/down (logged once per transition, never per frame or error).
 */
import type { Logger, Service } from '@camrelay/common';
import type { FetchErrorReason, CameraMetrics } from '../metrics';

export interface SourceStatus {
  mode: 'pull' | 'push';
  /** undefined until the first fetch finished */
  cameraUp: boolean | undefined;
  lastError: { reason: FetchErrorReason; message: string; at: string } | null;
  /** frames published per second over the last few seconds */
  fps: number;
  /** fetch attempts (pull) or camera connections (push) so far */
  fetches: number;
  frames: number;
  errors: number;
  staleDiscarded: number;
  /** current fetch-rate target; 0 = unlimited (push: always 0) */
  targetFps: number;
  lastFrameAt: string | null;
}

export interface Source extends Service {
  status(): SourceStatus;
}

/** Sliding one-second buckets over `windowS` seconds: a cheap frames/s estimate. */
export class RateMeter {
  private readonly buckets: number[];
  private lastSecond = 0;
  constructor(
    private readonly now: () => number,
    private readonly windowS = 5,
  ) {
    this.buckets = new Array<number>(windowS).fill(0);
  }

  private roll(): number {
    const sec = Math.floor(this.now() / 1000);
    if (sec - this.lastSecond >= this.windowS) this.buckets.fill(0);
    else for (let s = this.lastSecond + 1; s <= sec; s++) this.buckets[s % this.windowS] = 0;
    if (sec > this.lastSecond) this.lastSecond = sec;
    return sec;
  }

  mark(): void {
    const sec = this.roll();
    this.buckets[sec % this.windowS]++;
  }

  /** events per second over the last complete seconds plus the current one */
  rate(): number {
    this.roll();
    const total = this.buckets.reduce((a, b) => a + b, 0);
    return Math.round((total / this.windowS) * 10) / 10;
  }
}

/** Counters and the camera up/down state shared by both sources. */
export class SourceState {
  cameraUp: boolean | undefined;
  lastError: SourceStatus['lastError'] = null;
  fetches = 0;
  frames = 0;
  errors = 0;
  staleDiscarded = 0;
  lastFrameAt: number | undefined;
  readonly meter: RateMeter;

  constructor(
    private readonly log: Logger,
    private readonly metrics: CameraMetrics,
    private readonly now: () => number,
  ) {
    this.meter = new RateMeter(now);
  }

  frame(bytes: number, seconds: number): void {
    this.frames++;
    this.lastFrameAt = this.now();
    this.meter.mark();
    this.metrics.frames.inc();
    this.metrics.frameBytes.observe(bytes);
    this.metrics.fetchDuration.observe(seconds);
  }

  error(reason: FetchErrorReason, message: string): void {
    this.errors++;
    this.lastError = { reason, message, at: new Date(this.now()).toISOString() };
    this.metrics.fetchErrors.inc({ reason });
  }

  /** Logs only transitions. */
  setUp(up: boolean, detail: Record<string, unknown> = {}): void {
    if (this.cameraUp === up) return;
    const first = this.cameraUp === undefined;
    this.cameraUp = up;
    this.metrics.cameraUp.set(up ? 1 : 0);
    if (up) this.log.info(detail, first ? 'camera up' : 'camera up again');
    else this.log.warn(detail, 'camera down');
  }

  status(mode: 'pull' | 'push', targetFps: number): SourceStatus {
    return {
      mode,
      cameraUp: this.cameraUp,
      lastError: this.lastError,
      fps: this.meter.rate(),
      fetches: this.fetches,
      frames: this.frames,
      errors: this.errors,
      staleDiscarded: this.staleDiscarded,
      targetFps,
      lastFrameAt: this.lastFrameAt === undefined ? null : new Date(this.lastFrameAt).toISOString(),
    };
  }
}
