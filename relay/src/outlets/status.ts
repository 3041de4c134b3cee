/**
 * What /status.json and /readyz report. Nothing secret and no client addresses: camera state (up, frozen),
 * measured frame rate, the latest frame's seq/age/size, live clients by protocol, uptime.
 */
import type { FrameStore } from '../frame-store';

/** What main provides from the source (extra fields are passed through to /status.json). */
export interface SourceStatus {
  cameraUp: boolean;
  /** the camera repeats the very same frame (CAMERA_FROZEN_AFTER_MS); it is still up. Absent = false */
  frozen?: boolean;
  mode: string;
  lastError?: string;
  /** the source's own idea of the rate; /status.json reports the rate measured at the store */
  fps?: number;
  [extra: string]: unknown;
}

/**
 * Frames per second published to the store, from the publish times inside the last `windowMs`
 * (a fixed ring: no allocation per frame). With n frames in the window, the rate is (n - 1) over
 * the time from the oldest of them to NOW, so it is right as soon as two frames arrived and decays
 * to 0 when frames stop.
 */
export class FpsMeter {
  private readonly times: Float64Array;
  private next = 0;
  private count = 0;

  constructor(
    private readonly windowMs = 5000,
    capacity = 512,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.times = new Float64Array(capacity);
  }

  mark(): void {
    this.times[this.next] = this.now();
    this.next = (this.next + 1) % this.times.length;
    if (this.count < this.times.length) this.count++;
  }

  fps(): number {
    const t = this.now();
    const from = t - this.windowMs;
    let n = 0;
    let oldest = t;
    for (let i = 0; i < this.count; i++) {
      const v = this.times[i];
      if (v >= from) {
        n++;
        if (v < oldest) oldest = v;
      }
    }
    if (n < 2 || t <= oldest) return 0;
    return Math.round(((n - 1) / ((t - oldest) / 1000)) * 10) / 10;
  }
}

export interface StatusDeps {
  store: FrameStore;
  status: () => SourceStatus;
  clients: () => Record<string, number>;
  connections: () => number;
  fps: () => number;
  startedAt: number;
  maxFrameAgeMs: number;
}

export function buildStatus(d: StatusDeps): Record<string, unknown> {
  const src = d.status();
  const f = d.store.latest;
  return {
    ...src,
    cameraUp: src.cameraUp,
    frozen: src.frozen === true,
    mode: src.mode,
    lastError: src.lastError ?? null,
    fps: d.fps(),
    frame: f ? { seq: f.seq, ageMs: Math.max(0, Math.round(d.store.ageMs())), bytes: f.data.length, capturedAt: new Date(f.capturedAt).toISOString() } : null,
    maxFrameAgeMs: d.maxFrameAgeMs,
    clients: d.clients(),
    connections: d.connections(),
    uptimeSeconds: Math.round((Date.now() - d.startedAt) / 100) / 10,
  };
}

export interface ReadyState {
  ready: boolean;
  reason?: string;
  ageMs?: number;
  seq?: number;
}

/** Ready when a frame at most maxFrameAgeMs old exists. */
export function readiness(store: FrameStore, maxFrameAgeMs: number): ReadyState {
  const f = store.latest;
  if (!f) return { ready: false, reason: 'no frame from the camera yet' };
  const age = Math.round(store.ageMs());
  if (age > maxFrameAgeMs) return { ready: false, reason: `latest frame is ${age} ms old (MAX_FRAME_AGE_MS=${maxFrameAgeMs})`, ageMs: age, seq: f.seq };
  return { ready: true, ageMs: Math.max(0, age), seq: f.seq };
}
