import pino, { Logger } from 'pino';
import type { LogLevel } from './config';

export type { Logger } from 'pino';

/** Paths that may hold secrets anywhere in a log object; pino replaces them with "[redacted]". */
export const REDACT_PATHS = [
  'password', '*.password', 'passphrase', '*.passphrase', 'privateKey', '*.privateKey',
  'token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'cookie', '*.cookie', 'headers.cookie', 'req.headers.cookie', 'headers["set-cookie"]', 'res.headers["set-cookie"]',
];

export interface LoggerOptions {
  name: string;
  level?: LogLevel;
  /** Destination stream (tests pass one to capture lines); default stdout. */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * Wraps a log call so it fires at most once per `intervalMs` per key; the suppressed count is
 * reported with the next line. Used for limit hits, which a hostile client can trigger at will.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns the number of suppressed calls to report, or -1 when this call must be suppressed. */
  check(key: string): number {
    const t = this.now();
    const e = this.last.get(key);
    if (e && t - e.at < this.intervalMs) {
      e.suppressed++;
      return -1;
    }
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { at: t, suppressed: 0 });
    return suppressed;
  }

  warn(log: Logger, key: string, obj: Record<string, unknown>, msg: string): void {
    const s = this.check(key);
    if (s >= 0) log.warn(s > 0 ? { ...obj, suppressed: s } : obj, msg);
  }
}
