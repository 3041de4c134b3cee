/**
 * Snapshot archive: on the SNAPSHOT_CRON schedule (node-cron v4) the latest frame is written to
 * SNAPSHOT_DIR as <UTC ISO time with ':' replaced by '-'>.jpg, e.g. 2026-11-24T12-00-00.123Z.jpg.
 * Writes are atomic (temp file in the same directory, fsync, rename), so the directory never holds
 * a half file. Retention by count (SNAPSHOT_KEEP) and age (SNAPSHOT_MAX_AGE_HOURS). A full disk or
 * an unwritable directory is logged (rate-limited) and counted; serving is never affected.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createTask, ScheduledTask } from 'node-cron';
import { Logger, RateLimitedLog, Service } from '@camrelay/common';
import type { ArchiveConfig } from './config';
import type { FrameStore } from './frame-store';
import type { RelayMetrics } from './metrics';

export interface ArchiveOptions {
  config: ArchiveConfig;
  store: FrameStore;
  metrics: RelayMetrics;
  log: Logger;
  now?: () => number;
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

export type SnapshotResult = { saved: string; pruned: number } | { skipped: 'no_frame' | 'unchanged' | 'write' | 'busy'; error?: string };

export class Archive implements Service {
  readonly name = 'archive';
  private task: ScheduledTask | undefined;
  private readonly now: () => number;
  private readonly limited: RateLimitedLog;
  private running: Promise<SnapshotResult> | undefined;
  private lastSavedSeq = 0;

  constructor(private readonly opts: ArchiveOptions) {
    this.now = opts.now ?? Date.now;
    this.limited = new RateLimitedLog(60_000, this.now);
  }

  get enabled(): boolean {
    return this.opts.config.cron !== undefined;
  }

  async start(): Promise<void> {
    const cron = this.opts.config.cron;
    if (cron === undefined || this.task) return;
    await this.removeLeftoverTemps();
    // createTask starts stopped (schedule() would start at once); we start it explicitly.
    // node-cron's own warnings (missed executions, overlaps) go to our JSON log, not to the console.
    const log = this.opts.log;
    const cronLog = {
      info: (m: string) => log.debug({ source: 'node-cron' }, m),
      warn: (m: string) => this.limited.warn(log, 'node-cron', { source: 'node-cron' }, m),
      error: (m: string | Error, err?: Error) => log.error({ source: 'node-cron', err: err ?? m }, typeof m === 'string' ? m : 'node-cron error'),
      debug: (m: string | Error) => log.debug({ source: 'node-cron' }, String(m)),
    };
    this.task = createTask(cron, () => this.snapshot().then(() => undefined), { name: 'relay-archive', noOverlap: true, logger: cronLog });
    await this.task.start();
    this.opts.log.info({ cron, dir: this.opts.config.dir, keep: this.opts.config.keep, maxAgeHours: this.opts.config.maxAgeHours }, 'archive scheduled');
  }

  async stop(): Promise<void> {
    const t = this.task;
    this.task = undefined;
    if (t) {
      await t.stop();
      await t.destroy();
    }
    await this.running;
  }

  /** Saves the latest frame now and applies retention. Callable directly (tests, manual runs). */
  snapshot(): Promise<SnapshotResult> {
    if (this.running) return Promise.resolve({ skipped: 'busy' });
    const p = this.doSnapshot().finally(() => {
      this.running = undefined;
    });
    this.running = p;
    return p;
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
    const name = await this.uniqueName(snapshotName(frame.capturedAt));
    const final = path.join(dir, name);
    const temp = path.join(dir, `${TEMP_PREFIX}${process.pid}-${frame.seq}-${name}`);
    try {
      await fs.mkdir(dir, { recursive: true });
      const fh = await fs.open(temp, 'wx', 0o644);
      try {
        await fh.writeFile(frame.data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(temp, final);
    } catch (e) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      const err = e as NodeJS.ErrnoException;
      this.opts.metrics.archiveErrors.inc({ reason: 'write' });
      this.limited.warn(this.opts.log, `write_${err.code ?? 'other'}`, { dir, code: err.code, error: err.message }, 'archive: cannot write snapshot');
      // Retention runs anyway: on a full disk (ENOSPC) only pruning by age can make room again, and
      // it must not wait for a successful write that the full disk prevents.
      await this.prune();
      return { skipped: 'write', error: err.code ?? err.message };
    }
    this.lastSavedSeq = frame.seq;
    this.opts.metrics.archiveSnapshots.inc();
    this.opts.metrics.archiveLastSuccess.set(this.now() / 1000);
    const pruned = await this.prune();
    return { saved: final, pruned };
  }

  /** Two frames captured within one millisecond would share a name; never overwrite. */
  private async uniqueName(name: string): Promise<string> {
    let candidate = name;
    for (let i = 1; i < 100; i++) {
      try {
        await fs.access(path.join(this.opts.config.dir, candidate));
      } catch {
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
      const snaps = (await fs.readdir(dir))
        .map((n) => ({ n, t: parseSnapshotName(n) }))
        .filter((s): s is { n: string; t: number } => s.t !== undefined)
        .sort((a, b) => b.t - a.t || (b.n < a.n ? -1 : 1)); // newest first
      const cutoff = maxAgeHours > 0 ? this.now() - maxAgeHours * 3_600_000 : -Infinity;
      const doomed = snaps.filter((s, i) => (keep > 0 && i >= keep) || s.t < cutoff);
      for (const s of doomed) {
        await fs.rm(path.join(dir, s.n), { force: true });
        removed++;
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      this.opts.metrics.archiveErrors.inc({ reason: 'prune' });
      this.limited.warn(this.opts.log, 'prune', { dir, code: err.code, error: err.message }, 'archive: retention failed');
    }
    if (removed > 0) this.opts.metrics.archivePruned.inc(removed);
    return removed;
  }

  /** A crash between write and rename leaves a temp file; it is never a snapshot, so drop it. */
  private async removeLeftoverTemps(): Promise<void> {
    try {
      for (const n of await fs.readdir(this.opts.config.dir)) {
        if (n.startsWith(TEMP_PREFIX)) await fs.rm(path.join(this.opts.config.dir, n), { force: true });
      }
    } catch {
      // the directory may not exist yet; the first snapshot creates it (or counts the failure)
    }
  }
}
