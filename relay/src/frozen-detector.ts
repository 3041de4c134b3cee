/**
 * Frozen-camera detection. An ESP32-CAM that locks up (after about a day) keeps answering every
 * fetch with the very same JPEG: fetches succeed, the camera is "up", frames are fresh, and viewers
 * look at a still picture. This class notices that for one camera.
 *
 * Each new whole frame is compared with the previous one: length first, then the bytes
 * (Buffer.equals, a memcmp). Nothing is copied: the previous frame's buffer is kept by reference,
 * like the frame store keeps it anyway, and there is no work per viewer. Once the frames have stayed
 * byte-identical for LONGER than `afterMs` (CAMERA_FROZEN_AFTER_MS), measured from the capture time of
 * the first frame of the identical run to the capture time of the current one, the camera is frozen:
 * the gauge goes to 1 and one warn line is logged. The first frame that differs thaws it: 0 and one
 * info line. Times are the frames' `capturedAt`, stamped by the source's (injectable) clock.
 *
 * It is evaluated only when frames arrive, so it needs no timer: a camera that sends nothing is not
 * frozen but down or stale (CameraDown, FramesStale), and a frozen camera stays frozen until a
 * different frame arrives. A frozen camera is still up for everything else (readiness,
 * relay_camera_up, its frames are still served). `afterMs` 0 turns the check off (the gauge stays 0).
 */
import type { Logger } from '@camrelay/common';
import type { Frame } from './frame-store';
import type { BoundGauge } from './metrics';

export interface FrozenDetectorOptions {
  /** CAMERA_FROZEN_AFTER_MS (per camera: frozen_after_ms); 0 = off */
  afterMs: number;
  /** relay_camera_frozen{camera} */
  gauge: Pick<BoundGauge, 'set'>;
  /** the camera's child logger */
  log: Logger;
}

export class FrozenDetector {
  /** the previous frame's bytes (a reference, never a copy) */
  private last: Buffer | undefined;
  /** capture time of the first frame of the current identical run */
  private runStart = 0;
  /** frames in the current identical run (the first one included) */
  private runFrames = 0;
  private state = false;

  constructor(private readonly opts: FrozenDetectorOptions) {}

  /** True while the camera repeats the same frame for longer than `afterMs`. */
  get frozen(): boolean {
    return this.state;
  }

  /** Feeds one newly published whole frame (in publish order). */
  observe(frame: Pick<Frame, 'data' | 'capturedAt'>): void {
    const { afterMs } = this.opts;
    if (afterMs <= 0) return;
    const prev = this.last;
    const data = frame.data;
    this.last = data;
    const same = prev !== undefined && prev.length === data.length && prev.equals(data);
    if (!same) {
      if (this.state) {
        this.state = false;
        this.opts.gauge.set(0);
        this.opts.log.info(
          { identicalForMs: frame.capturedAt - this.runStart, identicalFrames: this.runFrames },
          'camera thawed: its frames change again',
        );
      }
      this.runStart = frame.capturedAt;
      this.runFrames = 1;
      return;
    }
    this.runFrames++;
    const identicalForMs = frame.capturedAt - this.runStart;
    if (!this.state && identicalForMs > afterMs) {
      this.state = true;
      this.opts.gauge.set(1);
      this.opts.log.warn(
        { identicalForMs, identicalFrames: this.runFrames, bytes: data.length, frozenAfterMs: afterMs },
        'camera frozen: it keeps sending the very same frame (power-cycle it)',
      );
    }
  }
}
