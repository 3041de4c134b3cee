import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logger';
import type { Service } from './lifecycle';
import { listen } from './listen';

export interface Readiness {
  ready: boolean;
  /** Short machine-readable reasons shown in the /readyz body. */
  detail?: Record<string, unknown>;
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Readiness;
  log: Logger;
}

/**
 * Serves /metrics (Prometheus text format with the registry's own Content-Type, which Prometheus 3
 * requires), /healthz (the process is alive and its loop turns) and /readyz (200 or 503 with detail).
 */
export class MetricsServer implements Service {
  readonly name = 'metrics-server';
  private server: http.Server | undefined;

  constructor(private readonly opts: MetricsServerOptions) {}

  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? a.port : -1;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.keepAliveTimeout = 5_000;
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    await listen(server, { port: this.opts.port, host: this.opts.host }, (err) => this.opts.log.error({ err }, 'metrics server error'));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      } else if (path === '/metrics') {
        const body = await this.opts.registry.metrics();
        res.writeHead(200, { 'Content-Type': this.opts.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      } else if (path === '/healthz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const r = this.opts.readiness();
        res.writeHead(r.ready ? 200 : 503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
        res.end(JSON.stringify({ ready: r.ready, ...r.detail }) + '\n');
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      }
    } catch (err) {
      this.opts.log.error({ err }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
