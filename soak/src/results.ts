/**
 * What a soak run records (soak/results/latest.json): settings, the schedule as it ran, every
 * sample, every new frame each steady viewer saw, the log lines. The analysis and the report read
 * only this, so a report can be re-rendered (SOAK_REPORT_ONLY=1) without running anything.
 * Times are milliseconds since the start of the run unless named otherwise.
 */
import type { Slot } from './schedule';

/** The daemons sampled for memory and fds: our two Node daemons, sshd, Caddy (the viewers' front door) and Prometheus. */
export const DAEMONS = ['relay', 'tunnel-agent', 'tunnel-server', 'caddy', 'prometheus'] as const;
export type Daemon = (typeof DAEMONS)[number];
/** The daemons the targets judge (Caddy and Prometheus are not ours: reported, not judged). */
export const JUDGED_DAEMONS: readonly Daemon[] = ['relay', 'tunnel-agent', 'tunnel-server'];
/** The compose service each daemon runs in (its container's start time splits the daemon's samples into lifetimes). */
export const DAEMON_SERVICE: Record<Daemon, string> = {
  relay: 'relay',
  'tunnel-agent': 'tunnel-agent-demo',
  'tunnel-server': 'tunnel-server',
  caddy: 'caddy',
  prometheus: 'prometheus',
};

export interface ProcessStats {
  /** resident set size, bytes (tunnel-server, caddy: all the container's processes together) */
  rss?: number;
  /**
   * anonymous resident memory (RssAnon in /proc/<pid>/status, every process of the container), bytes:
   * the heap, buffers and stacks, which is where a leak grows. RSS minus it is file-backed: the
   * program's binary and libraries, paged in as code paths are first used, shared and reclaimable.
   */
  anon?: number;
  /** heap in use, bytes (Node: nodejs_heap_size_used_bytes; Prometheus: go_memstats_heap_inuse_bytes) */
  heap?: number;
  /** open file descriptors (tunnel-server, caddy: all the container's processes together) */
  fds?: number;
  /** Node: nodejs_active_handles_total; Prometheus: go_goroutines; tunnel-server, caddy: their process count */
  handles?: number;
  /**
   * full garbage collections since the process started (Node: nodejs_gc_duration_seconds_count of
   * kind "major"; Prometheus: go_gc_duration_seconds_count). Shown per life: each full GC of a Node
   * daemon drops the compiled code of short-lived closures, which is compiled again (docs/soak.md).
   */
  fullGcs?: number;
}

export interface CameraSample {
  /** relay_frames_total */
  frames?: number;
  up?: number;
  frozen?: number;
  /** relay_fetch_errors_total, all reasons */
  fetchErrors?: number;
  /** snapshots in the camera's archive folder */
  archiveFiles?: number;
}

export interface ContainerSample {
  startedAt: string;
  restartCount: number;
  running: boolean;
  oomKilled: boolean;
}

export interface Sample {
  t: number;
  daemons: Partial<Record<Daemon, ProcessStats>>;
  cameras: Record<string, CameraSample>;
  relay: { clients?: number; connections?: number; archiveErrors?: number; archiveSnapshots?: number; rejected?: number };
  agent: { up?: number; reconnects?: number; keepaliveTimeouts?: number; disconnects?: number };
  containers: Record<string, ContainerSample>;
  disk: {
    /** bytes of the camera folders of the archive (the fault's filler file is not counted) */
    archiveBytes?: number;
    /** du of Prometheus's data folder (without a block being compacted), and of its WAL and head chunks together */
    prometheusBytes?: number;
    prometheusWalBytes?: number;
    /** a block being written or deleted by compaction (preallocated: the room compaction needs, briefly) */
    prometheusCompactingBytes?: number;
    prometheusBlocksBytes?: number;
    prometheusBlocks?: number;
    prometheusRetentions?: number;
  };
}

export interface FaultRecord {
  slot: Slot;
  /** when injecting began (stopping a container takes a moment, and its effects start at once) */
  startAt?: number;
  /** when the fault was in place: the hold counts from here */
  injectAt: number;
  /** when the fault was cleared: for the tunnel faults, the moment the link is back */
  clearAt: number;
  effect: { seen: boolean; evidence: string };
  notes: string[];
  error?: string;
}

export interface ViewerRecord {
  camera: string;
  /** arrival time of every new frame (a sequence number other than the previous part's) on the steady MJPEG viewer */
  arrivals: number[];
  /** parts whose sequence number was lower than the previous one's */
  backwards: number;
  /** when a steady viewer's stream broke after delivering frames (it then reconnects) */
  reconnects: number[];
  maxFrameBytes: number;
  /** the periodic raw and snapshot clients: when, which, whether they got a whole JPEG */
  polls: { t: number; kind: 'raw' | 'snapshot'; ok: boolean }[];
}

export interface LogRecord {
  /** each line's time and a short form of it (a pino line: level and msg; else the text, digits masked) */
  lines: { t: number; msg: string }[];
  /** the first line docker still had: later than the start when the log was rotated away (a flood) */
  firstAt?: number;
}

export interface StackSettings {
  keepaliveWindowS: number;
  frozenAfterS: number;
  snapshotKeep: number;
  prometheusRetentionS: number;
  prometheusBlockS: number;
  /** the relevant variables as the containers have them */
  env: Record<string, string>;
}

export interface SoakResults {
  startedAt: string;
  startedAtMs: number;
  durationMs: number;
  command: string;
  commit: string;
  machine: { cpus: number; model: string; memGiB: number; kernel: string; node: string; loadAvgStart: number[]; loadAvgEnd: number[] };
  config: { minutes: number; periodS: number; holdS: number; warmupS: number; sampleS: number; settleS: number; stormClients: number; recoveryTargetS: number };
  cameras: string[];
  stack: StackSettings;
  samples: Sample[];
  faults: FaultRecord[];
  viewers: ViewerRecord[];
  logs: Record<string, LogRecord>;
  errors: string[];
}
