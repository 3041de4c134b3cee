/**
 * Processes the benchmarks start: fake camera, reference server, relay, tunnel-agent, the C load
 * generator. Everything listens on 127.0.0.1 and on OS-picked ports.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Child, ROOT, relayNodeFlags, spawnChild } from '../../test-support';

export const BENCH_DIR = path.join(ROOT, 'bench');
export const LOADGEN = path.join(BENCH_DIR, 'build', 'loadgen');
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const REGISTER = path.join(BENCH_DIR, 'register.js');

export interface Proc {
  child: Child;
  pid: number;
}

/** `--cpu-prof` flags for a Node child when BENCH_CPU_PROF=1 (profiles land in bench/results/profiles). */
export function nodeArgs(profileName: string | undefined): string[] {
  if (!profileName || process.env.BENCH_CPU_PROF !== '1') return [];
  const dir = path.join(RESULTS_DIR, 'profiles');
  fs.mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${profileName}-${Date.now()}.cpuprofile`];
}

/**
 * A small HTTP request on a fresh connection (no keep-alive: a pooled socket the server just closed
 * makes fetch() fail now and then on a busy machine), retried once.
 */
export async function httpJson(url: string, method = 'GET'): Promise<{ status: number; body: unknown }> {
  const once = () =>
    new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const req = http.request(url, { method, agent: false, timeout: 10_000 }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined });
          } catch (e) {
            reject(e as Error);
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)));
      req.on('error', reject);
      req.end();
    });
  try {
    return await once();
  } catch {
    await sleep(200);
    return once();
  }
}

export interface FakeCameraProc extends Proc {
  port: number;
  controlPort: number;
  /** average frame size */
  frameBytes: number;
  stats(): Promise<{ connections: number; framesSent: number; faultsInjected: number; mode: string }>;
  setMode(mode: string): Promise<void>;
}

export async function startFakeCamera(args: string[] = []): Promise<FakeCameraProc> {
  const child = spawnChild(process.execPath, [path.join(ROOT, 'fake-camera', 'dist', 'main.js'), '--host', '127.0.0.1', '--port', '0', '--control-port', '0', ...args], {
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  const line = await child.waitForLog((l) => l.msg === 'listening', 30_000);
  const controlPort = line.controlPort as number;
  return {
    child,
    pid: child.proc.pid!,
    port: line.port as number,
    controlPort,
    frameBytes: line.frameBytes as number,
    stats: async () => (await httpJson(`http://127.0.0.1:${controlPort}/stats`)).body as never,
    setMode: async (mode) => {
      const r = await httpJson(`http://127.0.0.1:${controlPort}/mode?m=${mode}`, 'POST');
      if (r.status !== 200) throw new Error(`fake camera refused mode ${mode}: ${r.status} ${JSON.stringify(r.body)}`);
    },
  };
}

export interface RefProc extends Proc {
  port: number;
  frameBytes: number;
}

export async function startReference(): Promise<RefProc> {
  const child = spawnChild(process.execPath, [...nodeArgs('reference'), '-r', REGISTER, path.join(BENCH_DIR, 'src', 'reference-server.ts')]);
  const line = await child.waitForLog((l) => l.msg === 'listening', 30_000);
  return { child, pid: child.proc.pid!, port: line.port as number, frameBytes: line.frameBytes as number };
}

export interface RelayProc extends Proc {
  clientPort: number;
  httpPort: number;
  metricsPort: number;
  metrics(): Promise<string>;
}

/** The relay as deployed (its image's node flags; metrics, limits, logging on), with limits raised for a single-host load test. */
export async function startRelay(cameraPort: number, env: Record<string, string> = {}, profileName?: string, mainJs = path.join(ROOT, 'relay', 'dist', 'main.js')): Promise<RelayProc> {
  const child = spawnChild(process.execPath, [...nodeArgs(profileName), ...relayNodeFlags(), mainJs, '--esp32-host', '127.0.0.1', '--esp32-port', String(cameraPort), '--client-port', '0'], {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      HTTP_PORT: '0',
      METRICS_PORT: '0',
      BIND_HOST: '127.0.0.1',
      METRICS_HOST: '127.0.0.1',
      // every load-generator connection comes from 127.0.0.1: lift the per-IP and total caps
      MAX_CLIENTS: '100000',
      MAX_CLIENTS_PER_IP: '100000',
      ...env,
    },
  });
  const line = await child.waitForLog((l) => l.msg === 'relay started', 30_000);
  const metricsPort = line.metricsPort as number;
  return {
    child,
    pid: child.proc.pid!,
    clientPort: line.clientPort as number,
    httpPort: line.httpPort as number,
    metricsPort,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
  };
}

/** Stops a process with SIGTERM (SIGKILL after 10 s); profiles are written on the way out. */
export async function stop(p: Proc | undefined): Promise<void> {
  if (p) await p.child.kill('SIGTERM');
}

export interface LoadResult {
  mode: 'raw' | 'mjpeg';
  conns: number;
  duration_s: number;
  frames: number;
  fps: number;
  bad: number;
  errors: number;
  timeouts: number;
  bytes: number;
  connects: number;
  http_errors: number;
  disconnects: number;
  alive_at_end: number;
  reading: number;
  viewers_with_frames: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  /** the load generator's own CPU per second of run (1.0 = one core) */
  cpu: number;
}

export interface LoadOptions {
  mode: 'raw' | 'mjpeg';
  port: number;
  conns: number;
  durationS: number;
  warmupS?: number;
  timeoutS?: number;
  path?: string;
  stall?: number;
  src?: number;
}

/** Runs the C load generator to completion and returns its JSON result. */
export function loadgen(o: LoadOptions): Promise<LoadResult> {
  const args = ['--mode', o.mode, '--host', '127.0.0.1', '--port', String(o.port), '--conns', String(o.conns), '--duration', String(o.durationS), '--warmup', String(o.warmupS ?? 0.5)];
  if (o.timeoutS !== undefined) args.push('--timeout', String(o.timeoutS));
  if (o.path) args.push('--path', o.path);
  if (o.stall !== undefined) args.push('--stall', String(o.stall));
  if (o.src !== undefined) args.push('--src', String(o.src));
  const limitMs = ((o.warmupS ?? 0.5) + o.durationS + 30) * 1000;
  return new Promise((resolve, reject) => {
    execFile(LOADGEN, args, { timeout: limitMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`loadgen ${args.join(' ')} failed: ${err.message} ${stderr}`));
      try {
        resolve(JSON.parse(stdout) as LoadResult);
      } catch {
        reject(new Error(`loadgen printed no JSON: ${stdout} ${stderr}`));
      }
    });
  });
}

/** Resident set size of a process in KiB (from /proc). */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU time (user + system) of a process in seconds (from /proc). */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/**
 * Seconds the process's main thread (Node's JS thread) spent runnable but waiting for a CPU
 * (/proc/<pid>/schedstat). High values mean the machine, not the process, was the limit.
 */
export function runqueueWaitSeconds(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return NaN;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
