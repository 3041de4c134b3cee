/**
 * Every relay metric, on the relay's own Registry (never the global one, so tests can make a fresh
 * one each). Labels come from small fixed sets only; never a client address.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Aggregator, Metric, MetricValueWithName } from 'prom-client';

export type Protocol = 'raw' | 'snapshot' | 'mjpeg' | 'push';
export const PROTOCOLS: readonly Protocol[] = ['raw', 'snapshot', 'mjpeg'];
export type FetchErrorReason =
  | 'refused' | 'connect_timeout' | 'idle_timeout' | 'deadline' | 'reset' | 'empty' | 'not_jpeg' | 'truncated' | 'too_large' | 'other';
export const FETCH_ERROR_REASONS: readonly FetchErrorReason[] = [
  'refused', 'connect_timeout', 'idle_timeout', 'deadline', 'reset', 'empty', 'not_jpeg', 'truncated', 'too_large', 'other',
];
export type RejectReason = 'max_clients' | 'max_clients_per_ip' | 'not_allowed' | 'unauthorized' | 'push_not_allowed' | 'push_busy';
export const REJECT_REASONS: readonly RejectReason[] = ['max_clients', 'max_clients_per_ip', 'not_allowed', 'unauthorized', 'push_not_allowed', 'push_busy'];

export interface RelayMetricsOptions {
  version: string;
  mode: string;
  /** live values read at scrape time */
  frameAgeSeconds: () => number;
  clients: (p: Protocol) => number;
  withDefaults?: boolean;
}

const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * One label set's histogram state as plain numbers (per-bucket counts, sum, count), cheap enough
 * for a hot path: prom-client's observe() hashes the labels and turns the bucket bound into a
 * string key on every call. Never reset; a read does not change it.
 */
export class BucketCounts {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  /** Same bucket rule as prom-client: the first bound with value <= bound (none: only +Inf). */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    if (i < b.length) this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A histogram with ONE label, kept in {@link BucketCounts} and exported through prom-client's
 * public metric contract: registered with `Registry.registerMetric()`, read by the registry through
 * `get()` (name, help, type, aggregator, values with metricName/labels/value, the same shape and
 * order prom-client's own Histogram gives) and `reset()`. No prom-client internals are touched.
 * Hot paths take a child once (`child('raw')`) and call its observe(); others call
 * `observe({ protocol }, v)` as on a prom-client Histogram.
 */
export class PlainHistogram<L extends string, V extends string> {
  readonly type = 'histogram';
  readonly aggregator: Aggregator = 'sum';
  private readonly children = new Map<V, BucketCounts>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: L,
    readonly bounds: readonly number[],
    registry: Registry,
  ) {
    // registerMetric() is typed for prom-client's own classes; the registry only uses the metric
    // contract implemented here (name, get(), reset())
    registry.registerMetric(this as unknown as Metric);
  }

  /** The counts for one label value, created (at zero, so the series is exported) on first use. */
  child(value: V): BucketCounts {
    let c = this.children.get(value);
    if (!c) {
      c = new BucketCounts(this.bounds);
      this.children.set(value, c);
    }
    return c;
  }

  observe(labels: Record<L, V>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: value is not a finite number: ${value}`);
    this.child(labels[this.labelName]).observe(value);
  }

  /** Forgets every label set (Registry.resetMetrics()). */
  reset(): void {
    this.children.clear();
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: Aggregator; values: MetricValueWithName<string>[] }> {
    const values: MetricValueWithName<string>[] = [];
    const bucket = `${this.name}_bucket`;
    for (const [v, c] of this.children) {
      let acc = 0;
      c.bounds.forEach((le, i) => {
        acc += c.counts[i];
        values.push({ metricName: bucket, labels: { le, [this.labelName]: v }, value: acc });
      });
      values.push(
        { metricName: bucket, labels: { le: '+Inf', [this.labelName]: v }, value: c.count },
        { metricName: `${this.name}_sum`, labels: { [this.labelName]: v }, value: c.sum },
        { metricName: `${this.name}_count`, labels: { [this.labelName]: v }, value: c.count },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly cameraUp: Gauge;
  readonly frames: Counter;
  readonly fetchErrors: Counter<'reason'>;
  readonly fetchDuration: Histogram;
  readonly frameBytes: Histogram;
  readonly frameAge: Gauge;
  readonly clients: Gauge<'protocol'>;
  readonly clientConnections: Counter<'protocol'>;
  readonly framesServed: Counter<'protocol'>;
  readonly bytesSent: Counter<'protocol'>;
  readonly framesDropped: Counter;
  readonly clientsRejected: Counter<'reason'>;
  /** relay_delivery_latency_seconds by protocol (hot paths: `deliveryLatency.child('raw').observe(s)`) */
  readonly deliveryLatency: PlainHistogram<'protocol', Protocol>;
  readonly staleFramesDiscarded: Counter;
  readonly fetchRate: Gauge;
  readonly sourcePaused: Gauge;
  readonly archiveSnapshots: Counter;
  readonly archiveErrors: Counter<'reason'>;
  readonly archivePruned: Counter;
  readonly archiveLastSuccess: Gauge;
  readonly buildInfo: Gauge<'version' | 'node' | 'mode'>;
  /**
   * Hot-path counts (per connection / per frame) as plain numbers: relay_client_connections_total,
   * relay_frames_served_total and relay_bytes_sent_total add them in at every read, so a scrape
   * is exact while a raw connection costs no prom-client label hashing. Only ever increase these.
   */
  readonly pending: Record<'connections' | 'served' | 'bytes', Record<Protocol, number>> = {
    connections: { raw: 0, snapshot: 0, mjpeg: 0, push: 0 },
    served: { raw: 0, snapshot: 0, mjpeg: 0, push: 0 },
    bytes: { raw: 0, snapshot: 0, mjpeg: 0, push: 0 },
  };

  constructor(opts: RelayMetricsOptions) {
    const r = this.registry;
    if (opts.withDefaults !== false) collectDefaultMetrics({ register: r, prefix: 'relay_' });
    this.cameraUp = new Gauge({ name: 'relay_camera_up', help: '1 when the last fetch from the camera succeeded', registers: [r] });
    this.frames = new Counter({ name: 'relay_frames_total', help: 'Whole JPEG frames received from the camera and published', registers: [r] });
    this.fetchErrors = new Counter({ name: 'relay_fetch_errors_total', help: 'Failed fetches from the camera by reason', labelNames: ['reason'], registers: [r] });
    for (const reason of FETCH_ERROR_REASONS) this.fetchErrors.inc({ reason }, 0);
    this.fetchDuration = new Histogram({
      name: 'relay_fetch_duration_seconds', help: 'Time from connect to a whole frame received',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [r],
    });
    this.frameBytes = new Histogram({
      name: 'relay_frame_bytes', help: 'Size of published frames',
      buckets: [8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304], registers: [r],
    });
    this.frameAge = new Gauge({
      name: 'relay_frame_age_seconds', help: 'Age of the latest frame (+Inf when there is none)', registers: [r],
      collect() { this.set(opts.frameAgeSeconds()); },
    });
    this.clients = new Gauge({
      name: 'relay_clients', help: 'Connected clients by protocol', labelNames: ['protocol'], registers: [r],
      collect() { for (const p of PROTOCOLS) this.set({ protocol: p }, opts.clients(p)); },
    });
    const pending = this.pending;
    // collect() runs on every read (scrape, get()): counts kept as plain numbers are added then, exactly
    const flush = (c: Counter<'protocol'>, byProtocol: Record<Protocol, number>) => {
      for (const protocol of Object.keys(byProtocol) as Protocol[]) {
        const n = byProtocol[protocol];
        if (n > 0) {
          byProtocol[protocol] = 0;
          c.inc({ protocol }, n);
        }
      }
    };
    this.clientConnections = new Counter({
      name: 'relay_client_connections_total', help: 'Accepted client connections by protocol', labelNames: ['protocol'], registers: [r],
      collect() { flush(this, pending.connections); },
    });
    this.framesServed = new Counter({
      name: 'relay_frames_served_total', help: 'Frames written to clients by protocol', labelNames: ['protocol'], registers: [r],
      collect() { flush(this, pending.served); },
    });
    this.bytesSent = new Counter({
      name: 'relay_bytes_sent_total', help: 'Bytes written to clients by protocol', labelNames: ['protocol'], registers: [r],
      collect() { flush(this, pending.bytes); },
    });
    for (const protocol of PROTOCOLS) {
      this.clientConnections.inc({ protocol }, 0);
      this.framesServed.inc({ protocol }, 0);
      this.bytesSent.inc({ protocol }, 0);
    }
    this.framesDropped = new Counter({ name: 'relay_frames_dropped_total', help: 'Frames MJPEG viewers did not get: replaced while the viewer was still writing an older one, or overtaken by a newer frame before the fan-out reached the viewer', registers: [r] });
    this.clientsRejected = new Counter({ name: 'relay_clients_rejected_total', help: 'Client connections refused by reason', labelNames: ['reason'], registers: [r] });
    for (const reason of REJECT_REASONS) this.clientsRejected.inc({ reason }, 0);
    this.deliveryLatency = new PlainHistogram(
      'relay_delivery_latency_seconds', 'Time from frame published to fully written to a client socket', 'protocol', LATENCY_BUCKETS, r,
    );
    this.staleFramesDiscarded = new Counter({ name: 'relay_stale_frames_discarded_total', help: 'First frames after an idle gap, discarded because the camera may have buffered them', registers: [r] });
    this.fetchRate = new Gauge({ name: 'relay_target_fps', help: 'Fetch rate the source currently aims for (MAX_FPS while watched, IDLE_FPS otherwise); 0 = unlimited, or paused when relay_source_paused is 1', registers: [r] });
    this.sourcePaused = new Gauge({
      name: 'relay_source_paused',
      help: '1 while a pull relay fetches nothing on purpose (IDLE_FPS=0 and nobody wants frames), else 0 (push: always 0); tells that relay_target_fps 0 from "unlimited"',
      registers: [r],
    });
    this.sourcePaused.set(0);
    this.archiveSnapshots = new Counter({ name: 'relay_archive_snapshots_total', help: 'Snapshots written to SNAPSHOT_DIR', registers: [r] });
    this.archiveErrors = new Counter({ name: 'relay_archive_errors_total', help: 'Snapshot failures by reason', labelNames: ['reason'], registers: [r] });
    for (const reason of ['no_frame', 'write', 'prune', 'timeout']) this.archiveErrors.inc({ reason }, 0);
    this.archivePruned = new Counter({ name: 'relay_archive_pruned_total', help: 'Snapshots deleted by retention', registers: [r] });
    this.archiveLastSuccess = new Gauge({ name: 'relay_archive_last_success_timestamp_seconds', help: 'Unix time of the last snapshot written', registers: [r] });
    this.buildInfo = new Gauge({ name: 'relay_build_info', help: 'Always 1; labels say what runs', labelNames: ['version', 'node', 'mode'], registers: [r] });
    this.buildInfo.set({ version: opts.version, node: process.version, mode: opts.mode }, 1);
  }
}
