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
export type RejectReason = 'max_clients' | 'max_clients_per_ip' | 'not_allowed' | 'unauthorized' | 'rate_limited' | 'bad_forwarding' | 'push_not_allowed' | 'push_busy';
export const REJECT_REASONS: readonly RejectReason[] = ['max_clients', 'max_clients_per_ip', 'not_allowed', 'unauthorized', 'rate_limited', 'bad_forwarding', 'push_not_allowed', 'push_busy'];
export type LoginResult = 'ok' | 'bad_credentials' | 'rate_limited';
export const LOGIN_RESULTS: readonly LoginResult[] = ['ok', 'bad_credentials', 'rate_limited'];

export interface RelayMetricsOptions {
  version: string;
  mode: string;
  /** live values read at scrape time (the default camera's frame age, see `defaultCamera`) */
  frameAgeSeconds: () => number;
  clients: (p: Protocol) => number;
  withDefaults?: boolean;
  /**
   * The camera the per-camera getters on RelayMetrics itself (`metrics.frames`, ...) are bound to,
   * created on first use (single-camera code and tests). Default `default`.
   */
  defaultCamera?: string;
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
 * A histogram with two labels (`camera`, then one more such as `protocol`), kept in
 * {@link BucketCounts} and exported through prom-client's public metric contract: registered with
 * `Registry.registerMetric()`, read by the registry through `get()` (name, help, type, aggregator,
 * values with metricName/labels/value, the same shape and order prom-client's own Histogram gives)
 * and `reset()`. No prom-client internals are touched. Hot paths take a child once
 * (`child('front', 'raw')`) and call its observe().
 */
export class PlainHistogram<L extends string, V extends string> {
  readonly type = 'histogram';
  readonly aggregator: Aggregator = 'sum';
  private readonly children = new Map<string, { camera: string; value: V; counts: BucketCounts }>();

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

  /** The counts for one label set, created (at zero, so the series is exported) on first use. */
  child(camera: string, value: V): BucketCounts {
    const key = `${camera}\u0000${value}`;
    let c = this.children.get(key);
    if (!c) {
      c = { camera, value, counts: new BucketCounts(this.bounds) };
      this.children.set(key, c);
    }
    return c.counts;
  }

  observe(labels: { camera: string } & Record<L, V>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: value is not a finite number: ${value}`);
    this.child(labels.camera, labels[this.labelName]).observe(value);
  }

  /** Forgets one camera's label sets (the camera left the list). */
  removeCamera(camera: string): void {
    for (const [k, c] of this.children) if (c.camera === camera) this.children.delete(k);
  }

  /** Forgets every label set (Registry.resetMetrics()). */
  reset(): void {
    this.children.clear();
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: Aggregator; values: MetricValueWithName<string>[] }> {
    const values: MetricValueWithName<string>[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { camera, value: v, counts: c } of this.children.values()) {
      let acc = 0;
      // a loop, not forEach: a callback made per scrape loses its compiled code at every full GC
      for (let i = 0; i < c.bounds.length; i++) {
        acc += c.counts[i];
        values.push({ metricName: bucket, labels: { le: c.bounds[i], camera, [this.labelName]: v }, value: acc });
      }
      values.push(
        { metricName: bucket, labels: { le: '+Inf', camera, [this.labelName]: v }, value: c.count },
        { metricName: `${this.name}_sum`, labels: { camera, [this.labelName]: v }, value: c.sum },
        { metricName: `${this.name}_count`, labels: { camera, [this.labelName]: v }, value: c.count },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

type Values = { values: { labels: Record<string, string | number | undefined>; value: number; metricName?: string }[] };
type Extra<L extends string> = Partial<Record<L, string>>;

/** One camera's view of a labelled family: every call adds `camera="<name>"`; get() shows only its series. */
abstract class Bound<L extends string> {
  constructor(
    protected readonly family: { get(): Promise<Values> },
    readonly camera: string,
  ) {}

  protected labels(extra?: Extra<L>): Record<string, string> {
    return extra ? { camera: this.camera, ...(extra as Record<string, string>) } : { camera: this.camera };
  }

  async get(): Promise<Values> {
    const r = await this.family.get();
    return { ...r, values: r.values.filter((v) => v.labels.camera === this.camera) };
  }
}

export class BoundCounter<L extends string = never> extends Bound<L> {
  inc(labels?: Extra<L> | number, value?: number): void {
    const c = this.family as unknown as Counter<string>;
    if (typeof labels === 'number' || labels === undefined) c.inc(this.labels(), labels ?? 1);
    else c.inc(this.labels(labels), value ?? 1);
  }
}

export class BoundGauge extends Bound<never> {
  set(value: number): void {
    (this.family as unknown as Gauge<string>).set(this.labels(), value);
  }
}

export class BoundHistogram extends Bound<never> {
  observe(value: number): void {
    (this.family as unknown as Histogram<string>).observe(this.labels(), value);
  }
}

/** relay_delivery_latency_seconds for one camera: `child('raw')` for hot paths, observe({ protocol }, s) otherwise. */
export class BoundLatency {
  constructor(
    private readonly family: PlainHistogram<'protocol', Protocol>,
    readonly camera: string,
  ) {}

  child(protocol: Protocol): BucketCounts {
    return this.family.child(this.camera, protocol);
  }

  observe(labels: { protocol: Protocol }, value: number): void {
    this.family.observe({ camera: this.camera, protocol: labels.protocol }, value);
  }

  async get(): Promise<Values> {
    const r = await this.family.get();
    return { ...r, values: r.values.filter((v) => v.labels.camera === this.camera) };
  }
}

type PendingCounts = Record<'connections' | 'served' | 'bytes', Record<Protocol, number>>;
const newPending = (): PendingCounts => ({
  connections: { raw: 0, snapshot: 0, mjpeg: 0, push: 0 },
  served: { raw: 0, snapshot: 0, mjpeg: 0, push: 0 },
  bytes: { raw: 0, snapshot: 0, mjpeg: 0, push: 0 },
});

export const ARCHIVE_ERROR_REASONS = ['no_frame', 'write', 'prune', 'timeout'] as const;

/**
 * The metrics one camera's parts (source, frame store, outlets, archive) write: the per-camera
 * families bound to `camera="<name>"`, plus the relay-wide ones they also count into
 * (clientConnections, clientsRejected). Obtained from {@link RelayMetrics.camera}.
 */
export interface CameraMetrics {
  readonly cameraUp: BoundGauge;
  readonly cameraFrozen: BoundGauge;
  readonly frames: BoundCounter;
  readonly fetchErrors: BoundCounter<'reason'>;
  readonly fetchDuration: BoundHistogram;
  readonly frameBytes: BoundHistogram;
  readonly framesServed: BoundCounter<'protocol'>;
  readonly bytesSent: BoundCounter<'protocol'>;
  readonly framesDropped: BoundCounter;
  readonly deliveryLatency: BoundLatency;
  readonly staleFramesDiscarded: BoundCounter;
  readonly fetchRate: BoundGauge;
  readonly sourcePaused: BoundGauge;
  readonly archiveSnapshots: BoundCounter;
  readonly archiveErrors: BoundCounter<'reason'>;
  readonly archivePruned: BoundCounter;
  readonly archiveLastSuccess: BoundGauge;
  /** relay-wide (no camera label) */
  readonly clientConnections: Counter<'protocol'>;
  readonly clientsRejected: Counter<'reason'>;
  readonly loginAttempts: Counter<'result'>;
  /**
   * Hot-path counts (per connection / per frame) as plain numbers: relay_client_connections_total,
   * relay_frames_served_total and relay_bytes_sent_total add them in at every read, so a scrape
   * is exact while a raw connection costs no prom-client label hashing. Only ever increase these.
   */
  readonly pending: PendingCounts;
}

interface CameraEntryMetrics {
  view: CameraMetrics;
  frameAgeSeconds: () => number;
}

/**
 * The relay's registry: relay-wide families (clients, connections, rejections, build info, camera
 * count, config reloads) and the per-camera families, every one of which carries `camera="<name>"`.
 * `camera(name)` returns one camera's bound view; `removeCamera(name)` drops its series.
 * The per-camera getters on this class (`frames`, `cameraUp`, ...) are the view of `defaultCamera`.
 */
export class RelayMetrics implements CameraMetrics {
  readonly registry = new Registry();
  readonly families: {
    cameraUp: Gauge<'camera'>;
    cameraFrozen: Gauge<'camera'>;
    frames: Counter<'camera'>;
    fetchErrors: Counter<'camera' | 'reason'>;
    fetchDuration: Histogram<'camera'>;
    frameBytes: Histogram<'camera'>;
    frameAge: Gauge<'camera'>;
    framesServed: Counter<'camera' | 'protocol'>;
    bytesSent: Counter<'camera' | 'protocol'>;
    framesDropped: Counter<'camera'>;
    deliveryLatency: PlainHistogram<'protocol', Protocol>;
    staleFramesDiscarded: Counter<'camera'>;
    fetchRate: Gauge<'camera'>;
    sourcePaused: Gauge<'camera'>;
    archiveSnapshots: Counter<'camera'>;
    archiveErrors: Counter<'camera' | 'reason'>;
    archivePruned: Counter<'camera'>;
    archiveLastSuccess: Gauge<'camera'>;
  };
  readonly clients: Gauge<'protocol'>;
  readonly clientConnections: Counter<'protocol'>;
  readonly clientsRejected: Counter<'reason'>;
  readonly buildInfo: Gauge<'version' | 'node' | 'mode'>;
  /** relay_cameras: cameras configured */
  readonly camerasConfigured: Gauge;
  /** relay_config_reloads_total{result} */
  readonly configReloads: Counter<'result'>;
  /** relay_login_attempts_total{result}: sign-in form submissions */
  readonly loginAttempts: Counter<'result'>;
  private readonly cams = new Map<string, CameraEntryMetrics>();
  /** connections counted by cameras removed since the last read (still to be added in) */
  private readonly retiredConnections: Record<Protocol, number> = newPending().connections;

  constructor(private readonly opts: RelayMetricsOptions) {
    const r = this.registry;
    if (opts.withDefaults !== false) collectDefaultMetrics({ register: r, prefix: 'relay_' });
    const cams = this.cams;
    const camera = ['camera'] as const;
    const f = {
      cameraUp: new Gauge({ name: 'relay_camera_up', help: '1 when the last fetch from the camera succeeded', labelNames: camera, registers: [r] }),
      cameraFrozen: new Gauge({
        name: 'relay_camera_frozen', labelNames: camera, registers: [r],
        help: '1 while the camera repeats the very same frame for longer than CAMERA_FROZEN_AFTER_MS (it locked up; it still counts as up), else 0; always 0 with the check off',
      }),
      frames: new Counter({ name: 'relay_frames_total', help: 'Whole JPEG frames received from the camera and published', labelNames: camera, registers: [r] }),
      fetchErrors: new Counter({ name: 'relay_fetch_errors_total', help: 'Failed fetches from the camera by reason', labelNames: ['camera', 'reason'] as const, registers: [r] }),
      fetchDuration: new Histogram({
        name: 'relay_fetch_duration_seconds', help: 'Time from connect to a whole frame received', labelNames: camera,
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [r],
      }),
      frameBytes: new Histogram({
        name: 'relay_frame_bytes', help: 'Size of published frames', labelNames: camera,
        buckets: [8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304], registers: [r],
      }),
      frameAge: new Gauge({
        name: 'relay_frame_age_seconds', help: 'Age of the latest frame (+Inf when there is none)', labelNames: camera, registers: [r],
        collect() { for (const [name, c] of cams) this.set({ camera: name }, c.frameAgeSeconds()); },
      }),
      framesServed: new Counter({
        name: 'relay_frames_served_total', help: 'Frames written to clients by protocol', labelNames: ['camera', 'protocol'] as const, registers: [r],
        collect() { for (const [name, c] of cams) flush(this, c.view.pending.served, name); },
      }),
      bytesSent: new Counter({
        name: 'relay_bytes_sent_total', help: 'Bytes written to clients by protocol', labelNames: ['camera', 'protocol'] as const, registers: [r],
        collect() { for (const [name, c] of cams) flush(this, c.view.pending.bytes, name); },
      }),
      framesDropped: new Counter({ name: 'relay_frames_dropped_total', help: 'Frames MJPEG viewers did not get: replaced while the viewer was still writing an older one, or overtaken by a newer frame before the fan-out reached the viewer', labelNames: camera, registers: [r] }),
      deliveryLatency: new PlainHistogram<'protocol', Protocol>(
        'relay_delivery_latency_seconds', 'Time from frame published to fully written to a client socket', 'protocol', LATENCY_BUCKETS, r,
      ),
      staleFramesDiscarded: new Counter({ name: 'relay_stale_frames_discarded_total', help: 'First frames after an idle gap, discarded because the camera may have buffered them', labelNames: camera, registers: [r] }),
      fetchRate: new Gauge({ name: 'relay_target_fps', help: 'Fetch rate the source currently aims for (MAX_FPS while watched, IDLE_FPS otherwise); 0 = unlimited, or paused when relay_source_paused is 1', labelNames: camera, registers: [r] }),
      sourcePaused: new Gauge({
        name: 'relay_source_paused',
        help: '1 while a pull relay fetches nothing on purpose (IDLE_FPS=0 and nobody wants frames), else 0 (push: always 0); tells that relay_target_fps 0 from "unlimited"',
        labelNames: camera, registers: [r],
      }),
      archiveSnapshots: new Counter({ name: 'relay_archive_snapshots_total', help: 'Snapshots written to SNAPSHOT_DIR', labelNames: camera, registers: [r] }),
      archiveErrors: new Counter({ name: 'relay_archive_errors_total', help: 'Snapshot failures by reason', labelNames: ['camera', 'reason'] as const, registers: [r] }),
      archivePruned: new Counter({ name: 'relay_archive_pruned_total', help: 'Snapshots deleted by retention', labelNames: camera, registers: [r] }),
      archiveLastSuccess: new Gauge({ name: 'relay_archive_last_success_timestamp_seconds', help: 'Unix time of the last snapshot written', labelNames: camera, registers: [r] }),
    };
    this.families = f;
    // collect() runs on every read (scrape, get()): counts kept as plain numbers are added then, exactly
    function flush(c: Counter<string>, byProtocol: Record<Protocol, number>, name?: string): void {
      for (const protocol of Object.keys(byProtocol) as Protocol[]) {
        const n = byProtocol[protocol];
        if (n > 0) {
          byProtocol[protocol] = 0;
          c.inc(name === undefined ? { protocol } : { camera: name, protocol }, n);
        }
      }
    }
    this.clients = new Gauge({
      name: 'relay_clients', help: 'Connected clients by protocol', labelNames: ['protocol'], registers: [r],
      collect() { for (const p of PROTOCOLS) this.set({ protocol: p }, opts.clients(p)); },
    });
    const retired = this.retiredConnections;
    this.clientConnections = new Counter({
      name: 'relay_client_connections_total', help: 'Accepted client connections by protocol', labelNames: ['protocol'], registers: [r],
      collect() {
        flush(this, retired);
        for (const c of cams.values()) flush(this, c.view.pending.connections);
      },
    });
    for (const protocol of PROTOCOLS) this.clientConnections.inc({ protocol }, 0);
    this.clientsRejected = new Counter({ name: 'relay_clients_rejected_total', help: 'Client connections refused by reason', labelNames: ['reason'], registers: [r] });
    for (const reason of REJECT_REASONS) this.clientsRejected.inc({ reason }, 0);
    this.buildInfo = new Gauge({ name: 'relay_build_info', help: 'Always 1; labels say what runs', labelNames: ['version', 'node', 'mode'], registers: [r] });
    this.buildInfo.set({ version: opts.version, node: process.version, mode: opts.mode }, 1);
    this.camerasConfigured = new Gauge({ name: 'relay_cameras', help: 'Cameras configured (CAMERAS_FILE entries, or 1 without it)', registers: [r] });
    this.configReloads = new Counter({ name: 'relay_config_reloads_total', help: 'CAMERAS_FILE reloads (SIGHUP) by result; on error the running cameras are kept', labelNames: ['result'], registers: [r] });
    for (const result of ['ok', 'error']) this.configReloads.inc({ result }, 0);
    this.loginAttempts = new Counter({
      name: 'relay_login_attempts_total', help: 'Sign-in form submissions by result (rate_limited: the address had too many failed credential checks; its credentials were not checked)',
      labelNames: ['result'], registers: [r],
    });
    for (const result of LOGIN_RESULTS) this.loginAttempts.inc({ result }, 0);
  }

  /**
   * One camera's bound view, created with its series at zero on first use (so they are exported
   * before anything happens). `frameAgeSeconds` feeds relay_frame_age_seconds{camera}.
   */
  camera(name: string, frameAgeSeconds?: () => number): CameraMetrics {
    const have = this.cams.get(name);
    if (have) {
      if (frameAgeSeconds) have.frameAgeSeconds = frameAgeSeconds;
      return have.view;
    }
    const f = this.families;
    const view: CameraMetrics = {
      cameraUp: new BoundGauge(f.cameraUp, name),
      cameraFrozen: new BoundGauge(f.cameraFrozen, name),
      frames: new BoundCounter(f.frames, name),
      fetchErrors: new BoundCounter<'reason'>(f.fetchErrors, name),
      fetchDuration: new BoundHistogram(f.fetchDuration, name),
      frameBytes: new BoundHistogram(f.frameBytes, name),
      framesServed: new BoundCounter<'protocol'>(f.framesServed, name),
      bytesSent: new BoundCounter<'protocol'>(f.bytesSent, name),
      framesDropped: new BoundCounter(f.framesDropped, name),
      deliveryLatency: new BoundLatency(f.deliveryLatency, name),
      staleFramesDiscarded: new BoundCounter(f.staleFramesDiscarded, name),
      fetchRate: new BoundGauge(f.fetchRate, name),
      sourcePaused: new BoundGauge(f.sourcePaused, name),
      archiveSnapshots: new BoundCounter(f.archiveSnapshots, name),
      archiveErrors: new BoundCounter<'reason'>(f.archiveErrors, name),
      archivePruned: new BoundCounter(f.archivePruned, name),
      archiveLastSuccess: new BoundGauge(f.archiveLastSuccess, name),
      clientConnections: this.clientConnections,
      clientsRejected: this.clientsRejected,
      loginAttempts: this.loginAttempts,
      pending: newPending(),
    };
    const entry = { view, frameAgeSeconds: frameAgeSeconds ?? (() => Infinity) };
    this.cams.set(name, entry);
    view.cameraUp.set(0);
    view.cameraFrozen.set(0);
    view.frames.inc(0);
    for (const reason of FETCH_ERROR_REASONS) view.fetchErrors.inc({ reason }, 0);
    f.fetchDuration.zero({ camera: name });
    f.frameBytes.zero({ camera: name });
    for (const protocol of PROTOCOLS) {
      view.framesServed.inc({ protocol }, 0);
      view.bytesSent.inc({ protocol }, 0);
    }
    view.framesDropped.inc(0);
    view.staleFramesDiscarded.inc(0);
    view.fetchRate.set(0);
    view.sourcePaused.set(0);
    view.archiveSnapshots.inc(0);
    for (const reason of ARCHIVE_ERROR_REASONS) view.archiveErrors.inc({ reason }, 0);
    view.archivePruned.inc(0);
    return view;
  }

  /** Cameras with series, in creation order. */
  cameraNames(): string[] {
    return [...this.cams.keys()];
  }

  /** Drops every series of a camera that left the list (its connection counts stay in the relay-wide total). */
  removeCamera(name: string): void {
    const c = this.cams.get(name);
    if (!c) return;
    for (const [p, n] of Object.entries(c.view.pending.connections)) this.retiredConnections[p as Protocol] += n;
    this.cams.delete(name);
    const f = this.families;
    const camera = { camera: name };
    for (const g of [f.cameraUp, f.cameraFrozen, f.frames, f.fetchDuration, f.frameBytes, f.frameAge, f.framesDropped, f.staleFramesDiscarded,
      f.fetchRate, f.sourcePaused, f.archiveSnapshots, f.archivePruned, f.archiveLastSuccess]) (g as Counter<'camera'>).remove(camera);
    for (const reason of FETCH_ERROR_REASONS) f.fetchErrors.remove({ camera: name, reason });
    for (const reason of ARCHIVE_ERROR_REASONS) f.archiveErrors.remove({ camera: name, reason });
    for (const protocol of Object.keys(c.view.pending.served)) {
      f.framesServed.remove({ camera: name, protocol });
      f.bytesSent.remove({ camera: name, protocol });
    }
    f.deliveryLatency.removeCamera(name);
  }

  private get def(): CameraMetrics {
    const name = this.opts.defaultCamera ?? 'default';
    return this.cams.get(name)?.view ?? this.camera(name, this.opts.frameAgeSeconds);
  }

  // The default camera's view (single-camera code paths and tests).
  get cameraUp(): BoundGauge { return this.def.cameraUp; }
  get cameraFrozen(): BoundGauge { return this.def.cameraFrozen; }
  get frames(): BoundCounter { return this.def.frames; }
  get fetchErrors(): BoundCounter<'reason'> { return this.def.fetchErrors; }
  get fetchDuration(): BoundHistogram { return this.def.fetchDuration; }
  get frameBytes(): BoundHistogram { return this.def.frameBytes; }
  get framesServed(): BoundCounter<'protocol'> { return this.def.framesServed; }
  get bytesSent(): BoundCounter<'protocol'> { return this.def.bytesSent; }
  get framesDropped(): BoundCounter { return this.def.framesDropped; }
  get deliveryLatency(): BoundLatency { return this.def.deliveryLatency; }
  get staleFramesDiscarded(): BoundCounter { return this.def.staleFramesDiscarded; }
  get fetchRate(): BoundGauge { return this.def.fetchRate; }
  get sourcePaused(): BoundGauge { return this.def.sourcePaused; }
  get archiveSnapshots(): BoundCounter { return this.def.archiveSnapshots; }
  get archiveErrors(): BoundCounter<'reason'> { return this.def.archiveErrors; }
  get archivePruned(): BoundCounter { return this.def.archivePruned; }
  get archiveLastSuccess(): BoundGauge { return this.def.archiveLastSuccess; }
  get pending(): PendingCounts { return this.def.pending; }
}
