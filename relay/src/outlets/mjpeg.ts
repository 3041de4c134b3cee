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
 * write of [header, frame, trailer] with a per-viewer callback created once; counts in plain
 * numbers (RelayMetrics.pending, the latency child), no prom-client label hashing per viewer.
 *
 * Fan-out in slices: a frame is offered to at most `sliceSize` viewers at a time, then the rest
 * wait for setImmediate, so timers (the source's pacing), camera socket I/O and other cameras run
 * between slices: the next fetch starts while a big fan-out is still under way. A frame published
 * while a fan-out is still running takes over the rest of it (the viewers not reached yet get the
 * newer frame, counted as a drop of the older one) and goes round every viewer again from where the
 * older one stopped, so under overload no viewer is always last.
 */
import type { ServerResponse } from 'node:http';
import type { Frame, FrameStore } from '../frame-store';
import type { BucketCounts, CameraMetrics } from '../metrics';
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
  /** viewers offered a frame before yielding to the event loop (default DEFAULT_SLICE) */
  sliceSize?: number;
}

/** ~64 viewers ≈ 1-1.5 ms of writes on a small VPS core: the longest the fan-out holds the loop. */
export const DEFAULT_SLICE = 64;

export interface MjpegDeps {
  store: FrameStore;
  metrics: CameraMetrics;
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
  /** seq of the newest frame offered (at first: of the last one before the viewer came); a gap = frames it never got */
  offeredSeq = 0;
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
  /** the viewers in fan-out order; closed ones are dropped at the next frame */
  private order: Viewer[] = [];
  private closedInOrder = 0;
  /** index in `order` the fan-out continues from */
  private cursor = 0;
  /** the fan-out under way: its frame and how many viewers it has still to offer it to */
  private round: { frame: Frame; left: number } | undefined;
  private sliceQueued = false;
  private readonly sliceSize: number;
  /** part headers of the frames still being written (one per frame, shared by every viewer) */
  private readonly headers = new WeakMap<Frame, Buffer>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly onFrame = (f: Frame) => this.broadcast(f);
  private readonly nextSlice = () => {
    this.sliceQueued = false;
    this.runSlice();
  };
  private listening = false;
  /** frames skipped, added to relay_frames_dropped_total once per slice / write */
  private drops = 0;
  /** relay_delivery_latency_seconds{protocol="mjpeg"} */
  private readonly latency: BucketCounts;

  constructor(
    private readonly opts: MjpegOptions,
    private readonly deps: MjpegDeps,
  ) {
    this.sliceSize = Math.max(1, opts.sliceSize ?? DEFAULT_SLICE);
    this.latency = deps.metrics.deliveryLatency.child('mjpeg');
  }

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
    this.order.push(viewer);
    metrics.pending.connections.mjpeg++;
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
    // frames published before the viewer came are not its drops
    viewer.offeredSeq = fresh ? fresh.seq - 1 : (store.latest?.seq ?? 0);
    if (fresh) this.offer(viewer, fresh);
    this.flushDrops();
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
    this.round = undefined;
    this.order = [];
    this.closedInOrder = 0;
    this.cursor = 0;
  }

  /** A fan-out is under way (tests). */
  get broadcasting(): boolean {
    return this.round !== undefined;
  }

  private broadcast(frame: Frame): void {
    if (this.closedInOrder > 0) {
      const at = this.order[this.cursor];
      this.order = this.order.filter((v) => !v.closed);
      this.closedInOrder = 0;
      // keep going from the same viewer (or the next open one) after compaction
      const i = at ? this.order.indexOf(at) : -1;
      this.cursor = i >= 0 ? i : this.cursor % Math.max(1, this.order.length);
    }
    // a newer frame takes over an unfinished fan-out: the viewers it has not reached get this one
    this.round = { frame, left: this.order.length };
    this.runSlice();
  }

  private runSlice(): void {
    const r = this.round;
    if (!r) return;
    const order = this.order;
    let n = Math.min(this.sliceSize, r.left);
    r.left -= n;
    while (n-- > 0 && order.length > 0) {
      if (this.cursor >= order.length) this.cursor = 0;
      this.offer(order[this.cursor++], r.frame);
    }
    if (this.cursor >= order.length) this.cursor = 0;
    this.flushDrops();
    if (r.left > 0 && order.length > 0) {
      if (!this.sliceQueued) {
        this.sliceQueued = true;
        setImmediate(this.nextSlice);
      }
    } else if (this.round === r) {
      this.round = undefined;
    }
  }

  private offer(v: Viewer, frame: Frame): void {
    if (v.closed || v.ending || frame.seq <= v.offeredSeq) return;
    // frames published since the last one offered that this viewer never saw (overtaken fan-out)
    this.drops += frame.seq - v.offeredSeq - 1;
    v.offeredSeq = frame.seq;
    if (v.inflight || v.res.writableNeedDrain) {
      if (v.pending) this.drops++;
      v.pending = frame;
      return;
    }
    this.send(v, frame);
  }

  private flushDrops(): void {
    if (this.drops > 0) {
      this.deps.metrics.framesDropped.inc(this.drops);
      this.drops = 0;
    }
  }

  private sharedHeader(frame: Frame): Buffer {
    let h = this.headers.get(frame);
    if (!h) {
      h = partHeader(frame);
      this.headers.set(frame, h);
    }
    return h;
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
    const { pending } = this.deps.metrics;
    pending.served.mjpeg++;
    pending.bytes.mjpeg += v.inflightBytes;
    this.latency.observe((performance.now() - frame.publishedMono) / 1000);
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
    this.closedInOrder++;
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
