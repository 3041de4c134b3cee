/**
 * Relay test rigs and readers, for every tier:
 * - unit: testMetrics() and metricValue() on an in-process RelayMetrics;
 * - in-process outlets (startRig): a real FrameStore, RelayMetrics, ClientLimiter, RawOutlet and
 *   HttpOutlet on loopback port 0 with a captured log, no mocks of the network; HTTP and multipart
 *   readers (request, openStream, MultipartReader) and socket helpers (connect, closed);
 * - child processes (startCamera, startRelay): fake-camera/dist and relay/dist on loopback with
 *   OS-picked ports, plus /metrics readers (parseMetric).
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CidrList, sleep } from '@camrelay/common';
import type { Counter, Gauge } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { FrameStore } from '../relay/src/frame-store';
import { loadConfig } from '../relay/src/config';
import { RelayMetrics } from '../relay/src/metrics';
import { Relay, type RelayPorts } from '../relay/src/relay';
import { ClientLimiter, HttpOutlet, RawOutlet, type HttpOutletDeps, type HttpOutletOptions, type SourceStatus } from '../relay/src/outlets';
import { jpeg, TestCamera } from './camera';
import { Child, freePorts, spawnPackage } from './index';
import { captureLog } from './log';

export function testMetrics(mode = 'pull'): RelayMetrics {
  return new RelayMetrics({ version: 'test', mode, frameAgeSeconds: () => 0, clients: () => 0, withDefaults: false });
}

/** Value of a counter/gauge sample with the given labels (0 when absent). */
export async function metricValue(
  m: Counter<string> | Gauge<string> | { get(): Promise<{ values: { labels: Record<string, string | number | undefined>; value: number }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const got = (await m.get()) as { values: { labels: Record<string, string | number | undefined>; value: number }[] };
  const v = got.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

export interface RigOptions extends Partial<HttpOutletOptions> {
  maxClients?: number;
  maxClientsPerIp?: number;
  allowCidrs?: string[];
  status?: SourceStatus;
  readiness?: HttpOutletDeps['readiness'];
}

export interface Rig {
  store: FrameStore;
  metrics: RelayMetrics;
  limiter: ClientLimiter;
  raw: RawOutlet;
  http: HttpOutlet;
  logs: Record<string, unknown>[];
  base: string;
  stop(): Promise<void>;
  /** Stops the HTTP outlet, waits `downMs`, starts a new one on the same port (a relay restart). */
  restartHttp(downMs: number): Promise<void>;
  /** Value of a counter/gauge sample with the given labels (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export async function startRig(o: RigOptions = {}): Promise<Rig> {
  const store = new FrameStore();
  const { log, lines: logs } = captureLog('info');
  // eslint-disable-next-line prefer-const
  let limiter: ClientLimiter;
  const metrics = new RelayMetrics({
    version: 'test', mode: 'pull', withDefaults: false,
    frameAgeSeconds: () => store.ageMs() / 1000,
    clients: (p) => limiter.clients(p),
  });
  limiter = new ClientLimiter(
    { maxClients: o.maxClients ?? 100, maxClientsPerIp: o.maxClientsPerIp ?? 100, allow: new CidrList(o.allowCidrs ?? []) },
    { metrics, log },
  );
  const opts = {
    bindHost: '127.0.0.1',
    rawPort: 0,
    httpPort: 0,
    maxFrameAgeMs: 1000,
    waitTimeoutMs: 1000,
    writeTimeoutMs: 2000,
    headersTimeoutMs: 2000,
    keepAliveTimeoutMs: 1000,
    shutdownGraceMs: 500,
    ...o,
  };
  const status = o.status ?? { cameraUp: true, mode: 'pull' };
  const raw = new RawOutlet(opts, { store, metrics, limiter, log });
  const httpDeps = { store, metrics, limiter, log, status: () => status, readiness: o.readiness };
  await raw.start();
  const first = new HttpOutlet(opts, httpDeps);
  await first.start();
  const rig: Rig = {
    store, metrics, limiter, raw, http: first, logs,
    base: `http://127.0.0.1:${first.port}`,
    async stop() {
      await rig.http.stop();
      await raw.stop();
      store.close();
    },
    async restartHttp(downMs) {
      const port = rig.http.port;
      await rig.http.stop();
      await sleep(downMs);
      const next = new HttpOutlet({ ...opts, httpPort: port }, httpDeps);
      await next.start();
      rig.http = next;
    },
    async metric(name, labels = {}) {
      const m = metrics.registry.getSingleMetric(name);
      if (!m) throw new Error(`no metric ${name}`);
      const v = await m.get();
      const s = v.values.find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
      return s ? s.value : 0;
    },
  };
  return rig;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One HTTP(S) request over a fresh connection (agent: false unless given), whole body; `body` is sent
 * as is. https: URLs take TLS options (ca, servername) and `localAddress` picks the client address.
 */
export function request(url: string, opts: https.RequestOptions & { body?: string | Buffer } = {}): Promise<RawResponse> {
  const { body, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(url, { agent: false, ...rest }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Opens a TCP connection and resolves once it is established. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves when the socket closes; with the time it took. */
export function closed(s: net.Socket): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(0);
    s.once('close', () => resolve(Date.now() - t0));
  });
}

export interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Incremental reader for the outlet's multipart/x-mixed-replace format: checks the opening
 * boundary, each part's headers and Content-Length, and the boundary that follows every body.
 * Throws on anything malformed.
 */
export class MultipartReader {
  private buf: Buffer = Buffer.alloc(0);
  private started = false;
  private readonly open: Buffer;
  private readonly trailer: Buffer;
  /** every part so far, unless constructed with `keep: false` (a long-running reader) */
  readonly parts: Part[] = [];
  private readonly keep: boolean;

  constructor(boundary: string, opts: { keep?: boolean } = {}) {
    this.keep = opts.keep ?? true;
    this.open = Buffer.from(`--${boundary}\r\n`);
    this.trailer = Buffer.from(`\r\n--${boundary}\r\n`);
  }

  private chunks: Buffer[] = [];
  private len = 0;
  /** bytes needed before parsing can make progress (avoids re-concatenating on every chunk) */
  private need = 0;

  push(chunk: Buffer): Part[] {
    this.chunks.push(chunk);
    this.len += chunk.length;
    if (this.len < this.need) return [];
    this.buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    this.len = 0;
    const out: Part[] = [];
    for (;;) {
      if (!this.started) {
        if (this.buf.length < this.open.length) break;
        if (!this.buf.subarray(0, this.open.length).equals(this.open)) throw new Error(`stream does not start with ${JSON.stringify(this.open.toString())}`);
        this.buf = this.buf.subarray(this.open.length);
        this.started = true;
      }
      const he = this.buf.indexOf('\r\n\r\n');
      if (he < 0) {
        if (this.buf.length > 4096) throw new Error('part header too long');
        this.need = this.buf.length + 1;
        break;
      }
      const headers: Record<string, string> = {};
      for (const line of this.buf.subarray(0, he).toString('latin1').split('\r\n')) {
        const c = line.indexOf(':');
        if (c <= 0) throw new Error(`bad part header line ${JSON.stringify(line)}`);
        headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      const len = Number(headers['content-length']);
      if (!Number.isInteger(len) || len < 0) throw new Error(`bad Content-Length ${headers['content-length']}`);
      const need = he + 4 + len + this.trailer.length;
      if (this.buf.length < need) {
        this.need = need;
        break;
      }
      const body = Buffer.from(this.buf.subarray(he + 4, he + 4 + len));
      if (!this.buf.subarray(he + 4 + len, need).equals(this.trailer)) throw new Error('part body not followed by the boundary');
      const p = { headers, body };
      out.push(p);
      if (this.keep) this.parts.push(p);
      this.buf = this.buf.subarray(need);
      this.need = 0;
    }
    if (this.buf.length > 0) {
      this.chunks = [this.buf];
      this.len = this.buf.length;
    }
    this.buf = Buffer.alloc(0);
    return out;
  }
}

export interface StreamClient {
  reader: MultipartReader;
  status: number;
  headers: http.IncomingHttpHeaders;
  /** resolves when the response ends (server ended the stream) */
  ended: Promise<void>;
  close(): void;
}

/** Opens /stream.mjpg (or any path, http: or https:, options as request()) and parses parts as they arrive. */
export function openStream(url: string, boundary = 'camrelay', opts: https.RequestOptions = {}): Promise<StreamClient> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).get(url, { agent: false, ...opts }, (res) => {
      const reader = new MultipartReader(boundary);
      let failed: Error | undefined;
      const ended = new Promise<void>((r) => {
        res.on('end', () => r());
        res.on('close', () => r());
      });
      res.on('data', (c: Buffer) => {
        if (res.statusCode !== 200 || failed) return;
        try {
          reader.push(c);
        } catch (e) {
          failed = e as Error;
          throw e;
        }
      });
      res.on('error', () => undefined);
      resolve({ reader, status: res.statusCode ?? 0, headers: res.headers, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

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

export interface MultiRelay {
  relay: Relay;
  ports: RelayPorts;
  /** http://127.0.0.1:<HTTP_PORT> */
  base: string;
  file: string;
  logs: Record<string, unknown>[];
  /** rewrites CAMERAS_FILE (then call relay.reload()) */
  write(yaml: string): void;
  /** a /metrics sample from the relay's registry (0 when absent) */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  metricsText(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * An in-process relay in list mode: `yaml` is written to a fresh CAMERAS_FILE, the relay runs on
 * loopback with FAST_ENV (HTTP and metrics on OS-picked ports) plus `env`.
 */
export async function startMultiRelay(yaml: string, env: Record<string, string> = {}): Promise<MultiRelay> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-multi-'));
  const file = path.join(dir, 'cameras.yml');
  fs.writeFileSync(file, yaml);
  const r = loadConfig([], { ...FAST_ENV, SNAPSHOT_DIR: path.join(dir, 'snapshots'), ...env, CAMERAS_FILE: file });
  if (r.help) throw new Error('help');
  const { log, lines: logs } = captureLog('info');
  const relay = new Relay({ config: r.config, log, metricsWithDefaults: false });
  const ports = await relay.start();
  const metricsText = () => relay.metrics.registry.metrics();
  return {
    relay, ports, file, logs,
    base: `http://127.0.0.1:${ports.httpPort}`,
    write: (y) => fs.writeFileSync(file, y),
    metricsText,
    metric: async (name, labels) => parseMetric(await metricsText(), name, labels) ?? 0,
    stop: async () => {
      await relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * startMultiRelay() with two in-process cameras: `pub` (public, 100-byte frames) and `priv` (private,
 * 200-byte frames, so a response tells which camera it came from). stop() also stops the cameras.
 */
export async function startPubPrivRelay(env: Record<string, string> = {}): Promise<MultiRelay> {
  const cams: TestCamera[] = [];
  for (const size of [100, 200]) {
    const c = new TestCamera((sock, n) => sock.end(jpeg(n, size)));
    await c.start();
    cams.push(c);
  }
  const raw = await freePorts(2);
  const entry = (name: string, cam: TestCamera, port: number, extra = '') => `  ${name}:\n    host: 127.0.0.1\n    port: ${cam.port}\n    raw_port: ${port}\n${extra}`;
  const relay = await startMultiRelay(`cameras:\n${entry('pub', cams[0], raw[0], '    public: true\n')}${entry('priv', cams[1], raw[1])}`, env);
  const stop = relay.stop;
  return { ...relay, stop: async () => {
    await stop();
    await Promise.all(cams.map((c) => c.stop()));
  } };
}

/**
 * The node flags the relay's image starts it with (`node $CAMRELAY_NODE_FLAGS relay/dist/main.js`): the
 * relay service's NODE_FLAGS build arg in docker-compose.yml, its one declaration. The benchmarks start
 * the relay "as deployed" with them; the compose tests check the running container has them.
 */
export function relayNodeFlags(): string[] {
  const compose = parseYaml(fs.readFileSync(path.join(__dirname, '..', 'docker-compose.yml'), 'utf8')) as { services?: { relay?: { build?: { args?: Record<string, unknown> } } } };
  const flags = compose.services?.relay?.build?.args?.NODE_FLAGS;
  return typeof flags === 'string' ? flags.split(/\s+/).filter(Boolean) : [];
}
