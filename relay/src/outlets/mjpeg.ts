/**
 * MJPEG streaming (/stream.mjpg): multipart/x-mixed-replace, one part per frame.
 *
 * Each viewer always gets the LATEST frame. A viewer whose previous frame is still being written
 * (its write callback has not fired) does not get the new frame queued: the frame is remembered
 * as "pending" and replaced by any newer one (each replaced frame counts in
 * relay_frames_dropped_total); when the write completes, the newest pending frame is sent. So a
 * slow viewer holds at most one frame (shared Buffer, never copied) plus a part header in memory
 * and never delays anyone else. A viewer whose write does not complete within
 * CLIENT_WRITE_TIMEOUT_MS (it stopped reading) is destroyed by a single sweeper timer.
 *
 * Wire format (the boundary is sent right AFTER each frame so that browsers, which display a part
 * when they see the next boundary, show every frame at once instead of one frame late):
 *
 *   --camrelay\r\n                                         (once, at stream start)
 *   Content-Type: image/jpeg\r\nContent-Length: N\r\nX-Frame-Seq: S\r\n\r\n<N bytes>\r\n--camrelay\r\n
 *   ...                                                    (per frame)
 *
 * Hot path per frame: one part header Buffer shared by all viewers, and per viewer one corked
 * write of [header, frame, trailer] with a per-viewer callback created once.
 */
import type { ServerResponse } from 'node:http';
import type { Frame, FrameStore } from '../frame-store';
import type { RelayMetrics } from '../metrics';
import type { ClientLimiter } from './limits';

export const BOUNDARY = 'camrelay';
export const MJPEG_CONTENT_TYPE = `multipart/x-mixed-replace; boundary=${BOUNDARY}`;
/** Written once when a stream starts. */
export const STREAM_PREAMBLE = Buffer.from(`--${BOUNDARY}\r\n`, 'latin1');
/** Written after every frame: ends the part and opens the next one. */
export const PART_TRAILER = Buffer.from(`\r\n--${BOUNDARY}\r\n`, 'latin1');

/** The headers of one part (shared by every viewer of that frame). */
export function partHeader(frame: Pick<Frame, 'data' | 'seq' | 'capturedAt'>): Buffer {
  return Buffer.from(
    `Content-Type: image/jpeg\r\nContent-Length: ${frame.data.length}\r\nX-Frame-Seq: ${frame.seq}\r\n` +
      `X-Timestamp: ${(frame.capturedAt / 1000).toFixed(3)}\r\n\r\n`,
    'latin1',
  );
}

/** Bytes one frame costs on the wire (header + data + trailer), excluding HTTP chunk framing. */
export function partBytes(header: Buffer, frame: Frame): number {
  return header.length + frame.data.length + PART_TRAILER.length;
}

export interface MjpegOptions {
  /** CLIENT_WRITE_TIMEOUT_MS */
  writeTimeoutMs: number;
  /** MAX_FRAME_AGE_MS: the latest frame is sent at once to a new viewer when at most this old */
  maxFrameAgeMs: number;
}

export interface MjpegDeps {
  store: FrameStore;
  metrics: RelayMetrics;
  limiter: ClientLimiter;
}

class Viewer {
  /** frame whose write has not completed */
  inflight: Frame | undefined;
  inflightBytes = 0;
  /** performance.now() when the in-flight write began */
  writeStartedAt = 0;
  /** newest frame that arrived while busy */
  pending: Frame | undefined;
  /** end() was called (shutdown): no more writes */
  ending = false;
  closed = false;
  readonly onWritten: (err?: Error | null) => void;

  constructor(
    readonly res: ServerResponse,
    readonly release: () => void,
    onWritten: (v: Viewer, err?: Error | null) => void,
  ) {
    this.onWritten = (err) => onWritten(this, err);
  }
}

export class MjpegStreamer {
  private readonly viewers = new Set<Viewer>();
  private sweeper: NodeJS.Timeout | undefined;
  private headerFor: Frame | undefined;
  private header: Buffer = Buffer.alloc(0);
  private readonly onFrame = (f: Frame) => this.broadcast(f);
  private listening = false;

  constructor(
    private readonly opts: MjpegOptions,
    private readonly deps: MjpegDeps,
  ) {}

  /** Live viewers. */
  get size(): number {
    return this.viewers.size;
  }

  /** Bytes each viewer's socket still has queued in user space (tests: bounded by ~one frame). */
  backlogs(): number[] {
    return [...this.viewers].map((v) => v.res.socket?.writableLength ?? 0);
  }

  /** Takes over a response (already authorised and admitted) and streams until either side ends. */
  add(res: ServerResponse): void {
    const { store, metrics, limiter } = this.deps;
    const unwatch = store.watch();
    const untrack = limiter.track('mjpeg');
    const viewer = new Viewer(res, () => {
      unwatch();
      untrack();
    }, (v, err) => this.written(v, err));
    this.viewers.add(viewer);
    metrics.clientConnections.inc({ protocol: 'mjpeg' });
    this.ensureRunning();

    res.on('close', () => this.remove(viewer));
    res.on('error', () => this.remove(viewer));
    res.socket?.setNoDelay(true);
    res.writeHead(200, {
      'Content-Type': MJPEG_CONTENT_TYPE,
      'Cache-Control': 'no-store, no-cache, must-revalidate, max-age=0',
      Pragma: 'no-cache',
      Expires: '0',
      'X-Accel-Buffering': 'no',
      'X-Content-Type-Options': 'nosniff',
      Connection: 'close',
    });
    res.write(STREAM_PREAMBLE);
    const fresh = store.fresh(this.opts.maxFrameAgeMs);
    if (fresh) this.offer(viewer, fresh);
  }

  private ensureRunning(): void {
    if (!this.listening) {
      this.deps.store.on('frame', this.onFrame);
      this.listening = true;
    }
    if (!this.sweeper) {
      const every = Math.max(10, Math.min(1000, Math.floor(this.opts.writeTimeoutMs / 4)));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  private idle(): void {
    if (this.viewers.size > 0) return;
    if (this.listening) {
      this.deps.store.off('frame', this.onFrame);
      this.listening = false;
    }
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private broadcast(frame: Frame): void {
    for (const v of this.viewers) this.offer(v, frame);
  }

  private offer(v: Viewer, frame: Frame): void {
    if (v.closed || v.ending) return;
    if (v.inflight || v.res.writableNeedDrain) {
      if (v.pending) this.deps.metrics.framesDropped.inc();
      v.pending = frame;
      return;
    }
    this.send(v, frame);
  }

  private sharedHeader(frame: Frame): Buffer {
    if (this.headerFor !== frame) {
      this.header = partHeader(frame);
      this.headerFor = frame;
    }
    return this.header;
  }

  private send(v: Viewer, frame: Frame): void {
    const header = this.sharedHeader(frame);
    v.inflight = frame;
    v.inflightBytes = partBytes(header, frame);
    v.writeStartedAt = performance.now();
    const res = v.res;
    res.cork();
    res.write(header);
    res.write(frame.data);
    res.write(PART_TRAILER, v.onWritten);
    res.uncork();
  }

  private written(v: Viewer, err?: Error | null): void {
    const frame = v.inflight;
    v.inflight = undefined;
    // Node also calls back (without an error) when the socket was destroyed mid-write.
    if (err || v.closed || !frame || v.res.destroyed) return;
    const { metrics } = this.deps;
    metrics.framesServed.inc({ protocol: 'mjpeg' });
    metrics.bytesSent.inc({ protocol: 'mjpeg' }, v.inflightBytes);
    metrics.deliveryLatency.observe({ protocol: 'mjpeg' }, (performance.now() - frame.publishedMono) / 1000);
    const next = v.pending;
    v.pending = undefined;
    if (next && next.seq > frame.seq && !v.ending) this.send(v, next);
  }

  private sweep(): void {
    const limit = performance.now() - this.opts.writeTimeoutMs;
    for (const v of this.viewers) {
      if (v.inflight && v.writeStartedAt < limit) {
        // stopped reading: cut it (its pending frame is not counted as dropped)
        v.res.destroy();
        this.remove(v);
      }
    }
  }

  private remove(v: Viewer): void {
    if (v.closed) return;
    v.closed = true;
    v.pending = undefined;
    this.viewers.delete(v);
    v.release();
    this.idle();
  }

  /** Ends every stream (shutdown). Viewers still writing get `graceMs`, then are destroyed. */
  async endAll(graceMs: number): Promise<void> {
    const open = [...this.viewers];
    for (const v of open) {
      v.ending = true;
      v.pending = undefined;
      v.res.end();
    }
    if (open.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(open.map((v) => (v.closed ? undefined : new Promise<void>((r) => v.res.once('close', () => r()))))),
      new Promise<void>((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const v of open) {
      if (!v.closed) {
        v.res.destroy();
        this.remove(v);
      }
    }
  }
}
