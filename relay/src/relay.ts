/**
 * Builds every part of the relay from a RelayConfig and runs them as one ServiceGroup: the
 * metrics/health server, one CameraRuntime per camera (source -> frame store -> raw outlet +
 * archive, see camera.ts) and the HTTP outlet that serves every camera.
 * main.ts uses it for the daemon; tests use it to run a whole relay in-process.
 * The constructor does no I/O; start() binds every port; stop() is idempotent.
 *
 * Reload (SIGHUP, or reload()): CAMERAS_FILE is read again against the same global settings (the
 * environment is not re-read). An invalid file is logged and counted (relay_config_reloads_total
 * {result="error"}) and the running cameras are kept. A valid one is applied by name: an unchanged
 * camera keeps running untouched (its viewers stay connected), a changed one is stopped and rebuilt,
 * a removed one is stopped (its viewers disconnected, its series removed), an added one is started.
 */
import { isDeepStrictEqual } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { Logger, MetricsServer, ServiceGroup, Service } from '@camrelay/common';
import type { Archive } from './archive';
import { CameraRuntime, cameraReadinessMaxAgeMs } from './camera';
import { CameraConfig, loadCameras, RelayConfig } from './config';
import type { FrameStore } from './frame-store';
import { RelayMetrics } from './metrics';
import { cameraReadiness, ClientLimiter, HttpOutlet, RawOutlet } from './outlets';
import { newBootId } from './outlets/snapshot';
import type { PullSourceOptions } from './source/pull';
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
  /** tests: socket factory / clock for the pull sources */
  pull?: Pick<PullSourceOptions, 'connect' | 'clock' | 'random'>;
}

export interface RelayPorts {
  /** the first camera's raw outlet */
  clientPort: number;
  httpPort: number;
  metricsPort: number;
  /** the first camera's ingest port (push) */
  ingestPort?: number;
  /** every camera's ports, in list order */
  cameras: { name: string; rawPort: number; ingestPort?: number }[];
}

export interface ReloadResult {
  ok: boolean;
  error?: string;
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

/** The first camera's readiness age bound (see cameraReadinessMaxAgeMs). */
export function readinessMaxAgeMs(c: RelayConfig): number {
  return cameraReadinessMaxAgeMs(c.cameras[0]);
}

export class Relay {
  readonly metrics: RelayMetrics;
  readonly limiter: ClientLimiter;
  readonly http: HttpOutlet;
  readonly metricsServer: MetricsServer;
  private readonly group: ServiceGroup;
  private readonly startedAt = Date.now();
  private readonly bootId = newBootId();
  private readonly log: Logger;
  /** running cameras, in list order */
  private list: CameraRuntime[] = [];
  private running = false;
  private stopped = false;
  /** reloads run one after the other */
  private reloading: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: RelayOptions) {
    const { config: c, log } = opts;
    this.log = log;
    this.metrics = new RelayMetrics({
      version: VERSION,
      mode: c.source.mode,
      defaultCamera: c.cameras[0].name,
      frameAgeSeconds: () => (this.list[0] ? this.list[0].store.ageMs() / 1000 : Infinity),
      clients: (p) => this.limiter.clients(p),
      withDefaults: opts.metricsWithDefaults,
    });
    this.limiter = new ClientLimiter(
      { maxClients: c.clients.maxClients, maxClientsPerIp: c.clients.maxClientsPerIp, allow: c.clients.allow },
      { metrics: this.metrics, log: log.child({ module: 'limits' }) },
    );
    this.list = c.cameras.map((cam) => this.build(cam));
    this.metrics.camerasConfigured.set(this.list.length);
    const first = () => this.list[0];
    this.http = new HttpOutlet(
      { ...c.clients, shutdownGraceMs: c.shutdownGraceMs },
      {
        get store() { return first().store; },
        metrics: this.metrics,
        limiter: this.limiter,
        log: log.child({ module: 'http-outlet' }),
        status: () => first().outletStatus(),
        readiness: () => this.readiness(),
        cameras: () => this.list.map((x) => x.http),
        version: VERSION,
      },
    );
    this.metricsServer = new MetricsServer({
      host: c.metrics.host,
      port: c.metrics.port,
      registry: this.metrics.registry,
      readiness: () => this.readiness(),
      log: log.child({ module: 'metrics-server' }),
    });
    this.group = new ServiceGroup(log, c.shutdownGraceMs + 3000);
  }

  private build(cam: CameraConfig): CameraRuntime {
    const c = this.opts.config;
    return new CameraRuntime({
      config: cam, clients: c.clients, shutdownGraceMs: c.shutdownGraceMs, metrics: this.metrics, limiter: this.limiter,
      log: this.log, bootId: this.bootId, pull: this.opts.pull,
    });
  }

  /** The running cameras, in list order. */
  get cameras(): readonly CameraRuntime[] {
    return this.list;
  }

  camera(name: string): CameraRuntime | undefined {
    return this.list.find((c) => c.name === name);
  }

  // The first camera's parts (single-camera code and tests).
  get store(): FrameStore { return this.list[0].store; }
  get source(): Source { return this.list[0].source; }
  get raw(): RawOutlet { return this.list[0].raw; }
  get archive(): Archive { return this.list[0].archive; }

  /** Ready = every camera has a fresh frame; the detail has the first camera's fields and a `cameras` list. */
  readiness(): { ready: boolean; detail: Record<string, unknown> } {
    return cameraReadiness(this.list.map((c) => c.http));
  }

  /** Everything /status.json shows about the relay core (the first camera's source and frame). */
  status(): { source: SourceStatus; frame: { seq: number; ageMs: number | null; bytes: number } | null; uptimeS: number; version: string } {
    const first = this.list[0];
    const f = first.store.latest;
    return {
      source: first.source.status(),
      frame: f ? { seq: f.seq, ageMs: Math.round(first.store.ageMs()), bytes: f.data.length } : null,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      version: VERSION,
    };
  }

  /** Order: metrics first (health visible early), then the cameras (in parallel), the HTTP outlet last. */
  private services(): Service[] {
    // ServiceGroup stops in reverse: HTTP stops accepting first, then the cameras, metrics last.
    const cameras: Service = {
      name: 'cameras',
      start: async () => {
        const results = await Promise.allSettled(this.list.map((c) => c.start()));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) {
          await Promise.all(this.list.map((c) => c.stop()));
          throw failed.reason;
        }
        this.running = true;
      },
      stop: async () => {
        this.running = false;
        await Promise.all(this.list.map((c) => c.stop()));
      },
    };
    return [this.metricsServer, cameras, this.http];
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
    const cams = this.list.map((c) => ({ name: c.name, ...c.ports() }));
    const p: RelayPorts = { clientPort: cams[0]?.rawPort ?? -1, httpPort: this.http.port, metricsPort: this.metricsServer.port, cameras: cams };
    if (cams[0]?.ingestPort !== undefined) p.ingestPort = cams[0].ingestPort;
    return p;
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.reloading.then(() => this.group.stop());
  }

  /**
   * Re-reads CAMERAS_FILE and applies the difference (see the file comment). Without CAMERAS_FILE
   * there is nothing to re-read (ok, nothing changes). Never throws.
   */
  reload(): Promise<ReloadResult> {
    const next = this.reloading.then(() => this.doReload());
    this.reloading = next.catch(() => undefined);
    return next;
  }

  private async doReload(): Promise<ReloadResult> {
    const res: ReloadResult = { ok: false, added: [], removed: [], changed: [], unchanged: [] };
    const file = this.opts.config.camerasFile;
    if (this.stopped) return { ...res, error: 'relay stopped' };
    if (file === undefined) {
      this.log.info('reload: no CAMERAS_FILE, nothing to re-read');
      return { ...res, ok: true, unchanged: this.list.map((c) => c.name) };
    }
    let wanted: CameraConfig[];
    try {
      wanted = loadCameras(file, this.opts.config.settings);
    } catch (err) {
      const message = (err as Error).message;
      this.metrics.configReloads.inc({ result: 'error' });
      this.log.error({ file, error: message }, 'reload: invalid camera list, running cameras kept');
      return { ...res, error: message, unchanged: this.list.map((c) => c.name) };
    }
    const old = new Map(this.list.map((c) => [c.name, c]));
    const keep = new Map<string, CameraRuntime>();
    for (const w of wanted) {
      const have = old.get(w.name);
      if (have && isDeepStrictEqual(have.config, w)) keep.set(w.name, have);
    }
    const gone = this.list.filter((c) => !keep.has(c.name));
    for (const c of gone) (wanted.some((w) => w.name === c.name) ? res.changed : res.removed).push(c.name);
    res.unchanged = [...keep.keys()];
    res.added = wanted.filter((w) => !old.has(w.name)).map((w) => w.name);

    // stop first (frees their ports for a changed camera), drop removed cameras' series
    await Promise.all(gone.map((c) => c.stop()));
    for (const name of res.removed) this.metrics.removeCamera(name);
    for (const name of res.changed) this.metrics.removeCamera(name);
    const built = new Map<string, CameraRuntime>();
    const list = wanted.map((w) => {
      const k = keep.get(w.name);
      if (k) return k;
      const b = this.build(w);
      built.set(w.name, b);
      return b;
    });
    const failures: string[] = [];
    if (this.running) {
      const results = await Promise.allSettled([...built.values()].map((b) => b.start()));
      [...built.keys()].forEach((name, i) => {
        const r = results[i];
        if (r.status === 'rejected') failures.push(`${name}: ${(r.reason as Error).message}`);
      });
    }
    // a camera that could not start (e.g. its port is taken) is left out; the others run
    this.list = list.filter((c) => !failures.some((f) => f.startsWith(`${c.name}: `)));
    for (const f of failures) this.metrics.removeCamera(f.slice(0, f.indexOf(': ')));
    this.metrics.camerasConfigured.set(this.list.length);
    res.ok = failures.length === 0;
    if (failures.length > 0) res.error = failures.join('; ');
    this.metrics.configReloads.inc({ result: res.ok ? 'ok' : 'error' });
    const summary = { added: res.added, removed: res.removed, changed: res.changed, unchanged: res.unchanged.length };
    if (res.ok) this.log.info(summary, 'reload: camera list applied');
    else this.log.error({ ...summary, error: res.error }, 'reload: camera list applied, but some cameras failed to start');
    return res;
  }

  /** SIGTERM/SIGINT -> stop everything, flush logs, exit 0; SIGHUP -> reload(). */
  installSignalHandlers(onExit?: (code: number) => void): void {
    this.group.installSignalHandlers(onExit);
    process.on('SIGHUP', () => {
      this.log.info({ signal: 'SIGHUP' }, 'reloading the camera list');
      void this.reload();
    });
  }
}
