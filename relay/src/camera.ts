/**
 * One camera's runtime inside the relay: its source (pull or push), frame store, frozen-camera
 * detector, raw TCP outlet, archive, metrics view and HTTP view (MJPEG streamer, snapshot handler). Cameras share nothing but
 * the process, the client limiter, the HTTP port and the registry: each has its own timers,
 * back-off, sockets and viewers, and no camera awaits another, so a camera that hangs, refuses,
 * sends garbage or backs off cannot slow the others. The constructor does no I/O; start() binds
 * this camera's ports; stop() is idempotent.
 */
import type { Logger } from '@camrelay/common';
import { Archive } from './archive';
import type { CameraConfig, ClientConfig } from './config';
import { FrameStore } from './frame-store';
import { FrozenDetector } from './frozen-detector';
import type { CameraMetrics, RelayMetrics } from './metrics';
import { ClientLimiter, HttpCamera, RawOutlet } from './outlets';
import type { SourceStatus as OutletSourceStatus } from './outlets';
import { PullSource, PullSourceOptions } from './source/pull';
import { PushSource } from './source/push';
import type { Source } from './source/source';

export interface CameraRuntimeOptions {
  config: CameraConfig;
  /** relay-wide client settings (bind host, timeouts); rawPort/maxFrameAgeMs come from the camera */
  clients: ClientConfig;
  shutdownGraceMs: number;
  metrics: RelayMetrics;
  limiter: ClientLimiter;
  log: Logger;
  bootId: string;
  /** tests: socket factory / clock for the pull source */
  pull?: Pick<PullSourceOptions, 'connect' | 'clock' | 'random'>;
}

/**
 * Frame age up to which a camera counts as ready: MAX_FRAME_AGE_MS or the idle fetch period,
 * whichever is longer, plus a second for the fetch itself. With IDLE_FPS=0 frames legitimately age
 * while nobody watches, so there only "the last fetch succeeded" counts.
 */
export function cameraReadinessMaxAgeMs(c: Pick<CameraConfig, 'source' | 'maxFrameAgeMs'>): number {
  if (c.source.mode === 'pull' && c.source.idleFps === 0) return Infinity;
  const idlePeriod = c.source.idleFps > 0 ? 1000 / c.source.idleFps : 0;
  return Math.max(c.maxFrameAgeMs, idlePeriod) + 1000;
}

export class CameraRuntime {
  readonly store = new FrameStore();
  readonly metrics: CameraMetrics;
  readonly source: Source;
  /** watches the published frames for a camera that repeats the same one (CAMERA_FROZEN_AFTER_MS) */
  readonly frozen: FrozenDetector;
  readonly raw: RawOutlet;
  readonly archive: Archive;
  readonly http: HttpCamera;
  private started = false;
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: CameraRuntimeOptions) {
    const c = opts.config;
    const store = this.store;
    this.log = opts.log.child({ camera: c.name });
    const log = this.log;
    this.metrics = opts.metrics.camera(c.name, () => store.ageMs() / 1000);
    const metrics = this.metrics;
    const frozen = new FrozenDetector({ afterMs: c.frozenAfterMs, gauge: metrics.cameraFrozen, log: log.child({ module: 'frozen-detector' }) });
    this.frozen = frozen;
    // the store and this listener live and die with this runtime: nothing to remove on stop()
    store.on('frame', (f) => frozen.observe(f));
    this.source =
      c.source.mode === 'push'
        ? new PushSource({ ingest: c.ingest, limits: c.source, store, metrics, log: log.child({ module: 'push-source' }) })
        : new PullSource({ config: c.source, store, metrics, log: log.child({ module: 'pull-source' }), ...opts.pull });
    const deps = { store, metrics, limiter: opts.limiter };
    const clients = { ...opts.clients, rawPort: c.rawPort, maxFrameAgeMs: c.maxFrameAgeMs };
    this.raw = new RawOutlet({ ...clients, shutdownGraceMs: opts.shutdownGraceMs }, { ...deps, log: log.child({ module: 'raw-outlet' }) });
    this.archive = new Archive({ config: c.archive, store, metrics, log: log.child({ module: 'archive' }) });
    this.http = new HttpCamera(
      { name: c.name, public: c.public, maxFrameAgeMs: c.maxFrameAgeMs, waitTimeoutMs: clients.waitTimeoutMs, writeTimeoutMs: clients.writeTimeoutMs, maxFps: c.source.maxFps },
      { ...deps, status: () => this.outletStatus(), readiness: () => this.readiness() },
      opts.bootId,
    );
  }

  get name(): string {
    return this.opts.config.name;
  }

  get config(): CameraConfig {
    return this.opts.config;
  }

  /** Ready = a fresh frame exists (see cameraReadinessMaxAgeMs); push: a frame within PUSH_UP_WINDOW_MS. */
  readiness(): { ready: boolean; detail: Record<string, unknown> } {
    const age = this.store.ageMs();
    const s = this.source.status();
    const push = this.opts.config.source.mode === 'push';
    return {
      ready: s.cameraUp === true && (push || age <= cameraReadinessMaxAgeMs(this.opts.config)),
      detail: { frameAgeMs: Number.isFinite(age) ? Math.round(age) : null, cameraUp: s.cameraUp ?? false, lastError: s.lastError?.reason ?? null },
    };
  }

  /** The source's status in the shape the HTTP outlet shows on /status.json. */
  outletStatus(): OutletSourceStatus {
    const { lastError, cameraUp, ...rest } = this.source.status();
    return {
      ...rest,
      cameraUp: cameraUp ?? false,
      frozen: this.frozen.frozen,
      lastError: lastError ? `${lastError.reason}: ${lastError.message}` : undefined,
      lastErrorReason: lastError?.reason ?? null,
      lastErrorAt: lastError?.at ?? null,
    };
  }

  /** Starts the source, the archive and the raw outlet; on failure stops what started and throws. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      await this.source.start();
      await this.archive.start();
      await this.raw.start();
      this.http.attach();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Outlets first (viewers end), then the archive, the source and the store. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        const grace = this.opts.shutdownGraceMs;
        await Promise.all([this.raw.stop(), this.http.close(grace)]);
        await this.archive.stop();
        await this.source.stop();
        this.store.close();
      })();
    }
    return this.stopping;
  }

  /** Reported ports: raw outlet, and the ingest port for a push camera. */
  ports(): { rawPort: number; ingestPort?: number } {
    const p: { rawPort: number; ingestPort?: number } = { rawPort: this.raw.port };
    if (this.source instanceof PushSource) p.ingestPort = this.source.port;
    return p;
  }
}
