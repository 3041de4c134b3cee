/**
 * Snapshot archive: on the SNAPSHOT_CRON schedule (node-cron v4) the latest frame is written to
 * SNAPSHOT_DIR as <UTC ISO time with ':' replaced by '-'>.jpg, e.g. 2026-11-24T12-00-00.123Z.jpg.
 * Writes are atomic (temp file in the same directory, fsync, rename), so the directory never holds
 * a half file. Retention by count (SNAPSHOT_KEEP) and age (SNAPSHOT_MAX_AGE_HOURS). A full disk or
 * an unwritable directory is logged (rate-limited) and counted; serving is never affected.
 *
 * A disk that stops answering (hard-mounted NFS, a dying USB disk, a hung FUSE filesystem): every
 * file operation has a deadline (SNAPSHOT_WRITE_TIMEOUT_MS). A blocked operation cannot be cancelled
 * and keeps one of libuv's 4 pool threads (shared with dns.lookup and every other file operation), so
 * the archive NEVER has more than one file operation outstanding: operations run one after another,
 * and after a deadline passes no new one starts until the blocked one has returned. Meanwhile every
 * scheduled snapshot is skipped and counted as relay_archive_errors_total{reason="timeout"} (like the
 * deadline itself), the log says "archive disk not answering" once and "archive disk answering
 * again" once, and the next scheduled snapshot after that runs normally.
 *
 * The directory is created one level at a time (never fs.mkdir recursive: on a path such as /proc/x
 * Node's recursive mkdir spins a core forever), and a directory that cannot exist there is reported.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createTask } from 'node-cron';
import { Clock, Logger, RateLimitedLog, Service, systemClock } from '@camrelay/common';
import type { ArchiveConfig } from './config';
import type { FrameStore } from './frame-store';
import type { CameraMetrics } from './metrics';

/** The file operations the archive uses (node:fs/promises; tests hand in one that hangs). */
export interface ArchiveFs {
  mkdir(p: string): Promise<unknown>;
  open(p: string, flags: string, mode: number): Promise<ArchiveFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(p: string, opts: { force: boolean }): Promise<void>;
  readdir(p: string): Promise<string[]>;
  access(p: string): Promise<void>;
}
export interface ArchiveFileHandle {
  writeFile(data: Buffer): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}
const nodeFs: ArchiveFs = {
  mkdir: (p) => fsp.mkdir(p),
  open: (p, flags, mode) => fsp.open(p, flags, mode),
  rename: (a, b) => fsp.rename(a, b),
  rm: (p, o) => fsp.rm(p, o),
  readdir: (p) => fsp.readdir(p),
  access: (p) => fsp.access(p),
};

/** Runs `tick` on a schedule; start() begins, stop() ends for good. */
export interface ArchiveSchedule {
  start(): Promise<void>;
  stop(): Promise<void>;
}
export type ScheduleFactory = (cron: string, tick: () => Promise<void>, log: Logger, limited: RateLimitedLog) => ArchiveSchedule;

/** node-cron (noOverlap); its own warnings (missed executions, overlaps) go to our JSON log. */
export const cronSchedule: ScheduleFactory = (cron, tick, log, limited) => {
  const cronLog = {
    info: (m: string) => log.debug({ source: 'node-cron' }, m),
    warn: (m: string) => limited.warn(log, 'node-cron', { source: 'node-cron' }, m),
    error: (m: string | Error, err?: Error) => log.error({ source: 'node-cron', err: err ?? m }, typeof m === 'string' ? m : 'node-cron error'),
    debug: (m: string | Error) => log.debug({ source: 'node-cron' }, String(m)),
  };
  // createTask starts stopped (schedule() would start at once); start() starts it.
  const task = createTask(cron, tick, { name: 'relay-archive', noOverlap: true, logger: cronLog });
  return {
    start: async () => {
      await task.start();
    },
    stop: async () => {
      await task.stop();
      await task.destroy();
    },
  };
};

export interface ArchiveOptions {
  config: ArchiveConfig;
  store: FrameStore;
  metrics: CameraMetrics;
  log: Logger;
  /** wall-clock time for names and ages (default: clock.now) */
  now?: () => number;
  /** timers of the I/O deadlines (default: the system clock) */
  clock?: Clock;
  fs?: ArchiveFs;
  schedule?: ScheduleFactory;
}

/** An archive file operation that missed its deadline; `settled` resolves when it finally returns. */
class IoTimeout extends Error {
  constructor(
    readonly op: string,
    readonly settled: Promise<unknown>,
  ) {
    super(`${op} did not finish within the deadline`);
  }
}

/** A directory that cannot be created where SNAPSHOT_DIR points (e.g. under /proc). */
class DirError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const NAME_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d{3})?Z)(?:-\d+)?\.jpg$/;
const TEMP_PREFIX = '.tmp-';

/** 2026-11-24T12:00:00.123Z -> 2026-11-24T12-00-00.123Z.jpg */
export function snapshotName(ms: number): string {
  return `${new Date(ms).toISOString().replace(/:/g, '-')}.jpg`;
}

/** The time a snapshot name stands for, or undefined for other files. */
export function parseSnapshotName(name: string): number | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const iso = m[1].replace(/T(\d{2})-(\d{2})-(\d{2})/, 'T$1:$2:$3');
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

export type SnapshotResult =
  | { saved: string; pruned: number }
  | { skipped: 'no_frame' | 'unchanged' | 'write' | 'busy' | 'timeout'; error?: string };

export class Archive implements Service {
  readonly name = 'archive';
  private task: ArchiveSchedule | undefined;
  private readonly now: () => number;
  private readonly clock: Clock;
  private readonly fs: ArchiveFs;
  private readonly limited: RateLimitedLog;
  private running: Promise<SnapshotResult> | undefined;
  private lastSavedSeq = 0;
  /** set while a file operation that missed its deadline has not returned yet (the disk hangs) */
  private hung: { op: string; since: number; settled: Promise<void> } | undefined;
  /** SNAPSHOT_DIR exists (created or found); reset when a write says it vanished */
  private dirReady = false;
  /** leftover temp files from a crash are removed before the first snapshot */
  private tempsChecked = false;

  constructor(private readonly opts: ArchiveOptions) {
    this.clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => this.clock.now());
    this.fs = opts.fs ?? nodeFs;
    this.limited = new RateLimitedLog(60_000, this.now);
  }

  get enabled(): boolean {
    return this.opts.config.cron !== undefined;
  }

  /** True while the disk has not returned an operation that missed its deadline. */
  get diskHung(): boolean {
    return this.hung !== undefined;
  }

  async start(): Promise<void> {
    const cron = this.opts.config.cron;
    if (cron === undefined || this.task) return;
    // No file I/O here: a disk that hangs at boot must not hold up the outlets. The first snapshot
    // removes leftover temp files.
    this.task = (this.opts.schedule ?? cronSchedule)(cron, () => this.snapshot().then(() => undefined), this.opts.log, this.limited);
    await this.task.start();
    const { dir, keep, maxAgeHours, writeTimeoutMs } = this.opts.config;
    this.opts.log.info({ cron, dir, keep, maxAgeHours, writeTimeoutMs }, 'archive scheduled');
  }

  async stop(): Promise<void> {
    const t = this.task;
    this.task = undefined;
    if (t) await t.stop();
    // Bounded by the deadline; an operation the disk never returns is not waited for.
    await this.running;
  }

  /** Saves the latest frame now and applies retention. Callable directly (tests, manual runs). */
  snapshot(): Promise<SnapshotResult> {
    if (this.running) return Promise.resolve({ skipped: 'busy' });
    const p = this.guardedSnapshot().finally(() => {
      this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async guardedSnapshot(): Promise<SnapshotResult> {
    if (this.hung) {
      // The disk still holds an operation: starting another would take a second pool thread.
      this.opts.metrics.archiveErrors.inc({ reason: 'timeout' });
      return { skipped: 'timeout', error: `${this.hung.op} still outstanding` };
    }
    try {
      if (!this.tempsChecked) {
        await this.removeLeftoverTemps();
        this.tempsChecked = true;
      }
      return await this.doSnapshot();
    } catch (e) {
      if (e instanceof IoTimeout) return this.onTimeout(e);
      throw e;
    }
  }

  /** Counts and logs a missed deadline, and watches for the blocked operation to come back. */
  private onTimeout(e: IoTimeout): SnapshotResult {
    const { dir, writeTimeoutMs } = this.opts.config;
    this.opts.metrics.archiveErrors.inc({ reason: 'timeout' });
    const since = this.now();
    this.opts.log.warn({ dir, op: e.op, timeoutMs: writeTimeoutMs }, 'archive disk not answering: snapshots are skipped until it does');
    const settled = e.settled.then(
      () => {
        this.hung = undefined;
        this.opts.log.info({ dir, op: e.op, hungMs: this.now() - since }, 'archive disk answering again');
      },
      () => undefined,
    );
    this.hung = { op: e.op, since, settled };
    return { skipped: 'timeout', error: e.message };
  }

  /**
   * One file operation with the deadline. On timeout it throws IoTimeout whose `settled` resolves
   * once the operation returned AND `cleanup` (given its result, e.g. closing a late file handle)
   * ran; until then no other archive operation may start.
   */
  private io<T>(op: string, run: () => Promise<T>, cleanup?: (v: T) => Promise<unknown>): Promise<T> {
    const p = run();
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = this.clock.setTimeout(() => {
        timedOut = true;
        const settled = p.then(
          (v) => (cleanup ? cleanup(v).catch(() => undefined) : undefined),
          () => undefined,
        );
        reject(new IoTimeout(op, settled));
      }, this.opts.config.writeTimeoutMs);
      p.then(
        (v) => {
          if (timedOut) return;
          this.clock.clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          if (timedOut) return;
          this.clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private async doSnapshot(): Promise<SnapshotResult> {
    const { dir, maxFrameAgeMs } = this.opts.config;
    const frame = this.opts.store.latest;
    if (frame && frame.seq === this.lastSavedSeq && this.now() - frame.capturedAt <= maxFrameAgeMs) {
      // The schedule is faster than the camera: the latest frame is already archived.
      return { skipped: 'unchanged' };
    }
    if (!frame || this.now() - frame.capturedAt > maxFrameAgeMs) {
      this.opts.metrics.archiveErrors.inc({ reason: 'no_frame' });
      this.limited.warn(this.opts.log, 'no_frame', { maxFrameAgeMs }, 'archive: no new frame to save (camera down?)');
      return { skipped: 'no_frame' };
    }
    let temp: string | undefined;
    try {
      await this.ensureDir(dir);
      const name = await this.uniqueName(snapshotName(frame.capturedAt));
      const final = path.join(dir, name);
      const t = path.join(dir, `${TEMP_PREFIX}${process.pid}-${frame.seq}-${name}`);
      // A late handle (open returned after its deadline) is closed and its temp file removed.
      const fh = await this.io('open', () => this.fs.open(t, 'wx', 0o644), (h) => h.close().then(() => this.fs.rm(t, { force: true })));
      temp = t;
      try {
        await this.io('write', () => fh.writeFile(frame.data), () => fh.close().then(() => this.fs.rm(t, { force: true })));
        await this.io('fsync', () => fh.sync(), () => fh.close().then(() => this.fs.rm(t, { force: true })));
      } catch (e) {
        // after a timeout, the handle is closed by the cleanup once the disk answers
        if (!(e instanceof IoTimeout)) await this.io('close', () => fh.close()).catch((ce: unknown) => this.rethrowTimeout(ce));
        throw e;
      }
      await this.io('close', () => fh.close(), () => this.fs.rm(t, { force: true }));
      await this.io('rename', () => this.fs.rename(t, final), () => this.fs.rm(t, { force: true }));
      temp = undefined;
      this.lastSavedSeq = frame.seq;
      this.opts.metrics.archiveSnapshots.inc();
      this.opts.metrics.archiveLastSuccess.set(this.now() / 1000);
      const pruned = await this.prune();
      return { saved: final, pruned };
    } catch (e) {
      if (e instanceof IoTimeout) throw e;
      if (temp !== undefined) {
        const t = temp;
        await this.io('rm', () => this.fs.rm(t, { force: true })).catch((re: unknown) => this.rethrowTimeout(re));
      }
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') this.dirReady = false; // someone removed SNAPSHOT_DIR: create it again
      this.opts.metrics.archiveErrors.inc({ reason: 'write' });
      this.limited.warn(this.opts.log, `write_${err.code ?? 'other'}`, { dir, code: err.code, error: err.message }, 'archive: cannot write snapshot');
      // Retention runs anyway: on a full disk (ENOSPC) only pruning by age can make room again, and
      // it must not wait for a successful write that the full disk prevents.
      await this.prune();
      return { skipped: 'write', error: err.code ?? err.message };
    }
  }

  /** Ignores ordinary errors of a clean-up step, but a missed deadline must still stop everything. */
  private rethrowTimeout(e: unknown): void {
    if (e instanceof IoTimeout) throw e;
  }

  /**
   * Creates `dir` one level at a time (mkdir without `recursive`), so a path where directories cannot
   * exist fails with a clear error instead of spinning (Node's recursive mkdir loops on /proc/x).
   */
  private async ensureDir(dir: string): Promise<void> {
    if (this.dirReady) return;
    const missing: string[] = [];
    let d = path.resolve(dir);
    for (;;) {
      try {
        await this.io('mkdir', () => this.fs.mkdir(d));
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') break;
        const parent = path.dirname(d);
        if (code !== 'ENOENT' || parent === d) throw e;
        missing.push(d);
        d = parent;
      }
    }
    // `d` exists now; create the missing levels below it, each exactly once.
    for (const m of missing.reverse()) {
      try {
        await this.io('mkdir', () => this.fs.mkdir(m));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') continue;
        if (code === 'ENOENT') {
          // The parent exists but refuses a directory below it (procfs, sysfs): no retry loop.
          throw new DirError(`cannot create ${m}: its parent ${path.dirname(m)} exists but does not accept directories (a filesystem like /proc?); point SNAPSHOT_DIR at a real disk`, 'ENOENT');
        }
        throw e;
      }
    }
    this.dirReady = true;
  }

  /** Two frames captured within one millisecond would share a name; never overwrite. */
  private async uniqueName(name: string): Promise<string> {
    let candidate = name;
    for (let i = 1; i < 100; i++) {
      try {
        await this.io('access', () => this.fs.access(path.join(this.opts.config.dir, candidate)));
      } catch (e) {
        if (e instanceof IoTimeout) throw e;
        return candidate;
      }
      candidate = name.replace(/\.jpg$/, `-${i}.jpg`);
    }
    return candidate;
  }

  /** Deletes the oldest snapshots beyond SNAPSHOT_KEEP and those older than SNAPSHOT_MAX_AGE_HOURS. */
  async prune(): Promise<number> {
    const { dir, keep, maxAgeHours } = this.opts.config;
    if (keep === 0 && maxAgeHours === 0) return 0;
    let removed = 0;
    try {
      const snaps = (await this.io('readdir', () => this.fs.readdir(dir)))
        .map((n) => ({ n, t: parseSnapshotName(n) }))
        .filter((s): s is { n: string; t: number } => s.t !== undefined)
        .sort((a, b) => b.t - a.t || (b.n < a.n ? -1 : 1)); // newest first
      const cutoff = maxAgeHours > 0 ? this.now() - maxAgeHours * 3_600_000 : -Infinity;
      const doomed = snaps.filter((s, i) => (keep > 0 && i >= keep) || s.t < cutoff);
      for (const s of doomed) {
        await this.io('prune', () => this.fs.rm(path.join(dir, s.n), { force: true }));
        removed++;
      }
    } catch (e) {
      if (e instanceof IoTimeout) {
        if (removed > 0) this.opts.metrics.archivePruned.inc(removed);
        throw e;
      }
      const err = e as NodeJS.ErrnoException;
      this.opts.metrics.archiveErrors.inc({ reason: 'prune' });
      this.limited.warn(this.opts.log, 'prune', { dir, code: err.code, error: err.message }, 'archive: retention failed');
    }
    if (removed > 0) this.opts.metrics.archivePruned.inc(removed);
    return removed;
  }

  /** A crash between write and rename leaves a temp file; it is never a snapshot, so drop it. */
  private async removeLeftoverTemps(): Promise<void> {
    const dir = this.opts.config.dir;
    let names: string[];
    try {
      names = await this.io('readdir', () => this.fs.readdir(dir));
    } catch (e) {
      if (e instanceof IoTimeout) throw e;
      return; // the directory may not exist yet; the first snapshot creates it (or counts the failure)
    }
    for (const n of names) {
      if (n.startsWith(TEMP_PREFIX)) await this.io('rm', () => this.fs.rm(path.join(dir, n), { force: true })).catch((e: unknown) => this.rethrowTimeout(e));
    }
  }
}
