/**
 * /snapshot.jpg: one whole JPEG per request. The latest frame when it is at most MAX_FRAME_AGE_MS
 * old, else the next one (waiting at most CLIENT_WAIT_TIMEOUT_MS, then 503).
 *
 * Caching: `Cache-Control: no-store` (it is live) but with validators so pollers can ask cheaply:
 * ETag `"<boot id>-<seq>"` (the boot id keeps ETags from two relay runs apart, since seq restarts
 * at 1), Last-Modified = capture time, `X-Frame-Age-Ms`, and 304 when If-None-Match matches.
 * With a `maxAgeS` (SNAPSHOT_CACHE_S; the outlet passes it only for a camera anyone may see) the 200
 * and 304 say `Cache-Control: public, max-age=N` instead, so a shared cache in front answers the
 * pollers and the relay sees about one request per N seconds. A 503 is never cacheable.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Frame, FrameStore } from '../frame-store';
import type { CameraMetrics } from '../metrics';
import type { ClientLimiter } from './limits';

/** A short random id for this process, part of every ETag. */
export function newBootId(): string {
  return randomBytes(4).toString('hex');
}

export function etagFor(bootId: string, seq: number): string {
  return `"${bootId}-${seq}"`;
}

/** True when an If-None-Match header value matches the ETag (weak comparison, lists, `*`). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  for (const raw of ifNoneMatch.split(',')) {
    const t = raw.trim();
    if (t === '*') return true;
    if ((t.startsWith('W/') ? t.slice(2) : t) === etag) return true;
  }
  return false;
}

export interface SnapshotOptions {
  /** MAX_FRAME_AGE_MS */
  maxFrameAgeMs: number;
  /** CLIENT_WAIT_TIMEOUT_MS */
  waitTimeoutMs: number;
  /** CLIENT_WRITE_TIMEOUT_MS */
  writeTimeoutMs: number;
}

export interface SnapshotDeps {
  store: FrameStore;
  metrics: CameraMetrics;
  limiter: ClientLimiter;
}

export class SnapshotHandler {
  constructor(
    private readonly opts: SnapshotOptions,
    private readonly deps: SnapshotDeps,
    private readonly bootId: string,
  ) {}

  /** Serves one GET/HEAD /snapshot.jpg. `stop` aborts a wait at shutdown; `maxAgeS` > 0 makes it cacheable. */
  async handle(req: IncomingMessage, res: ServerResponse, stop: AbortSignal, maxAgeS = 0): Promise<void> {
    const { store, metrics, limiter } = this.deps;
    const untrack = limiter.track('snapshot');
    metrics.clientConnections.inc({ protocol: 'snapshot' });
    const gone = new AbortController();
    const onStop = () => gone.abort();
    stop.addEventListener('abort', onStop, { once: true });
    res.once('close', () => {
      gone.abort();
      untrack();
    });
    let frame: Frame | undefined;
    try {
      frame = store.fresh(this.opts.maxFrameAgeMs);
      if (frame) store.nudge(); // pollers get newer frames (see FrameStore.nudge)
      else frame = await store.next(store.latest?.seq ?? 0, this.opts.waitTimeoutMs, gone.signal);
    } finally {
      stop.removeEventListener('abort', onStop);
    }
    if (res.destroyed || res.writableEnded) return;
    if (!frame) {
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', 'Retry-After': '1' });
      res.end(req.method === 'HEAD' ? undefined : `no frame from the camera within ${this.opts.waitTimeoutMs} ms\n`);
      return;
    }
    const etag = etagFor(this.bootId, frame.seq);
    const headers = {
      'Cache-Control': maxAgeS > 0 ? `public, max-age=${maxAgeS}` : 'no-store',
      ETag: etag,
      'Last-Modified': new Date(frame.capturedAt).toUTCString(),
      'X-Frame-Age-Ms': String(Math.max(0, Date.now() - frame.capturedAt)),
      'X-Frame-Seq': String(frame.seq),
    };
    if (etagMatches(req.headers['if-none-match'], etag)) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': 'image/jpeg', 'Content-Length': String(frame.data.length) });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const timer = setTimeout(() => res.destroy(), this.opts.writeTimeoutMs);
    const sent = frame;
    res.end(sent.data, () => {
      clearTimeout(timer);
      metrics.framesServed.inc({ protocol: 'snapshot' });
      metrics.bytesSent.inc({ protocol: 'snapshot' }, sent.data.length);
      metrics.deliveryLatency.observe({ protocol: 'snapshot' }, (performance.now() - sent.publishedMono) / 1000);
    });
    res.once('close', () => clearTimeout(timer));
  }
}
