/**
 * In-process rig for the outlet tests: a real FrameStore, RelayMetrics, ClientLimiter, RawOutlet and
 * HttpOutlet on loopback port 0, with a captured log. No mocks of the network.
 */
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import { CidrList, createLogger } from '@camrelay/common';
import { FrameStore } from '../../src/frame-store';
import { RelayMetrics } from '../../src/metrics';
import { ClientLimiter, HttpOutlet, RawOutlet, type HttpOutletDeps, type HttpOutletOptions, type SourceStatus } from '../../src/outlets';

/** A small "JPEG" (SOI ... EOI) with a recognisable body; the outlets never decode it. */
export function fakeJpeg(n: number, size = 2048): Buffer {
  const b = Buffer.alloc(Math.max(size, 16), n & 0xff);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[3] = 0xe0;
  b.writeUInt32BE(n, 4);
  b[b.length - 2] = 0xff;
  b[b.length - 1] = 0xd9;
  return b;
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
  const logs: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.startsWith('{')) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger({ name: 'relay-test', level: 'info', destination: dest });
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

/** One HTTP request over a fresh connection (agent: false), whole body. */
export function request(url: string, opts: http.RequestOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  readonly parts: Part[] = [];

  constructor(boundary: string) {
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
      this.parts.push(p);
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

/** Opens /stream.mjpg (or any path) and parses parts as they arrive. */
export function openStream(url: string, boundary = 'camrelay'): Promise<StreamClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
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
