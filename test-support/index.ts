/**
 * Helpers shared by every test tier: child processes with guaranteed teardown, polling, raw TCP
 * fetches, and gating of tiers that need a system component.
 */
import { ChildProcess, execFileSync, spawn, SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');

/** The checkout's short commit, marked when the working tree differs (for the reports of bench and soak). */
export function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

/** The first of the kernel's ephemeral ports (Linux; the common default elsewhere). */
function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (low > 0) return low;
  } catch {
    // not Linux
  }
  return 32768;
}

const handedOut = new Set<number>();

/** Whether 127.0.0.1:port can be bound now (port 0: the OS picks); the port bound, or 0. */
function tryBind(port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(0));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(got));
    });
  });
}

/**
 * `n` distinct loopback ports that are free now, for a server that binds them a moment later (camera
 * lists and sshd have no "port 0"). They are drawn at random from below the kernel's ephemeral range:
 * a port the OS picked would be in that range, where an outgoing connection of a parallel test can
 * take it as its source port before the server binds it (EADDRINUSE). No port is handed out twice in
 * one process. Only with no room below the range does the OS pick (the racy way).
 */
export async function freePorts(n: number): Promise<number[]> {
  const low = ephemeralLow();
  const floor = 20_000;
  const out: number[] = [];
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 1000) throw new Error(`freePorts: found no free port below ${low}`);
    const p = await tryBind(low > floor + 1000 ? floor + Math.floor(Math.random() * (low - floor)) : 0);
    if (p !== 0 && !handedOut.has(p)) {
      handedOut.add(p);
      out.push(p);
    }
  }
  return out;
}

/** True when the run must fail rather than skip a tier whose system component is missing (CI). */
export const REQUIRE_ALL = process.env.REQUIRE_ALL === '1';

/** First existing path, or undefined. */
export function findExecutable(candidates: string[]): string | undefined {
  return candidates.find((c) => {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * `describe` when the component is present. When it is missing: under REQUIRE_ALL=1 a failing test
 * that names it; otherwise one passing-nothing block that prints why the tier did not run.
 */
export function describeWith(component: string, present: boolean, name: string, fn: () => void): void {
  if (present) {
    describe(name, fn);
    return;
  }
  describe(name, () => {
    test(`requires ${component}`, () => {
      const msg = `${component} is not installed: the "${name}" tier cannot run`;
      if (REQUIRE_ALL) throw new Error(`${msg} (REQUIRE_ALL=1)`);
      console.warn(`SKIPPED TIER: ${msg}. Install it (see .ci/run) or set REQUIRE_ALL=1 to make this fatal.`);
    });
  });
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition', intervalMs = 25): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<Awaited<T>>;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

export interface FetchResult {
  data: Buffer;
  /** ms from connect() to EOF */
  ms: number;
  error?: Error;
}

/** Connects, reads to EOF (or error/timeout), returns what arrived. Never rejects. */
export function rawFetch(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<FetchResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host, noDelay: true });
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), ms: Date.now() - t0, error });
    };
    const timer = setTimeout(() => finish(new Error('timeout')), timeoutMs);
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => finish());
    s.on('close', () => finish());
    s.on('error', (e) => finish(e));
  });
}

/** True when something accepts TCP connections on the port right now. */
export function isListening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Resolves once something accepts TCP connections on the port. */
export function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<boolean> {
  return waitFor<boolean>(() => isListening(port, host), timeoutMs, `port ${host}:${port}`);
}

export interface Child {
  proc: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Parsed pino JSON lines from stdout. */
  logs(): Record<string, unknown>[];
  /** Waits for a log line matching the predicate. */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<Child>();

/** Spawns a child that is killed by killAllChildren() (call it in afterAll/afterEach). */
export function spawnChild(cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
    proc.on('error', () => resolve({ code: -1, signal: null }));
  });
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const child: Child = {
    proc,
    stdout: () => out,
    stderr: () => err,
    logs,
    waitForLog: (pred, timeoutMs = 10_000) =>
      waitFor(() => logs().find(pred), timeoutMs, `log line in ${path.basename(args[0] ?? cmd)} (stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)})`),
    exited,
    kill: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const r = await exited;
      clearTimeout(timer);
      children.delete(child);
      return r;
    },
  };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

/** Runs `node <pkg>/dist/main.js` of a workspace package. */
export function spawnPackage(pkg: 'relay' | 'fake-camera' | 'tunnel-agent', args: string[] = [], env: Record<string, string> = {}): Child {
  return spawnChild(process.execPath, [path.join(ROOT, pkg, 'dist', 'main.js'), ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
  });
}

export async function killAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => c.kill('SIGKILL')));
}

/** Fetches an HTTP URL on loopback; returns status, headers and body. */
export async function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await fetch(url, { headers });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

export { FakeClock } from './fake-clock';

/** A port nobody listens on on 127.0.0.1 (one of freePorts: a test may also bind it later). */
export async function closedPort(): Promise<number> {
  return (await freePorts(1))[0];
}

/** The one sleep of the tests (common's: real time unless handed a clock). Only for integration tiers
 * and for waits that assert that nothing happens; wait for conditions with waitFor. */
export { sleep } from '@camrelay/common';
export * from './camera';
export * from './log';
export * from './relay';
export * from './proxies';
export * from './ssh-keys';

/** `root` and every process below it, from [pid, ppid] pairs (`docker top -eo pid,ppid`, /proc/<pid>/stat). */
export function descendants(rows: [number, number][], root: number): number[] {
  const out = new Set<number>();
  if (rows.some(([pid]) => pid === root)) out.add(root);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of rows) {
      if (!out.has(pid) && out.has(ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out];
}
