#!/usr/bin/env node
/**
 * Test client for the raw protocol (the seed's test_client.py): fetches N frames from a camera or
 * a relay, checks that each is a whole JPEG, optionally saves them, and prints frames/s and latency.
 *
 *   node client/dist/client.js --host H --port P [--frames N] [--out DIR] [--concurrency C] [--timeout-ms T]
 *
 * Exit code: 0 when every frame was whole, 1 when any was not, 2 on a bad command line or an --out
 * it cannot write to.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkJpeg } from '@camrelay/common';

export interface ClientOptions {
  host: string;
  port: number;
  frames: number;
  concurrency: number;
  out?: string;
  timeoutMs: number;
}

export interface FrameResult {
  index: number;
  ok: boolean;
  bytes: number;
  ms: number;
  reason?: string;
}

export interface RunSummary {
  results: FrameResult[];
  ok: number;
  bad: number;
  seconds: number;
  fps: number;
  p50Ms: number;
  p99Ms: number;
}

const USAGE = 'usage: node client/dist/client.js --host HOST --port PORT [--frames N (default 10)] [--out DIR] [--concurrency C (default 1)] [--timeout-ms T (default 10000)]';

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string' },
  frames: { type: 'string', default: '10' },
  concurrency: { type: 'string', default: '1' },
  'timeout-ms': { type: 'string', default: '10000' },
  out: { type: 'string' },
} as const;

/** Parses the command line (node:util parseArgs, strict). Throws an Error whose message says what is wrong. */
export function parseClientArgs(argv: readonly string[]): ClientOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    // name the offending argument; parseArgs' own text is long and generic
    const { tokens } = parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
    for (const t of tokens ?? []) {
      if (t.kind === 'positional' || (t.kind === 'option' && !(t.name in OPTIONS))) {
        throw new Error(`unknown argument ${JSON.stringify(t.kind === 'positional' ? t.value : t.rawName)}`);
      }
      if (t.kind === 'option' && t.name !== 'help' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) {
        throw new Error(`${t.rawName} needs a value`);
      }
    }
    throw new Error((e as Error).message);
  }
  if (values.help) return 'help';
  const int = (flag: string, v: string | undefined, min: number, max: number) => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`invalid ${flag}=${JSON.stringify(v ?? '')}: expected an integer from ${min} to ${max}`);
    return Number(v);
  };
  if (values.port === undefined) throw new Error('--port is required');
  const o: ClientOptions = {
    host: values.host,
    port: int('--port', values.port, 1, 65535),
    frames: int('--frames', values.frames, 1, 10_000_000),
    concurrency: int('--concurrency', values.concurrency, 1, 10_000),
    timeoutMs: int('--timeout-ms', values['timeout-ms'], 1, 3_600_000),
  };
  if (values.out !== undefined) o.out = values.out;
  return o;
}

/** One connection: read to EOF, verify. Never rejects. */
export function fetchFrame(host: string, port: number, timeoutMs: number): Promise<{ data: Buffer; ms: number; error?: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    let done = false;
    const s = net.connect({ host, port, noDelay: true });
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), ms: performance.now() - t0, error });
    };
    const timer = setTimeout(() => finish(`timeout after ${timeoutMs} ms`), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => finish());
    s.on('close', () => finish('closed without FIN'));
    s.on('error', (e) => finish(e.message));
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export async function run(o: ClientOptions): Promise<RunSummary> {
  if (o.out) fs.mkdirSync(o.out, { recursive: true });
  const results: FrameResult[] = [];
  let nextIndex = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (nextIndex < o.frames) {
      const index = nextIndex++;
      const r = await fetchFrame(o.host, o.port, o.timeoutMs);
      const check = checkJpeg(r.data);
      const ok = !r.error && check.ok;
      results.push({ index, ok, bytes: r.data.length, ms: r.ms, reason: r.error ?? (check.ok ? undefined : check.reason) });
      if (o.out && r.data.length > 0) fs.writeFileSync(path.join(o.out, `frame-${String(index).padStart(5, '0')}${ok ? '' : '.bad'}.jpg`), r.data);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.frames) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  results.sort((a, b) => a.index - b.index);
  const lat = results.map((r) => r.ms).sort((a, b) => a - b);
  const ok = results.filter((r) => r.ok).length;
  return { results, ok, bad: results.length - ok, seconds, fps: ok / seconds, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) };
}

async function main(): Promise<void> {
  let o: ClientOptions | 'help';
  try {
    o = parseClientArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`camrelay-client: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (o === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let s: RunSummary;
  try {
    s = await run(o);
  } catch (e) {
    // e.g. --out names a place we cannot write to: say so instead of a stack trace
    process.stderr.write(`camrelay-client: ${(e as Error).message}\n`);
    process.exit(2);
  }
  for (const r of s.results) {
    if (!r.ok) process.stdout.write(`frame ${r.index}: BAD (${r.reason}, ${r.bytes} bytes, ${r.ms.toFixed(1)} ms)\n`);
  }
  const bytes = s.results.reduce((a, r) => a + r.bytes, 0);
  process.stdout.write(
    `${s.ok}/${s.results.length} whole frames from ${o.host}:${o.port} in ${s.seconds.toFixed(2)} s: ` +
      `${s.fps.toFixed(1)} frames/s, latency p50 ${s.p50Ms.toFixed(1)} ms p99 ${s.p99Ms.toFixed(1)} ms, ` +
      `avg ${s.results.length ? Math.round(bytes / s.results.length) : 0} bytes` +
      `${o.out ? `, saved to ${o.out}` : ''}\n`,
  );
  process.exitCode = s.bad > 0 ? 1 : 0;
}

if (require.main === module) void main();
