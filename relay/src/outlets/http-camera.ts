/**
 * One camera as the HTTP outlet sees it: its frame store, its MJPEG streamer, its snapshot handler,
 * its measured frame rate and status. The HTTP outlet serves every camera it is given through these;
 * each one has its own viewers, so ending one camera (it left the list) disconnects only its viewers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FrameStore } from '../frame-store';
import type { CameraMetrics } from '../metrics';
import type { ClientLimiter } from './limits';
import { MjpegStreamer } from './mjpeg';
import { SnapshotHandler } from './snapshot';
import { FpsMeter, readiness as frameReadiness, type SourceStatus } from './status';

export interface HttpCameraOptions {
  name: string;
  /** true: no viewer credentials needed */
  public: boolean;
  /** MAX_FRAME_AGE_MS */
  maxFrameAgeMs: number;
  /** CLIENT_WAIT_TIMEOUT_MS */
  waitTimeoutMs: number;
  /** CLIENT_WRITE_TIMEOUT_MS */
  writeTimeoutMs: number;
  /** MAX_FPS of the camera: the highest `?fps=N` a viewer may ask for (0 = uncapped: up to 1000) */
  maxFps?: number;
}

export interface HttpCameraDeps {
  store: FrameStore;
  metrics: CameraMetrics;
  limiter: ClientLimiter;
  /** camera state from the source */
  status: () => SourceStatus;
  /** the camera's readiness rule; default: a frame at most MAX_FRAME_AGE_MS old exists */
  readiness?: () => { ready: boolean; detail?: Record<string, unknown> };
}

export class HttpCamera {
  readonly streamer: MjpegStreamer;
  private readonly snapshot: SnapshotHandler;
  private readonly fps = new FpsMeter();
  private readonly onFrame = () => this.fps.mark();
  private abort = new AbortController();
  private attached = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly opts: HttpCameraOptions,
    readonly deps: HttpCameraDeps,
    bootId: string,
  ) {
    this.streamer = new MjpegStreamer({ writeTimeoutMs: opts.writeTimeoutMs, maxFrameAgeMs: opts.maxFrameAgeMs }, deps);
    this.snapshot = new SnapshotHandler(opts, deps, bootId);
  }

  get name(): string {
    return this.opts.name;
  }

  get public(): boolean {
    return this.opts.public;
  }

  /** True once close() was called: new streams are refused. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Starts measuring the frame rate (no I/O). */
  attach(): void {
    if (this.attached || this.closing) return;
    this.attached = true;
    this.deps.store.on('frame', this.onFrame);
  }

  fpsNow(): number {
    return this.fps.fps();
  }

  /**
   * Serves one snapshot; the wait ends when the outlet (`stop`) or this camera is closed. `maxAgeS`:
   * shared caches may keep it that long (the outlet decides whether this camera's may be cached).
   */
  handleSnapshot(req: IncomingMessage, res: ServerResponse, stop: AbortSignal, maxAgeS = 0): Promise<void> {
    return this.snapshot.handle(req, res, AbortSignal.any([stop, this.abort.signal]), maxAgeS);
  }

  readiness(): { ready: boolean; detail: Record<string, unknown> } {
    if (this.deps.readiness) {
      const r = this.deps.readiness();
      return { ready: r.ready, detail: r.detail ?? {} };
    }
    const { ready, ...rest } = frameReadiness(this.deps.store, this.opts.maxFrameAgeMs);
    return { ready, detail: { ...rest, cameraUp: this.deps.status().cameraUp } };
  }

  /** Ends this camera's MJPEG viewers (within `graceMs`) and aborts its waiting snapshots. Idempotent. */
  close(graceMs: number): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        if (this.attached) this.deps.store.off('frame', this.onFrame);
        this.abort.abort();
        await this.streamer.endAll(graceMs);
      })();
    }
    return this.closing;
  }
}
