import type { Clock, TimerHandle } from '@camrelay/common';

/** A clock whose timers fire only when the test advances time. */
export class ManualClock implements Clock {
  private t = 1_000_000;
  private readonly timers = new Map<TimerHandle, { at: number; fn: () => void; ms: number }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const h: TimerHandle = {};
    this.timers.set(h, { at: this.t + ms, fn, ms });
    return h;
  }

  clearTimeout(h: TimerHandle | undefined): void {
    if (h) this.timers.delete(h);
  }

  /** Durations of the pending timers. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.ms);
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, v]) => v.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }
}
