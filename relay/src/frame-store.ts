/**
 * The single latest WHOLE frame and a way to wait for the next one. Only the source writes
 * (publish); outlets read. Buffers are shared by reference, never copied per client.
 *
 * Demand: outlets tell the store how many clients want frames (watch() for streams, next() waiters
 * count while they wait). The source reads `demand` to choose full rate vs IDLE_FPS and listens
 * for 'demand' to wake up at once when the first client arrives.
 */
import { EventEmitter } from 'node:events';
import { Clock, systemClock, TimerHandle } from '@camrelay/common';

export interface Frame {
  readonly data: Buffer;
  /** 1, 2, 3 ... in publish order */
  readonly seq: number;
  /** wall-clock ms (Date.now()) when the last byte arrived from the camera */
  readonly capturedAt: number;
  /** monotonic ms (performance.now()) at publish, for delivery latency */
  readonly publishedMono: number;
}

export interface FrameStoreEvents {
  frame: [Frame];
  /** demand went from 0 to >0 (true) or back to 0 (false) */
  demand: [boolean];
  /** a client was just served the cached latest frame: a polling audience wants newer ones (once per frame) */
  nudge: [];
}

type Waiter = { afterSeq: number; resolve: (f: Frame | undefined) => void; timer: TimerHandle; onAbort?: () => void; signal?: AbortSignal };

export class FrameStore extends EventEmitter<FrameStoreEvents> {
  private current: Frame | undefined;
  private seq = 0;
  private waiters = new Set<Waiter>();
  private watchers = 0;
  private nudged = false;

  private readonly now: () => number;
  private readonly clock: Clock;

  /** `time`: a Clock for timestamps and next() timeouts, or just a now() (timeouts then on real time). */
  constructor(time: Clock | (() => number) = systemClock) {
    super();
    this.setMaxListeners(0);
    this.clock = typeof time === 'function' ? { ...systemClock, now: time } : time;
    this.now = () => this.clock.now();
  }

  get latest(): Frame | undefined {
    return this.current;
  }

  /** Age of the latest frame in ms, or Infinity when there is none. */
  ageMs(): number {
    return this.current ? this.now() - this.current.capturedAt : Infinity;
  }

  /**
   * The latest frame when it is at most maxAgeMs old. maxAgeMs 0 (MAX_FRAME_AGE_MS=0) means "never
   * an existing frame": the caller waits for the next one, even if the latest was captured this very
   * millisecond (otherwise a client arriving in the publish millisecond would get an old fetch).
   */
  fresh(maxAgeMs: number): Frame | undefined {
    return this.current && maxAgeMs > 0 && this.ageMs() <= maxAgeMs ? this.current : undefined;
  }

  /** Clients currently wanting frames: stream watchers plus clients waiting in next(). */
  get demand(): number {
    return this.watchers + this.waiters.size;
  }

  publish(data: Buffer, capturedAt: number = this.now()): Frame {
    const frame: Frame = Object.freeze({ data, seq: ++this.seq, capturedAt, publishedMono: performance.now() });
    this.current = frame;
    this.nudged = false;
    const ready = [...this.waiters].filter((w) => w.afterSeq < frame.seq);
    const before = this.demand;
    for (const w of ready) this.settle(w, frame);
    this.emitDemandChange(before);
    this.emit('frame', frame);
    return frame;
  }

  /**
   * Resolves with the first frame whose seq is greater than afterSeq (at once if the latest already
   * is), or undefined after timeoutMs or when the signal aborts.
   */
  next(afterSeq: number, timeoutMs: number, signal?: AbortSignal): Promise<Frame | undefined> {
    if (this.current && this.current.seq > afterSeq) return Promise.resolve(this.current);
    if (signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const before = this.demand;
      const w: Waiter = {
        afterSeq,
        resolve,
        signal,
        timer: this.clock.setTimeout(() => {
          const b = this.demand;
          this.settle(w, undefined);
          this.emitDemandChange(b);
        }, timeoutMs),
      };
      if (signal) {
        w.onAbort = () => {
          const b = this.demand;
          this.settle(w, undefined);
          this.emitDemandChange(b);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.add(w);
      this.emitDemandChange(before);
    });
  }

  /**
   * Says that a client was just served the cached latest frame (raw TCP, /snapshot.jpg). Such
   * clients never wait, so they never count as demand; without this, an audience that polls (nc in a
   * loop, the test client, a page reloading snapshots) would see IDLE_FPS only. The source answers
   * with ONE fetch, spaced by MAX_FPS. Emits at most once per published frame, so it costs nothing
   * per connection under load.
   */
  nudge(): void {
    if (this.nudged) return;
    this.nudged = true;
    this.emit('nudge');
  }

  /** Registers a streaming client; call the returned function (idempotent) when it leaves. */
  watch(): () => void {
    const before = this.demand;
    this.watchers++;
    this.emitDemandChange(before);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const b = this.demand;
      this.watchers--;
      this.emitDemandChange(b);
    };
  }

  /** Resolves every waiter with undefined (shutdown). */
  close(): void {
    const before = this.demand;
    for (const w of [...this.waiters]) this.settle(w, undefined);
    this.emitDemandChange(before);
  }

  private settle(w: Waiter, f: Frame | undefined): void {
    if (!this.waiters.delete(w)) return;
    this.clock.clearTimeout(w.timer);
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    w.resolve(f);
  }

  private emitDemandChange(before: number): void {
    const after = this.demand;
    if (before === 0 && after > 0) this.emit('demand', true);
    else if (before > 0 && after === 0) this.emit('demand', false);
  }
}
