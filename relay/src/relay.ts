/**
 * Builds every part of the relay from a RelayConfig and runs them as one ServiceGroup:
 * source -> frame store -> outlets (raw TCP, HTTP) + archive, and the metrics/health server.
 * main.ts uses it for the daemon; tests use it to run a whole relay in-process.
 * The constructor does no I/O; start() binds every port; stop() is idempotent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Logger, MetricsServer, ServiceGroup, Service } from '@camrelay/common';
import { Archive } from './archive';
import type { RelayConfig } from './config';
import { FrameStore } from './frame-store';
import { RelayMetrics } from './metrics';
import { ClientLimiter, HttpOutlet, RawOutlet } from './outlets';
import type { SourceStatus as OutletSourceStatus } from './outlets';
import { PullSource, PullSourceOptions } from './source/pull';
import { PushSource } from './source/push';
import type { Source, SourceStatus } from './source/source';

export const VERSION: string = (() => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export interface RelayOptions {
  config: RelayConfig;
  log: Logger;
  /** tests: e.g. skip the process default metrics */
  metricsWithDefaults?: boolean;
  /** tests: socket factory / clock for the pull source */
  pull?: Pick<PullSourceOptions, 'connect' | 'clock' | 'random'>;
}

export interface RelayPorts {
  clientPort: number;
  httpPort: number;
  metricsPort: number;
  ingestPort?: number;
}

/**
 * Frame age up to which /readyz says ready: MAX_FRAME_AGE_MS or the idle fetch period, whichever is
 * longer, plus a second for the fetch itself. With IDLE_FPS=0 frames legitimately age while nobody
 * watches, so there only "the last fetch succeeded" counts.
 */
export function readinessMaxAgeMs(c: RelayConfig): number {
  if (c.source.mode === 'pull' && c.source.idleFps === 0) return Infinity;
  const idlePeriod = c.source.idleFps > 0 ? 1000 / c.source.idleFps : 0;
  return Math.max(c.clients.maxFrameAgeMs, idlePeriod) + 1000;
}

export class Relay {
  readonly store: FrameStore;
  readonly metrics: RelayMetrics;
  readonly limiter: ClientLimiter;
  readonly source: Source;
  readonly raw: RawOutlet;
  readonly http: HttpOutlet;
  readonly archive: Archive;
  readonly metricsServer: MetricsServer;
  private readonly group: ServiceGroup;
  private readonly startedAt = Date.now();

  constructor(private readonly opts: RelayOptions) {
    const { config: c, log } = opts;
    this.store = new FrameStore();
    this.metrics = new RelayMetrics({
      version: VERSION,
      mode: c.source.mode,
      frameAgeSeconds: () => this.store.ageMs() / 1000,
      clients: (p) => this.limiter.clients(p),
      withDefaults: opts.metricsWithDefaults,
    });
    const metrics = this.metrics;
    const store = this.store;
    this.limiter = new ClientLimiter(
      { maxClients: c.clients.maxClients, maxClientsPerIp: c.clients.maxClientsPerIp, allow: c.clients.allow },
      { metrics, log: log.child({ module: 'limits' }) },
    );
    this.source =
      c.source.mode === 'push'
        ? new PushSource({ ingest: c.ingest, limits: c.source, store, metrics, log: log.child({ module: 'push-source' }) })
        : new PullSource({ config: c.source, store, metrics, log: log.child({ module: 'pull-source' }), ...opts.pull });
    const deps = { store, metrics, limiter: this.limiter };
    this.raw = new RawOutlet({ ...c.clients, shutdownGraceMs: c.shutdownGraceMs }, { ...deps, log: log.child({ module: 'raw-outlet' }) });
    this.http = new HttpOutlet(
      { ...c.clients, shutdownGraceMs: c.shutdownGraceMs },
      { ...deps, log: log.child({ module: 'http-outlet' }), status: () => this.outletStatus(), readiness: () => this.readiness() },
    );
    this.archive = new Archive({ config: c.archive, store, metrics, log: log.child({ module: 'archive' }) });
    this.metricsServer = new MetricsServer({
      host: c.metrics.host,
      port: c.metrics.port,
      registry: metrics.registry,
      readiness: () => this.readiness(),
      log: log.child({ module: 'metrics-server' }),
    });
    this.group = new ServiceGroup(log, c.shutdownGraceMs + 3000);
  }

  /** Ready = a fresh frame exists (see readinessMaxAgeMs). */
  readiness(): { ready: boolean; detail: Record<string, unknown> } {
    const age = this.store.ageMs();
    const s = this.source.status();
    const push = this.opts.config.source.mode === 'push';
    return {
      // push: the camera decides the rate, so a frame within PUSH_UP_WINDOW_MS (cameraUp) is what counts
      ready: s.cameraUp === true && (push || age <= readinessMaxAgeMs(this.opts.config)),
      detail: { frameAgeMs: Number.isFinite(age) ? Math.round(age) : null, cameraUp: s.cameraUp ?? false, lastError: s.lastError?.reason ?? null },
    };
  }

  /** The source's status in the shape the HTTP outlet shows on /status.json and /readyz. */
  private outletStatus(): OutletSourceStatus {
    const s = this.source.status();
    const { lastError, cameraUp, ...rest } = s;
    return {
      ...rest,
      cameraUp: cameraUp ?? false,
      lastError: lastError ? `${lastError.reason}: ${lastError.message}` : undefined,
      lastErrorReason: lastError?.reason ?? null,
      lastErrorAt: lastError?.at ?? null,
    };
  }

  /** Everything /status.json shows about the relay core. */
  status(): { source: SourceStatus; frame: { seq: number; ageMs: number | null; bytes: number } | null; uptimeS: number; version: string } {
    const f = this.store.latest;
    return {
      source: this.source.status(),
      frame: f ? { seq: f.seq, ageMs: Math.round(this.store.ageMs()), bytes: f.data.length } : null,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      version: VERSION,
    };
  }

  /** Order: metrics first (health visible early), then source, archive, outlets last. */
  private services(): Service[] {
    // ServiceGroup stops in reverse: outlets stop accepting first, the source and metrics last.
    const closeStore: Service = { name: 'frame-store', start: async () => undefined, stop: async () => this.store.close() };
    // Both outlets stop together, so in-flight sends share one SHUTDOWN_GRACE_MS instead of one each.
    const outlets: Service = {
      name: 'outlets',
      start: async () => {
        await this.raw.start();
        try {
          await this.http.start();
        } catch (e) {
          await this.raw.stop();
          throw e;
        }
      },
      stop: async () => {
        await Promise.all([this.raw.stop(), this.http.stop()]);
      },
    };
    return [this.metricsServer, closeStore, this.source, this.archive, outlets];
  }

  async start(): Promise<RelayPorts> {
    try {
      await this.group.start(this.services());
    } catch (e) {
      await this.group.stop();
      throw e;
    }
    return this.ports();
  }

  ports(): RelayPorts {
    const p: RelayPorts = { clientPort: this.raw.port, httpPort: this.http.port, metricsPort: this.metricsServer.port };
    if (this.source instanceof PushSource) p.ingestPort = this.source.port;
    return p;
  }

  stop(): Promise<void> {
    return this.group.stop();
  }

  /** SIGTERM/SIGINT -> stop everything, flush logs, exit 0. */
  installSignalHandlers(onExit?: (code: number) => void): void {
    this.group.installSignalHandlers(onExit);
  }
}
