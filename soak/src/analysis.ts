/**
 * Turns a soak's results into figures and verdicts. Pure: no I/O, no clock.
 *
 * "Flat within noise" (docs/soak.md): over the second half of the run (the first half holds the
 * warm-up and the first round of every fault, where caches, JIT and buffers settle), fit a robust line
 * (Theil-Sen: the median of the slopes between every pair of samples, which a few fault spikes do not
 * move) and measure the noise as the robust spread of the residuals (1.4826 x their median absolute
 * deviation, the standard deviation for normal noise). The drift is what the line rises over the
 * window. A series is RISING when the drift is above max(3 x noise, a floor): 2 % of its median for
 * memory, 2 for counts such as fds. Falling is not a leak. A window shorter than 10 minutes is too short
 * to tell a leak from noise: no verdict.
 *
 * A restart is not a trend: a restarted daemon starts from scratch, so a line fitted across the restart
 * measures the sawtooth, not a leak. The slopes are therefore taken only between samples of one process
 * lifetime (each lifetime keeps its own intercept), and the first RESTART_WARMUP_S after a start inside
 * the run are left out, as the first half of the run is: a fresh process pages in its code, grows its
 * heap and buffers to their working size, and that is not a leak.
 */
import { DAEMONS, DAEMON_SERVICE, Daemon, FaultRecord, JUDGED_DAEMONS, ProcessStats, Sample, SoakResults, ViewerRecord } from './results';
import { FAULT_TEXT } from './schedule';

// ------------------------------------------------------------------ robust statistics

export function median(xs: readonly number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** 1.4826 x the median absolute deviation: the standard deviation for normal noise, blind to outliers. */
export function robustSpread(xs: readonly number[]): number {
  const m = median(xs);
  return 1.4826 * median(xs.map((x) => Math.abs(x - m)));
}

export interface Point {
  /** seconds */
  t: number;
  v: number;
  /** the process lifetime the sample belongs to: slopes are taken only within one */
  life?: string;
}

/** More points than this are reduced to this many bucket medians before the O(n^2) pairwise slopes. */
const MAX_POINTS = 400;

function thin(points: Point[]): Point[] {
  if (points.length <= MAX_POINTS) return points;
  const out: Point[] = [];
  const size = points.length / MAX_POINTS;
  for (let i = 0; i < MAX_POINTS; i++) {
    const b = points.slice(Math.floor(i * size), Math.floor((i + 1) * size));
    out.push({ t: median(b.map((p) => p.t)), v: median(b.map((p) => p.v)) });
  }
  return out;
}

function lifetimes(points: readonly Point[]): Point[][] {
  const groups = new Map<string, Point[]>();
  for (const x of points) {
    const key = x.life ?? '';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(x);
  }
  return [...groups.values()];
}

/**
 * Theil-Sen line: slope = median of the pairwise slopes, intercept = median of v - slope t. Points
 * with a `life` pool the slopes of pairs within one lifetime only, and each lifetime gets its own
 * intercept (`intercepts`; `intercept` is the last lifetime's).
 */
export function theilSen(points: readonly Point[]): { slope: number; intercept: number; intercepts: Map<string, number> } {
  const finite = points.filter((x) => Number.isFinite(x.t) && Number.isFinite(x.v));
  const groups = lifetimes(finite).map((g) => (finite.length > MAX_POINTS ? thin(g).map((x) => ({ ...x, life: g[0].life })) : g));
  const slopes: number[] = [];
  for (const p of groups) {
    for (let i = 0; i < p.length; i++) {
      for (let j = i + 1; j < p.length; j++) {
        if (p[j].t !== p[i].t) slopes.push((p[j].v - p[i].v) / (p[j].t - p[i].t));
      }
    }
  }
  const intercepts = new Map<string, number>();
  if (slopes.length === 0) return { slope: NaN, intercept: NaN, intercepts };
  const slope = median(slopes);
  for (const p of groups) intercepts.set(p[0].life ?? '', median(p.map((x) => x.v - slope * x.t)));
  const last = finite[finite.length - 1];
  return { slope, intercept: intercepts.get(last.life ?? '') ?? NaN, intercepts };
}

export type TrendVerdict = 'flat' | 'falling' | 'RISING' | 'n/a';

export interface Trend {
  n: number;
  windowS: number;
  /** process lifetimes among the samples (1 = no restart inside the window) */
  lifetimes: number;
  median: number;
  first: number;
  last: number;
  max: number;
  /** units per hour */
  slopePerHour: number;
  /** robust spread of the residuals around the line */
  noise: number;
  /** slope x window: what the line rises over the judged window */
  drift: number;
  /** the largest drift still called flat */
  bound: number;
  verdict: TrendVerdict;
}

export interface TrendFloor {
  /** share of the median */
  rel: number;
  /** absolute units */
  abs: number;
}

export const MIN_TREND_WINDOW_S = 600;
export const NOISE_K = 3;

export function trend(points: readonly Point[], floor: TrendFloor, minWindowS = MIN_TREND_WINDOW_S): Trend {
  const p = points.filter((x) => Number.isFinite(x.v));
  const vs = p.map((x) => x.v);
  const windowS = p.length ? p[p.length - 1].t - p[0].t : 0;
  const { slope, intercepts } = theilSen(p);
  const noise = robustSpread(p.map((x) => x.v - ((intercepts.get(x.life ?? '') ?? NaN) + slope * x.t)));
  const med = median(vs);
  const drift = slope * windowS;
  const bound = Math.max(NOISE_K * noise, floor.rel * Math.abs(med), floor.abs);
  let verdict: TrendVerdict = 'n/a';
  if (p.length >= 10 && windowS >= minWindowS && Number.isFinite(drift)) {
    verdict = drift > bound ? 'RISING' : drift < -bound ? 'falling' : 'flat';
  }
  return {
    n: p.length,
    windowS,
    lifetimes: lifetimes(p).length,
    median: med,
    first: vs.length ? vs[0] : NaN,
    last: vs.length ? vs[vs.length - 1] : NaN,
    max: vs.length ? Math.max(...vs) : NaN,
    slopePerHour: slope * 3600,
    noise,
    drift,
    bound,
    verdict,
  };
}

/** What a trend is taken of (fullGcs is a counter: shown as a rate per life instead). */
export type TrendMetric = (typeof TREND_METRICS)[number];

export const FLOORS: Record<TrendMetric, TrendFloor> = {
  rss: { rel: 0.02, abs: 0 },
  anon: { rel: 0.02, abs: 0 },
  heap: { rel: 0.05, abs: 0 },
  fds: { rel: 0, abs: 2 },
  handles: { rel: 0, abs: 2 },
};

/** The judged window: the second half of the run. */
export function trendWindowStart(durationMs: number): number {
  return durationMs / 2;
}

/** A counter's rise per minute from its first to its last point that has a value (NaN: fewer than two). */
export function ratePerMin(points: readonly Point[]): number {
  const known = points.filter((p) => Number.isFinite(p.v));
  if (known.length < 2) return NaN;
  const first = known[0];
  const last = known[known.length - 1];
  return last.t > first.t ? ((last.v - first.v) / (last.t - first.t)) * 60 : NaN;
}

/** After a start inside the run, a process's samples this long are its warm-up: not judged. */
export const RESTART_WARMUP_S = 120;

/**
 * The daemon's samples from fromMs on, as points tagged with their process lifetime (its container's
 * start time), without the first RESTART_WARMUP_S of a lifetime that began inside the run (runStartMs:
 * the run's start, epoch ms; without it every sample is kept in one lifetime).
 */
function judgedPoints(samples: readonly Sample[], daemon: Daemon, metric: keyof ProcessStats, fromMs: number, runStartMs?: number): Point[] {
  const service = DAEMON_SERVICE[daemon];
  const points: Point[] = [];
  for (const s of samples) {
    if (s.t < fromMs) continue;
    const started = runStartMs === undefined ? undefined : s.containers[service]?.startedAt;
    if (started !== undefined) {
      const startedAt = Date.parse(started) - runStartMs!;
      if (startedAt > 0 && s.t < startedAt + RESTART_WARMUP_S * 1000) continue;
    }
    points.push({ t: s.t / 1000, v: s.daemons[daemon]?.[metric] ?? NaN, life: started });
  }
  return points;
}

/** The trend of the daemon's judged samples (judgedPoints) from fromMs on. */
export function daemonTrend(samples: readonly Sample[], daemon: Daemon, metric: TrendMetric, fromMs: number, minWindowS = MIN_TREND_WINDOW_S, runStartMs?: number): Trend {
  return trend(judgedPoints(samples, daemon, metric, fromMs, runStartMs), FLOORS[metric], minWindowS);
}

export interface LifeTrend {
  /** when the process started, ms from the run's start (negative: before the run) */
  startedAtMs: number;
  /** its first and last sample judged: from RESTART_WARMUP_S after its start (or after the run's start) */
  fromMs: number;
  toMs: number;
  anon: Trend;
  heap: Trend;
  /** full GCs per minute over the judged part of the life (NaN when the daemon does not count them) */
  fullGcsPerMin: number;
}

/**
 * Each lifetime of a daemon on its own, after its first RESTART_WARMUP_S (a process started before
 * the run counts from the run's start): what a fresh process does in the time the run gives it. For
 * the report (shown, not judged): a target judges the second half of the run instead.
 */
export function lifeTrends(samples: readonly Sample[], daemon: Daemon, runStartMs: number): LifeTrend[] {
  // The same warm-up rule as the targets, with a process started before the run counted from the
  // run's start (fromMs = RESTART_WARMUP_S) rather than from the second half.
  const fromMs = RESTART_WARMUP_S * 1000;
  const byLife = (metric: keyof ProcessStats) => {
    const lives = new Map<string, Point[]>();
    for (const p of judgedPoints(samples.filter((s) => s.daemons[daemon]), daemon, metric, fromMs, runStartMs)) {
      if (p.life === undefined) continue;
      if (!lives.has(p.life)) lives.set(p.life, []);
      lives.get(p.life)!.push(p);
    }
    return lives;
  };
  const anon = byLife('anon');
  const heap = byLife('heap');
  const gcs = byLife('fullGcs');
  const started = new Set<string>(); // every lifetime, also one with no sample after its warm-up
  for (const s of samples) {
    const life = s.containers[DAEMON_SERVICE[daemon]]?.startedAt;
    if (life !== undefined && s.daemons[daemon]) started.add(life);
  }
  return [...started].map((life) => {
    const a = anon.get(life) ?? [];
    return {
      startedAtMs: Date.parse(life) - runStartMs,
      fromMs: (a[0]?.t ?? NaN) * 1000,
      toMs: (a[a.length - 1]?.t ?? NaN) * 1000,
      anon: trend(a, FLOORS.anon, 0),
      heap: trend(heap.get(life) ?? [], FLOORS.heap, 0),
      fullGcsPerMin: ratePerMin(gcs.get(life) ?? []),
    };
  });
}

// ------------------------------------------------------------------ frames and recovery

/** Index of the first element > x in a sorted array. */
function upperBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The longest time without a new frame inside [from, to], counting from `from` and up to `to`. */
export function longestDark(arrivals: readonly number[], from: number, to: number): number {
  let prev = from;
  let worst = 0;
  for (let i = upperBound(arrivals, from); i < arrivals.length && arrivals[i] <= to; i++) {
    worst = Math.max(worst, arrivals[i] - prev);
    prev = arrivals[i];
  }
  return Math.max(worst, to - prev);
}

export interface CameraRecovery {
  camera: string;
  /** from the clear to the first new frame; undefined = none before the next fault (or the end) */
  recoveryMs?: number;
  /** the longest gap between new frames from that first frame until the next fault */
  worstGapAfterMs: number;
  /** the longest time without a new frame while the fault was held */
  darkDuringMs: number;
  met: boolean;
}

export interface FaultOutcome {
  fault: FaultRecord;
  cameras: CameraRecovery[];
  /** the slowest camera's recovery (Infinity when one did not recover) */
  worstRecoveryMs: number;
  met: boolean;
}

export function recoveries(results: Pick<SoakResults, 'faults' | 'viewers' | 'durationMs'>): FaultOutcome[] {
  return results.faults.map((f, i) => {
    const next = i + 1 < results.faults.length ? results.faults[i + 1].injectAt : results.durationMs;
    const cameras = results.viewers.map((v) => cameraRecovery(v, f, next));
    const worstRecoveryMs = Math.max(...cameras.map((c) => c.recoveryMs ?? Infinity));
    return { fault: f, cameras, worstRecoveryMs, met: cameras.every((c) => c.met) && !f.error };
  });
}

export function cameraRecovery(v: Pick<ViewerRecord, 'camera' | 'arrivals'>, f: FaultRecord, nextInjectAt: number): CameraRecovery {
  const a = v.arrivals;
  const i = upperBound(a, f.clearAt);
  const first = i < a.length && a[i] < nextInjectAt ? a[i] : undefined;
  let worstGapAfterMs = 0;
  for (let j = i + 1; j < a.length && a[j] < nextInjectAt; j++) worstGapAfterMs = Math.max(worstGapAfterMs, a[j] - a[j - 1]);
  const recoveryMs = first === undefined ? undefined : first - f.clearAt;
  return {
    camera: v.camera,
    recoveryMs,
    worstGapAfterMs,
    darkDuringMs: longestDark(a, f.injectAt, f.clearAt),
    met: recoveryMs !== undefined && recoveryMs <= f.slot.recoveryTargetS * 1000,
  };
}

/** New frames per second in bins of binMs, from 0 to durationMs. */
export function frameRate(arrivals: readonly number[], durationMs: number, binMs: number): { t: number; fps: number }[] {
  const n = Math.max(1, Math.ceil(durationMs / binMs));
  const counts = new Array<number>(n).fill(0);
  for (const a of arrivals) {
    const b = Math.floor(a / binMs);
    if (b >= 0 && b < n) counts[b]++;
  }
  return counts.map((c, b) => ({ t: (b * binMs) / 1000, fps: c / (binMs / 1000) }));
}

// ------------------------------------------------------------------ healthy time, logs

export interface Window {
  from: number;
  to: number;
}

/**
 * When the stack should be quiet: from settle after the start to the first fault (the moment its
 * injection began), and from settle
 * after each fault's recovery deadline (or its actual recovery, when later: `recoveredAt[i]`, Infinity
 * when it never recovered) to the next fault (or the end).
 */
export function healthyWindows(faults: readonly FaultRecord[], durationMs: number, settleMs: number, recoveredAt: readonly number[] = []): Window[] {
  const out: Window[] = [];
  let from = settleMs;
  faults.forEach((f, i) => {
    const start = f.startAt ?? f.injectAt;
    if (start > from) out.push({ from, to: start });
    from = Math.max(f.clearAt + f.slot.recoveryTargetS * 1000, recoveredAt[i] ?? 0) + settleMs;
  });
  if (durationMs > from) out.push({ from, to: durationMs });
  return out;
}

const inWindows = (t: number, ws: readonly Window[]) => ws.some((w) => t >= w.from && t < w.to);
const windowsMs = (ws: readonly Window[]) => ws.reduce((s, w) => s + (w.to - w.from), 0);

export interface LogRate {
  service: string;
  total: number;
  healthyLines: number;
  healthyMinutes: number;
  perMinute: number;
  /** most frequent lines while healthy */
  top: { msg: string; count: number }[];
  /** docker had rotated lines away: the count is a lower bound */
  truncated: boolean;
}

export function logRates(logs: SoakResults['logs'], windows: readonly Window[]): LogRate[] {
  const minutes = windowsMs(windows) / 60_000;
  return Object.entries(logs).map(([service, rec]) => {
    const healthy = rec.lines.filter((l) => inWindows(l.t, windows));
    const counts = new Map<string, number>();
    for (const l of healthy) counts.set(l.msg, (counts.get(l.msg) ?? 0) + 1);
    const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([msg, count]) => ({ msg, count }));
    return {
      service,
      total: rec.lines.length,
      healthyLines: healthy.length,
      healthyMinutes: minutes,
      perMinute: minutes > 0 ? healthy.length / minutes : NaN,
      top,
      truncated: rec.firstAt !== undefined && rec.firstAt > 60_000,
    };
  });
}

// ------------------------------------------------------------------ restarts

export interface Restart {
  service: string;
  /** the first sample that saw the new start */
  seenAt: number;
  expected: boolean;
  how: string;
}

const RESTART_FAULT: Record<string, string> = { relay: 'relay-restart', 'tunnel-server': 'tunnel-server-restart' };

/** Every container start after the first sample; expected when a restart fault of that service was running. */
export function restarts(samples: readonly Sample[], faults: readonly FaultRecord[], sampleMs: number): Restart[] {
  const out: Restart[] = [];
  const prev = new Map<string, { startedAt: string; restartCount: number }>();
  for (const s of samples) {
    for (const [service, c] of Object.entries(s.containers)) {
      const p = prev.get(service);
      if (p && (c.startedAt !== p.startedAt || c.restartCount !== p.restartCount)) {
        const expected = c.restartCount === p.restartCount && faults.some((f) =>
          RESTART_FAULT[service] === f.slot.kind && s.t >= f.injectAt && s.t <= f.clearAt + 2 * sampleMs);
        out.push({
          service,
          seenAt: s.t,
          expected,
          how: c.restartCount !== p.restartCount ? `restart policy (restart count ${p.restartCount} -> ${c.restartCount}${c.oomKilled ? ', OOM-killed' : ''})` : expected ? 'injected' : 'started again',
        });
      }
      prev.set(service, { startedAt: c.startedAt, restartCount: c.restartCount });
    }
  }
  return out;
}

// ------------------------------------------------------------------ disk

export interface ArchiveCheck {
  keep: number;
  maxFilesPerCamera: number;
  maxBytes: number;
  boundBytes: number;
  verdict: 'pass' | 'fail' | 'n/a';
}

/** A camera's folder holds at most SNAPSHOT_KEEP snapshots plus the one being written. */
export function archiveCheck(samples: readonly Sample[], keep: number, maxFrameBytes: readonly number[]): ArchiveCheck {
  const maxFilesPerCamera = Math.max(0, ...samples.flatMap((s) => Object.values(s.cameras).map((c) => c.archiveFiles ?? 0)));
  const maxBytes = Math.max(0, ...samples.map((s) => s.disk.archiveBytes ?? 0));
  // tmpfs counts whole 4 KiB pages: a file takes up to one page more than its bytes, a folder one page
  const boundBytes = maxFrameBytes.reduce((sum, b) => sum + (keep + 1) * (b + 4096) + 4096, 0);
  const seen = samples.some((s) => s.disk.archiveBytes !== undefined);
  const verdict = keep <= 0 || !seen ? 'n/a' : maxFilesPerCamera <= keep + 1 && maxBytes <= boundBytes ? 'pass' : 'fail';
  return { keep, maxFilesPerCamera, maxBytes, boundBytes, verdict };
}

export interface PrometheusCheck {
  maxBytes: number;
  lastBytes: number;
  walGrowthPerHour: number;
  maxBlocks: number;
  blocksBound: number;
  retentions: number;
  maxBlocksBytes: number;
  /** the largest block being compacted at a sample (preallocated room, briefly) */
  maxCompactingBytes: number;
  verdict: 'pass' | 'fail' | 'n/a';
  why: string;
}

/**
 * Retention bounds the TSDB's blocks: within the run it must have deleted blocks and never kept more
 * than retention / block duration + 2 of them (one being compacted, one just past retention). The WAL
 * and head chunks are cut at 128 MiB segments and are reported with their growth, not judged: a run of
 * less than hours never fills one (docs/soak.md).
 */
export function prometheusCheck(samples: readonly Sample[], retentionS: number, blockS: number, durationMs: number): PrometheusCheck {
  const d = samples.map((s) => s.disk);
  const bytes = d.map((x) => x.prometheusBytes).filter((x): x is number => x !== undefined);
  const wal = samples.filter((s) => s.disk.prometheusWalBytes !== undefined).map((s) => ({ t: s.t / 1000, v: s.disk.prometheusWalBytes! }));
  const maxBlocks = Math.max(0, ...d.map((x) => x.prometheusBlocks ?? 0));
  const retentions = Math.max(0, ...d.map((x) => x.prometheusRetentions ?? 0));
  const blocksBound = Math.ceil(retentionS / blockS) + 2;
  const needMs = (retentionS + 3 * blockS) * 1000;
  let verdict: PrometheusCheck['verdict'] = 'n/a';
  let why = `the run is shorter than retention + 3 blocks (${Math.round(needMs / 60_000)} min): retention cannot have acted yet`;
  if (durationMs >= needMs && bytes.length > 0) {
    const ok = retentions > 0 && maxBlocks <= blocksBound;
    verdict = ok ? 'pass' : 'fail';
    why = `retention deleted blocks ${retentions} times; at most ${maxBlocks} blocks (bound ${blocksBound})`;
  }
  return {
    maxBytes: Math.max(0, ...bytes),
    lastBytes: bytes.length ? bytes[bytes.length - 1] : NaN,
    walGrowthPerHour: theilSen(wal).slope * 3600,
    maxBlocks,
    blocksBound,
    retentions,
    maxBlocksBytes: Math.max(0, ...d.map((x) => x.prometheusBlocksBytes ?? 0)),
    maxCompactingBytes: Math.max(0, ...d.map((x) => x.prometheusCompactingBytes ?? 0)),
    verdict,
    why,
  };
}

// ------------------------------------------------------------------ targets

export type Verdict = 'pass' | 'fail' | 'n/a';

export interface Target {
  id: TargetId;
  what: string;
  target: string;
  measured: string;
  verdict: Verdict;
}

export const TARGET_IDS = ['no-unexpected-restart', 'rss-flat', 'fds-flat', 'recovery', 'faults-effective', 'log-volume', 'archive-bounded', 'prometheus-bounded'] as const;
export type TargetId = (typeof TARGET_IDS)[number];

/** Lines per minute a daemon may log while healthy: a state change now and then, not one per frame or client. */
export const HEALTHY_LOG_LINES_PER_MIN = 1;
/** Less healthy time than this gives no log-volume verdict. */
const MIN_HEALTHY_MINUTES = 3;
/** The log volume is judged for the daemons of this project. */
const LOG_JUDGED = ['relay', 'tunnel-agent-demo', 'tunnel-server'];

export interface Analysis {
  trends: { daemon: Daemon; metric: TrendMetric; trend: Trend }[];
  /** judged daemons restarted during the run: each lifetime on its own (shown, not judged) */
  lives: { daemon: Daemon; lives: LifeTrend[] }[];
  trendFromMs: number;
  outcomes: FaultOutcome[];
  healthy: Window[];
  logs: LogRate[];
  restarts: Restart[];
  archive: ArchiveCheck;
  prometheus: PrometheusCheck;
  /** per camera: frames while healthy, its mean rate, and the clients' failures while healthy */
  cameras: { camera: string; frames: number; healthyFps: number; backwards: number; reconnects: number; pollsOk: number; pollsFailedHealthy: number; polls: number }[];
  targets: Target[];
  passed: number;
  failed: number;
}

/** The per-daemon series given a trend, in the report's order. */
export const TREND_METRICS = ['rss', 'anon', 'heap', 'fds', 'handles'] as const;

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const s1 = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'never');

export function analyse(r: SoakResults, minTrendWindowS = MIN_TREND_WINDOW_S): Analysis {
  const sampleMs = r.config.sampleS * 1000;
  const trendFromMs = trendWindowStart(r.durationMs);
  const trends = DAEMONS.flatMap((daemon) =>
    TREND_METRICS.map((metric) => ({ daemon, metric, trend: daemonTrend(r.samples, daemon, metric, trendFromMs, minTrendWindowS, r.startedAtMs) })));
  const lives = JUDGED_DAEMONS.map((daemon) => ({ daemon, lives: lifeTrends(r.samples, daemon, r.startedAtMs) })).filter((x) => x.lives.length > 1);
  const outcomes = recoveries(r);
  const healthy = healthyWindows(r.faults, r.durationMs, r.config.settleS * 1000, outcomes.map((o) => o.fault.clearAt + o.worstRecoveryMs));
  const logs = logRates(r.logs, healthy);
  const rs = restarts(r.samples, r.faults, sampleMs);
  const archive = archiveCheck(r.samples, r.stack.snapshotKeep, r.viewers.map((v) => v.maxFrameBytes));
  const prometheus = prometheusCheck(r.samples, r.stack.prometheusRetentionS, r.stack.prometheusBlockS, r.durationMs);
  const healthyMs = windowsMs(healthy);
  const cameras = r.viewers.map((v) => {
    const frames = v.arrivals.filter((a) => inWindows(a, healthy)).length;
    const polls = v.polls;
    return {
      camera: v.camera,
      frames: v.arrivals.length,
      healthyFps: healthyMs > 0 ? frames / (healthyMs / 1000) : NaN,
      backwards: v.backwards,
      reconnects: v.reconnects.length,
      polls: polls.length,
      pollsOk: polls.filter((p) => p.ok).length,
      pollsFailedHealthy: polls.filter((p) => !p.ok && inWindows(p.t, healthy)).length,
    };
  });

  const targets: Target[] = [];
  const unexpected = rs.filter((x) => !x.expected);
  const injected = r.faults.filter((f) => f.slot.kind === 'relay-restart' || f.slot.kind === 'tunnel-server-restart').length;
  targets.push({
    id: 'no-unexpected-restart',
    what: 'no crash or restart beyond the injected ones',
    target: '0 unexpected',
    measured: unexpected.length === 0
      ? `0 unexpected (${rs.length} restarts seen, ${injected} injected)`
      : unexpected.map((x) => `${x.service} at ${s1(x.seenAt)}: ${x.how}`).join('; '),
    verdict: unexpected.length === 0 ? 'pass' : 'fail',
  });
  for (const metric of ['rss', 'fds'] as const) {
    // memory: the anonymous part of RSS where it was measured (what a leak grows; see ProcessStats.anon)
    const judged = JUDGED_DAEMONS.map((daemon) => {
      const pick = metric === 'rss' ? trends.find((x) => x.daemon === daemon && x.metric === 'anon' && x.trend.n > 0) : undefined;
      return pick ?? trends.find((x) => x.daemon === daemon && x.metric === metric)!;
    });
    const na = judged.every((x) => x.trend.verdict === 'n/a');
    const rising = judged.filter((x) => x.trend.verdict === 'RISING');
    const fmt = (x: Trend) => (metric === 'rss' ? `${x.drift >= 0 ? '+' : ''}${mib(x.drift)} (bound ${mib(x.bound)})` : `${x.drift >= 0 ? '+' : ''}${x.drift.toFixed(1)} (bound ${x.bound.toFixed(1)})`);
    targets.push({
      id: metric === 'rss' ? 'rss-flat' : 'fds-flat',
      what: `${metric === 'rss' ? 'memory (anonymous RSS)' : 'open fds'} of ${JUDGED_DAEMONS.join(', ')} flat within noise (second half, per process lifetime)`,
      target: `drift <= max(${NOISE_K} x noise, floor)`,
      measured: na
        ? `window ${Math.round(judged[0]?.trend.windowS ?? 0)} s < ${minTrendWindowS} s`
        : judged.map((x) => `${x.daemon}${x.metric !== metric ? ` ${x.metric}` : ''} ${fmt(x.trend)}`).join('; '),
      verdict: na ? 'n/a' : rising.length ? 'fail' : 'pass',
    });
  }
  const missed = outcomes.filter((o) => !o.met);
  const worst = outcomes.reduce<FaultOutcome | undefined>((w, o) => (!w || o.worstRecoveryMs > w.worstRecoveryMs ? o : w), undefined);
  targets.push({
    id: 'recovery',
    what: 'frames of every camera flowing again after each fault clears',
    target: `<= ${r.config.recoveryTargetS ?? 5} s (link cuts: + the keepalive window)`,
    measured: outcomes.length === 0
      ? 'no faults ran'
      : `${outcomes.length - missed.length}/${outcomes.length} faults met; worst ${s1(worst!.worstRecoveryMs)} after ${FAULT_TEXT[worst!.fault.slot.kind].short}${worst!.fault.slot.camera ? ` (${worst!.fault.slot.camera})` : ''}` +
        (missed.length ? `; missed: ${missed.map((o) => `#${o.fault.slot.index} ${o.fault.slot.kind} ${s1(o.worstRecoveryMs)}`).join(', ')}` : ''),
    verdict: outcomes.length === 0 ? 'n/a' : missed.length ? 'fail' : 'pass',
  });
  const ineffective = r.faults.filter((f) => f.error || !f.effect.seen);
  targets.push({
    id: 'faults-effective',
    what: 'every fault was injected and seen to take effect (else the soak tested nothing)',
    target: 'all',
    measured: ineffective.length === 0 ? `${r.faults.length}/${r.faults.length}` : ineffective.map((f) => `#${f.slot.index} ${f.slot.kind}: ${f.error ?? f.effect.evidence}`).join('; '),
    verdict: r.faults.length === 0 ? 'n/a' : ineffective.length ? 'fail' : 'pass',
  });
  const judgedLogs = logs.filter((l) => LOG_JUDGED.includes(l.service));
  const logNa = healthyMs / 60_000 < MIN_HEALTHY_MINUTES || judgedLogs.length === 0;
  const loud = judgedLogs.filter((l) => l.perMinute > HEALTHY_LOG_LINES_PER_MIN || l.truncated);
  targets.push({
    id: 'log-volume',
    what: 'healthy log volume bounded (state changes only)',
    target: `<= ${HEALTHY_LOG_LINES_PER_MIN} line/min per daemon while healthy`,
    measured: logNa
      ? `${(healthyMs / 60_000).toFixed(1)} healthy minutes < ${MIN_HEALTHY_MINUTES}`
      : judgedLogs.map((l) => `${l.service} ${l.perMinute.toFixed(2)}${l.truncated ? ' (log rotated: a flood)' : ''}`).join('; '),
    verdict: logNa ? 'n/a' : loud.length ? 'fail' : 'pass',
  });
  targets.push({
    id: 'archive-bounded',
    what: 'archive disk bounded by its retention (SNAPSHOT_KEEP per camera)',
    target: `<= ${archive.keep} + 1 files per camera, <= ${mib(archive.boundBytes)}`,
    measured: `at most ${archive.maxFilesPerCamera} files per camera, ${mib(archive.maxBytes)}`,
    verdict: archive.verdict,
  });
  targets.push({
    id: 'prometheus-bounded',
    what: 'Prometheus disk bounded by its retention (blocks deleted, block count bounded)',
    target: `retention deleted blocks; <= ${prometheus.blocksBound} blocks`,
    measured: `${prometheus.why}; ${mib(prometheus.maxBytes)} at most on disk`,
    verdict: prometheus.verdict,
  });
  return {
    trends,
    lives,
    trendFromMs,
    outcomes,
    healthy,
    logs,
    restarts: rs,
    archive,
    prometheus,
    cameras,
    targets,
    passed: targets.filter((t) => t.verdict === 'pass').length,
    failed: targets.filter((t) => t.verdict === 'fail').length,
  };
}
