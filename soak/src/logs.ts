/**
 * Every container's log lines, read once at the end of the run from docker (json-file keeps them
 * with a timestamp each; the compose file rotates at 3 x 10 MB, so only a flood loses lines, and then
 * the first line kept is later than the start of the run: `firstAt` shows it).
 */
import type { Stack } from './docker';
import type { LogRecord } from './results';

/**
 * A short form of one line, to group repeats: a pino JSON line becomes `<level> <msg>`; any other line
 * its text with numbers masked, at most 100 characters.
 */
export function shortForm(text: string): string {
  if (text.startsWith('{')) {
    try {
      const j = JSON.parse(text) as { level?: number | string; msg?: string; module?: string; camera?: string };
      if (typeof j.msg === 'string') {
        const level = typeof j.level === 'number' ? ({ 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' } as Record<number, string>)[j.level] ?? j.level : j.level;
        const where = [j.module, j.camera].filter(Boolean).join(' ');
        return `${level ?? ''} ${where ? `${where}: ` : ''}${j.msg}`.trim();
      }
    } catch {
      // not JSON after all
    }
  }
  return text.replace(/\d+/g, '#').slice(0, 100);
}

/** `docker logs -t` lines -> times relative to the run's start and short forms. */
export function parseLogLines(lines: readonly string[], startedAtMs: number): LogRecord {
  const out: LogRecord = { lines: [] };
  for (const line of lines) {
    const sp = line.indexOf(' ');
    const at = Date.parse(line.slice(0, sp));
    if (sp < 0 || !Number.isFinite(at)) continue;
    out.lines.push({ t: at - startedAtMs, msg: shortForm(line.slice(sp + 1)) });
  }
  out.lines.sort((a, b) => a.t - b.t);
  out.firstAt = out.lines[0]?.t;
  return out;
}

export async function collectLogs(stack: Stack, services: readonly string[], startedAtMs: number): Promise<Record<string, LogRecord>> {
  const out: Record<string, LogRecord> = {};
  for (const s of services) out[s] = parseLogLines(await stack.logs(s), startedAtMs);
  return out;
}
