/**
 * Child-process rig for the relay's integration tests: the fake camera (fake-camera/dist/main.js)
 * and the relay (relay/dist/main.js), both on loopback with OS-picked ports, plus /metrics readers.
 */
import { Child, spawnPackage } from '../../../test-support';

export interface CameraProc {
  child: Child;
  port: number;
  controlPort: number;
  stats(): Promise<{ connections: number; framesSent: number; faultsInjected: number; mode: string; lastSeq: number }>;
  setMode(mode: string): Promise<void>;
}

export async function startCamera(args: string[] = [], env: Record<string, string> = {}): Promise<CameraProc> {
  const child = spawnPackage('fake-camera', ['--host', '127.0.0.1', '--port', '0', '--control-port', '0', '--capture-ms', '20', ...args], { LOG_LEVEL: 'info', ...env });
  const l = await child.waitForLog((x) => x.msg === 'listening', 15_000);
  const port = l.port as number;
  const controlPort = l.controlPort as number;
  const base = `http://127.0.0.1:${controlPort}`;
  return {
    child,
    port,
    controlPort,
    stats: async () => (await (await fetch(`${base}/stats`)).json()) as Awaited<ReturnType<CameraProc['stats']>>,
    setMode: async (mode) => {
      const r = await fetch(`${base}/mode?m=${mode}`, { method: 'POST' });
      if (r.status !== 200) throw new Error(`setMode ${mode}: ${r.status} ${await r.text()}`);
    },
  };
}

export interface RelayProc {
  child: Child;
  clientPort: number;
  httpPort: number;
  metricsPort: number;
  ingestPort?: number;
  metricsText(): Promise<string>;
  /** one sample's value, 0 when absent */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** Defaults that keep tests quick; every one can be overridden. */
export const FAST_ENV: Record<string, string> = {
  BIND_HOST: '127.0.0.1',
  METRICS_HOST: '127.0.0.1',
  INGEST_HOST: '127.0.0.1',
  CLIENT_PORT: '0',
  HTTP_PORT: '0',
  METRICS_PORT: '0',
  INGEST_PORT: '0',
  RETRY_BASE_MS: '50',
  RETRY_MAX_MS: '200',
  CAMERA_CONNECT_TIMEOUT_MS: '1000',
  CAMERA_IDLE_TIMEOUT_MS: '500',
  CAMERA_DEADLINE_MS: '3000',
  CLIENT_WAIT_TIMEOUT_MS: '2000',
  SHUTDOWN_GRACE_MS: '1000',
  LOG_LEVEL: 'info',
};

export function parseMetric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[3] ?? '').match(/(\w+)="((?:[^"\\]|\\.)*)"/g) ?? []) {
      const [k, v] = pair.split('=');
      got[k] = v.slice(1, -1);
    }
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
  }
  return undefined;
}

export async function startRelay(env: Record<string, string> = {}, args: string[] = []): Promise<RelayProc> {
  const child = spawnPackage('relay', args, { ...FAST_ENV, ...env });
  const l = await child.waitForLog((x) => x.msg === 'relay started', 15_000);
  const metricsPort = l.metricsPort as number;
  const metricsText = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return {
    child,
    clientPort: l.clientPort as number,
    httpPort: l.httpPort as number,
    metricsPort,
    ingestPort: l.ingestPort as number | undefined,
    metricsText,
    metric: async (name, labels) => parseMetric(await metricsText(), name, labels) ?? 0,
  };
}
