/**
 * Control endpoint of the fake camera (tests and the compose fault test; bind it to loopback or a
 * private network only): GET /stats, POST|PUT /mode?m=<mode>, GET /healthz.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { listen, type Logger } from '@camrelay/common';
import { FakeCamera, isMode, MODES } from './camera';

export interface ControlServerOptions {
  host: string;
  port: number;
  camera: FakeCamera;
  log?: Logger;
}

export class ControlServer {
  readonly name = 'fake-camera-control';
  private server: http.Server | undefined;

  constructor(private readonly opts: ControlServerOptions) {}

  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? a.port : -1;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    await listen(server, { port: this.opts.port, host: this.opts.host }, (err) => this.opts.log?.error({ err }, 'control server error'));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(body) + '\n');
    };
    req.resume();
    try {
      if (url.pathname === '/stats' && req.method === 'GET') {
        json(200, this.opts.camera.stats);
      } else if (url.pathname === '/healthz' && req.method === 'GET') {
        json(200, { ok: true });
      } else if (url.pathname === '/mode' && (req.method === 'POST' || req.method === 'PUT')) {
        const m = url.searchParams.get('m') ?? '';
        if (!isMode(m)) {
          json(400, { error: `invalid mode ${JSON.stringify(m)}: expected one of ${MODES.join(', ')}` });
          return;
        }
        await this.opts.camera.setMode(m);
        json(200, this.opts.camera.stats);
      } else if (url.pathname === '/mode' && req.method === 'GET') {
        json(200, { mode: this.opts.camera.mode });
      } else {
        json(404, { error: 'not found', routes: ['GET /stats', 'POST|PUT /mode?m=<mode>', 'GET /healthz'] });
      }
    } catch (err) {
      this.opts.log?.error({ err }, 'control request failed');
      if (!res.headersSent) json(500, { error: String(err) });
      else res.end();
    }
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
