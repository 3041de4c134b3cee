/** A logger whose JSON lines land in an array, for assertions on what was logged. */
import { createLogger, Logger, type LogLevel } from '@camrelay/common';

export function captureLog(level: LogLevel = 'debug'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ name: 'test', level, destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { log, lines };
}
