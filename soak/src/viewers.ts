/**
 * The steady viewers: on every camera one MJPEG viewer that notes the arrival of each new frame (the
 * fake camera's sequence number changed), plus a raw client and a snapshot client taking turns every
 * 2 s. They come in like users do: raw TCP on the relay's published ports (followed when a restart
 * makes Docker pick new ones), HTTP through the stack's front door, which is Caddy over HTTPS
 * (HTTPS_PORT, its local CA in NODE_EXTRA_CA_CERTS, both from scripts/test-compose.sh) or, without it,
 * the relay's published HTTP port; with the viewer password when the stack sets one.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { frameSeqOf } from '../../fake-camera/src/frames';
import { MultipartReader } from '../../test-support';
import type { Stack } from './docker';
import type { ViewerRecord } from './results';

/** Where HTTP viewers go in: port, TLS, and the headers every request carries. */
export interface Web {
  port: number;
  tls: boolean;
  headers: Record<string, string>;
}

/** The stack's ports as viewers see them, looked up again after a restart or a refused connection. */
export class Endpoints {
  web: Web = { port: 0, tls: false, headers: {} };
  raw: Record<string, number> = {};
  private refreshing: Promise<void> | undefined;
  private lastRefresh = 0;

  constructor(
    private readonly stack: Stack,
    /** camera -> its raw port inside the relay container */
    private readonly rawPorts: Record<string, number>,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  async refresh(): Promise<void> {
    const raw = await Promise.all(Object.values(this.rawPorts).map((p) => this.stack.published('relay', p)));
    Object.keys(this.rawPorts).forEach((cam, i) => (this.raw[cam] = raw[i]));
    const tls = !!this.env.HTTPS_PORT;
    const port = tls ? Number(this.env.HTTPS_PORT) : await this.stack.published('relay', 8081);
    const headers: Record<string, string> = { host: `localhost:${port}` };
    if (this.env.VIEWER_PASSWORD) headers.authorization = `Basic ${Buffer.from(`${this.env.VIEWER_USER || 'viewer'}:${this.env.VIEWER_PASSWORD}`).toString('base64')}`;
    this.web = { port, tls, headers };
    this.lastRefresh = Date.now();
  }

  /** After a failed connection: at most one lookup every 2 s, shared by every caller. */
  refreshSoon(): Promise<void> {
    if (Date.now() - this.lastRefresh < 2000) return Promise.resolve();
    this.refreshing ??= this.refresh().catch(() => undefined).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }
}

/** GET through the front door (a fresh connection each time; `localhost` is the certificate's name). */
export function webGet(web: Web, path: string, onResponse: (res: http.IncomingMessage) => void, timeoutMs?: number): http.ClientRequest {
  const opts = { host: '127.0.0.1', port: web.port, path, headers: web.headers, agent: false as const, timeout: timeoutMs };
  return web.tls ? https.get({ ...opts, servername: 'localhost' }, onResponse) : http.get(opts, onResponse);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SteadyViewer {
  readonly record: ViewerRecord;
  private running = false;
  private req: http.ClientRequest | undefined;
  private loop: Promise<void> | undefined;
  private lastSeq: number | undefined;
  /** parts of the current stream */
  private parts = 0;
  /** the current stream was hung up by us after a silence */
  private silent = false;

  constructor(
    readonly camera: string,
    private readonly endpoints: Endpoints,
    private readonly now: () => number,
  ) {
    this.record = { camera, arrivals: [], backwards: 0, reconnects: [], maxFrameBytes: 0, polls: [] };
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.req?.destroy();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.parts = 0;
      this.silent = false;
      await this.stream().catch(() => undefined);
      if (!this.running) break;
      // a stream that had delivered frames broke (not: another refused attempt while the relay
      // restarts, nor our own hang-up after a long silence while its camera was down)
      if (this.parts > 0 && !this.silent) this.record.reconnects.push(this.now());
      await this.endpoints.refreshSoon();
      await sleep(200);
    }
  }

  private stream(): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = webGet(this.endpoints.web, `/cam/${this.camera}/stream.mjpg`, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`HTTP ${res.statusCode}`));
          return;
        }
        const reader = new MultipartReader('camrelay', { keep: false });
        res.on('data', (c: Buffer) => {
          try {
            for (const p of reader.push(c)) this.part(p.body);
          } catch (e) {
            req.destroy(e as Error);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
        res.on('close', resolve);
      });
      this.req = req;
      // After this long without a byte the viewer hangs up and comes back: a connection that stays
      // silent could hide a wedged relay. While its camera is down the relay sends nothing, so this
      // is no break of the relay's (not counted in `reconnects`).
      req.setTimeout(30_000, () => {
        this.silent = true;
        req.destroy(new Error('stream silent for 30 s'));
      });
      req.on('error', reject);
    });
  }

  private part(body: Buffer): void {
    const seq = frameSeqOf(body);
    if (seq === undefined) return;
    this.parts++;
    this.record.maxFrameBytes = Math.max(this.record.maxFrameBytes, body.length);
    if (this.lastSeq !== undefined && seq < this.lastSeq) this.record.backwards++;
    if (seq !== this.lastSeq) this.record.arrivals.push(this.now());
    this.lastSeq = seq;
  }
}

/** One raw TCP fetch: a whole JPEG, or not. */
export function rawFetch(port: number, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(checkJpeg(Buffer.concat(chunks)).ok);
    });
  });
}

/** One snapshot: HTTP 200 with a whole JPEG, or not. */
export function snapshot(web: Web, camera: string, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = webGet(web, `/cam/${camera}/snapshot.jpg`, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(res.statusCode === 200 && checkJpeg(Buffer.concat(chunks)).ok));
      res.on('error', () => resolve(false));
    }, timeoutMs);
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** The raw and snapshot clients of one camera, one fetch every `everyMs`, taking turns. */
export class Poller {
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly viewer: SteadyViewer,
    private readonly endpoints: Endpoints,
    private readonly now: () => number,
    private readonly everyMs = 2000,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      for (let i = 0; this.running; i++) {
        const t = this.now();
        const kind = i % 2 === 0 ? 'raw' : 'snapshot';
        const cam = this.viewer.camera;
        const good = kind === 'raw' ? await rawFetch(this.endpoints.raw[cam]) : await snapshot(this.endpoints.web, cam);
        this.viewer.record.polls.push({ t, kind, ok: good });
        if (!good) await this.endpoints.refreshSoon();
        await sleep(Math.max(0, this.everyMs - (this.now() - t)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
