/**
 * The one fake clock for every test tier: @sinonjs/fake-timers' createClock behind the Clock seam of
 * @camrelay/common. It fakes no globals, so real sockets, real timers of libraries and jest keep
 * working; only code that was handed this clock sees fake time.
 */
import FakeTimers from '@sinonjs/fake-timers';
import type { Clock, TimerHandle } from '@camrelay/common';

export class FakeClock implements Clock {
  private readonly inner: ReturnType<typeof FakeTimers.createClock>;
  /** handle -> the delay it was set with, while pending (for assertions on backoff delays) */
  private readonly delays = new Map<TimerHandle, number>();

  constructor(start = 1_000_000) {
    this.inner = FakeTimers.createClock(start);
  }

  now(): number {
    return this.inner.now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    // Node's timer objects are fine as handles; sinon returns a Timer with ref/unref for NodeClock.
    const h = this.inner.setTimeout(() => {
      this.delays.delete(h);
      fn();
    }, ms) as unknown as TimerHandle;
    this.delays.set(h, ms);
    return h;
  }

  clearTimeout(h: TimerHandle | undefined): void {
    if (!h) return;
    this.delays.delete(h);
    this.inner.clearTimeout(h as unknown as FakeTimers.TimerId);
  }

  /** Delays of the timers still pending, in the order they were set. */
  pending(): number[] {
    return [...this.delays.values()];
  }

  /** Moves time forward synchronously, firing every timer due on the way. */
  advance(ms: number): void {
    this.inner.tick(ms);
  }

  /** Moves time forward, letting promises settle between timers (for async code under test). */
  async advanceAsync(ms: number): Promise<void> {
    await this.inner.tickAsync(ms);
  }

  /** Runs every pending timer (and the ones they set) until none is left. */
  async runAllAsync(): Promise<void> {
    await this.inner.runAllAsync();
  }
}
