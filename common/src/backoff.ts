/**
 * Exponential backoff with "full jitter" (AWS architecture blog): delay = random(0, min(cap, base * 2^n)).
 * A floor keeps a hot loop impossible even when random() returns 0.
 */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Lowest delay returned, default 0. */
  minMs?: number;
  /** 'full' (default): uniform in [min, ceiling]; 'none': the ceiling itself. */
  jitter?: 'full' | 'none';
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;
  constructor(private readonly opts: BackoffOptions) {
    if (opts.baseMs <= 0 || opts.maxMs < opts.baseMs) throw new Error('backoff: need 0 < baseMs <= maxMs');
    this.random = opts.random ?? Math.random;
  }

  /** Number of failures since the last reset. */
  get failures(): number {
    return this.attempt;
  }

  /** The upper bound of the next delay. */
  get ceilingMs(): number {
    return Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  /** Delay before the next attempt; counts one failure. */
  next(): number {
    const ceiling = this.ceilingMs;
    this.attempt++;
    const min = Math.min(this.opts.minMs ?? 0, ceiling);
    if (this.opts.jitter === 'none') return ceiling;
    return Math.round(min + this.random() * (ceiling - min));
  }

  reset(): void {
    this.attempt = 0;
  }
}
