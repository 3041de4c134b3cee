/**
 * Running the real tunnel-agent (`node tunnel-agent/dist/main.js`) against the real sshd fixture,
 * with short timings, and reading its /metrics and /readyz.
 */
import fs from 'node:fs';
import { Child, spawnPackage, waitFor } from '../index';
import type { Sshd } from '../sshd';

export interface RunningAgent {
  child: Child;
  metricsPort: number;
  /** Tunnel port on the sshd side (loopback). */
  tunnelPort: number;
  metrics(): Promise<Map<string, number>>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  ready(): Promise<boolean>;
  waitReady(timeoutMs?: number): Promise<void>;
  openFds(): number;
}

/** Short timings so faults show up in seconds, not minutes. */
export const FAST_ENV: Record<string, string> = {
  SSH_KEEPALIVE_INTERVAL_S: '0.5',
  SSH_KEEPALIVE_COUNT_MAX: '2',
  SSH_CONNECT_TIMEOUT_S: '5',
  RECONNECT_MIN_S: '0.1',
  RECONNECT_MAX_S: '2',
  STABLE_AFTER_S: '1',
  UNREACHABLE_PROBE_MS: '100',
  FORWARD_BIND_RETRY_MS: '200',
  FORWARD_CONNECT_TIMEOUT_MS: '2000',
  METRICS_HOST: '127.0.0.1',
  METRICS_PORT: '0',
  LOG_LEVEL: 'debug',
};

export function agentEnv(sshd: Sshd, targetPort: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...FAST_ENV,
    SSH_HOST: sshd.host,
    SSH_PORT: String(sshd.port),
    SSH_USER: sshd.user,
    SSH_PRIVATE_KEY_FILE: sshd.clientKeyFile,
    SSH_KNOWN_HOSTS_FILE: sshd.knownHostsFile,
    TUNNEL_FORWARDS: `127.0.0.1:${sshd.permitListenPorts[0]}:127.0.0.1:${targetPort}`,
    ...extra,
  };
}

export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^(\S+?)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m) out.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return out;
}

export async function startAgent(env: Record<string, string>, tunnelPort: number): Promise<RunningAgent> {
  const child = spawnPackage('tunnel-agent', [], env);
  const started = await child.waitForLog((l) => l.msg === 'tunnel-agent started', 15_000);
  const metricsPort = Number(String(started.metrics).split(':').pop());
  const base = `http://127.0.0.1:${metricsPort}`;
  const metrics = async () => parseMetrics(await (await fetch(`${base}/metrics`)).text());
  const a: RunningAgent = {
    child,
    metricsPort,
    tunnelPort,
    metrics,
    metric: async (name, labels = {}) => {
      const all = await metrics();
      for (const [k, v] of all) {
        if (!k.startsWith(`${name}{`) && k !== name) continue;
        if (Object.entries(labels).every(([lk, lv]) => k.includes(`${lk}="${lv}"`))) return v;
      }
      return NaN;
    },
    ready: async () => (await fetch(`${base}/readyz`)).status === 200,
    waitReady: (timeoutMs = 15_000) =>
      waitFor(() => a.ready(), timeoutMs, `agent ready (logs: ${child.stdout().slice(-3000)})`).then(() => undefined),
    openFds: () => fs.readdirSync(`/proc/${child.proc.pid}/fd`).length,
  };
  return a;
}

