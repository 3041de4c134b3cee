import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkJpeg } from '@camrelay/common';
import { Archive, ArchiveFileHandle, ArchiveFs, ArchiveSchedule, ScheduleFactory, parseSnapshotName, snapshotName } from '../../src/archive';
import type { ArchiveConfig } from '../../src/config';
import { FrameStore } from '../../src/frame-store';
import { FakeClock } from '../../../test-support';
import { captureLog, jpeg, metricValue, testMetrics, until } from './support';

let dir: string;
let archive: Archive | undefined;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-archive-'));
});
afterEach(async () => {
  await archive?.stop();
  archive = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

const TIMEOUT_MS = 10_000;

interface MakeDeps {
  clock?: FakeClock;
  fs?: ArchiveFs;
  schedule?: ScheduleFactory;
}

function make(over: Partial<ArchiveConfig> = {}, now?: () => number, deps: MakeDeps = {}) {
  const store = new FrameStore(now);
  const metrics = testMetrics();
  const { log, lines } = captureLog();
  const clock = deps.clock ?? new FakeClock();
  archive = new Archive({
    config: { cron: undefined, dir, keep: 0, maxAgeHours: 0, maxFrameAgeMs: 10_000, writeTimeoutMs: TIMEOUT_MS, ...over },
    store,
    metrics,
    log,
    now: now ?? Date.now,
    clock,
    fs: deps.fs,
    schedule: deps.schedule,
  });
  return { store, metrics, lines, archive, clock };
}

/** A schedule the test fires by hand (stands in for node-cron). */
class ManualSchedule {
  tick: (() => Promise<void>) | undefined;
  cron: string | undefined;
  started = 0;
  stopped = 0;
  readonly factory: ScheduleFactory = (cron, tick): ArchiveSchedule => {
    this.cron = cron;
    this.tick = tick;
    return {
      start: () => {
        this.started++;
        return Promise.resolve();
      },
      stop: () => {
        this.stopped++;
        return Promise.resolve();
      },
    };
  };
  get running(): boolean {
    return this.started > this.stopped;
  }
  /** One scheduled run, as node-cron would do it; ignored when stopped. */
  async fire(): Promise<void> {
    if (this.running && this.tick) await this.tick();
  }
}

/**
 * node:fs/promises, except that while `hanging` every new operation (file handles included) blocks
 * until release(), like a disk that stopped answering. Counts operations in flight.
 */
class HangingFs implements ArchiveFs {
  hanging = false;
  /** only operations with these names hang (default: all) */
  only: Set<string> | undefined;
  inFlight = 0;
  maxInFlight = 0;
  started: string[] = [];
  private blocked: (() => void)[] = [];

  private run<T>(op: string, real: () => Promise<T>): Promise<T> {
    this.started.push(op);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = <V>(v: Promise<V>) =>
      v.finally(() => {
        this.inFlight--;
      });
    if (!this.hanging || (this.only && !this.only.has(op))) return done(real());
    return done(new Promise<void>((r) => this.blocked.push(r)).then(real));
  }
  /** The disk answers again: every blocked operation runs now. */
  release(): void {
    this.hanging = false;
    for (const r of this.blocked.splice(0)) r();
  }
  get blockedCount(): number {
    return this.blocked.length;
  }

  mkdir = (p: string) => this.run('mkdir', () => fsp.mkdir(p));
  rename = (a: string, b: string) => this.run('rename', () => fsp.rename(a, b));
  rm = (p: string, o: { force: boolean }) => this.run('rm', () => fsp.rm(p, o));
  readdir = (p: string) => this.run('readdir', () => fsp.readdir(p));
  access = (p: string) => this.run('access', () => fsp.access(p));
  open = (p: string, flags: string, mode: number): Promise<ArchiveFileHandle> =>
    this.run('open', async () => {
      const fh = await fsp.open(p, flags, mode);
      return {
        writeFile: (d: Buffer) => this.run('writeFile', () => fh.writeFile(d)),
        sync: () => this.run('sync', () => fh.sync()),
        close: () => this.run('close', () => fh.close()),
      };
    });
}

/** Lets promise callbacks run (no file I/O). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
/** Waits (real time) until the archive's real, local file operations got as far as the hung one. */
const blocked = (hfs: HangingFs) => until(() => hfs.blockedCount === 1, 5000, 'the hung operation');
/** Waits (real time) until the released operation and its clean-up have returned. */
const answered = (a: Archive) => until(() => !a.diskHung, 5000, 'the disk to answer');

const jpgs = () => fs.readdirSync(dir).filter((n) => n.endsWith('.jpg')).sort();

describe('snapshot names', () => {
  test('UTC ISO time without colons, and back', () => {
    const t = Date.UTC(2026, 10, 24, 12, 0, 0, 123);
    expect(snapshotName(t)).toBe('2026-11-24T12-00-00.123Z.jpg');
    expect(parseSnapshotName('2026-11-24T12-00-00.123Z.jpg')).toBe(t);
    expect(parseSnapshotName('2026-11-24T12-00-00.123Z-1.jpg')).toBe(t);
    expect(parseSnapshotName('notes.txt')).toBeUndefined();
    expect(parseSnapshotName('.tmp-1-2-2026-11-24T12-00-00.123Z.jpg')).toBeUndefined();
  });
});

describe('Archive', () => {
  test('writes the latest frame atomically under its capture time, leaving no temp file', async () => {
    const { store, metrics, archive } = make({ dir: path.join(dir, 'sub', 'dir') });
    const data = jpeg(1, 50_000);
    const f = store.publish(data);
    const r = await archive.snapshot();
    expect(r).toEqual({ saved: path.join(dir, 'sub', 'dir', snapshotName(f.capturedAt)), pruned: 0 });
    const files = fs.readdirSync(path.join(dir, 'sub', 'dir'));
    expect(files).toEqual([snapshotName(f.capturedAt)]);
    expect(fs.readFileSync(path.join(dir, 'sub', 'dir', files[0])).equals(data)).toBe(true);
    expect(await metricValue(metrics.archiveSnapshots)).toBe(1);
    expect(await metricValue(metrics.archiveLastSuccess)).toBeGreaterThan(0);
  });

  test('no frame, or a stale one, is counted as no_frame; the same frame is not saved twice', async () => {
    let now = 1_000_000;
    const { store, metrics, archive } = make({ maxFrameAgeMs: 1000 }, () => now);
    expect(await archive.snapshot()).toEqual({ skipped: 'no_frame' });
    store.publish(jpeg(1));
    expect(await archive.snapshot()).toMatchObject({ saved: expect.any(String) });
    expect(await archive.snapshot()).toEqual({ skipped: 'unchanged' });
    now += 5000;
    expect(await archive.snapshot()).toEqual({ skipped: 'no_frame' });
    expect(await metricValue(metrics.archiveErrors, { reason: 'no_frame' })).toBe(2);
    expect(jpgs()).toHaveLength(1);
  });

  test('retention by count keeps the newest', async () => {
    let now = Date.UTC(2026, 0, 1);
    const { store, metrics, archive } = make({ keep: 3 }, () => now);
    for (let i = 0; i < 6; i++) {
      store.publish(jpeg(i));
      await archive.snapshot();
      now += 1000;
    }
    expect(jpgs()).toEqual([3, 4, 5].map((i) => snapshotName(Date.UTC(2026, 0, 1) + i * 1000)));
    expect(await metricValue(metrics.archivePruned)).toBe(3);
  });

  test('retention by age deletes old snapshots and leaves other files alone', async () => {
    const now = Date.UTC(2026, 5, 1, 12);
    fs.writeFileSync(path.join(dir, snapshotName(now - 3 * 3_600_000)), jpeg(0));
    fs.writeFileSync(path.join(dir, snapshotName(now - 1.5 * 3_600_000)), jpeg(0));
    fs.writeFileSync(path.join(dir, snapshotName(now - 0.5 * 3_600_000)), jpeg(0));
    fs.writeFileSync(path.join(dir, 'README.txt'), 'mine');
    const { store, archive } = make({ maxAgeHours: 1 }, () => now);
    store.publish(jpeg(1));
    const r = await archive.snapshot();
    expect(r).toMatchObject({ pruned: 2 });
    expect(jpgs()).toEqual([snapshotName(now - 0.5 * 3_600_000), snapshotName(now)]);
    expect(fs.existsSync(path.join(dir, 'README.txt'))).toBe(true);
  });

  test('an unwritable directory is counted and logged once per minute, and the archive keeps going', async () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    let now = 1_000_000;
    const { store, metrics, archive, lines } = make({ dir: path.join(file, 'snapshots') }, () => now);
    for (let i = 0; i < 3; i++) {
      store.publish(jpeg(i));
      const r = await archive.snapshot();
      expect(r).toMatchObject({ skipped: 'write' });
      now += 1000;
    }
    expect(await metricValue(metrics.archiveErrors, { reason: 'write' })).toBe(3);
    expect(lines.filter((l) => l.msg === 'archive: cannot write snapshot')).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'archive: cannot write snapshot')).toMatchObject({ code: 'ENOTDIR' });
  });

  test('a write failure leaves no temp file behind', async () => {
    const { store, archive } = make();
    // a directory where the final name should go makes rename() fail after the temp file was written
    const f = store.publish(jpeg(1));
    fs.mkdirSync(path.join(dir, snapshotName(f.capturedAt)));
    for (let i = 1; i < 100; i++) fs.mkdirSync(path.join(dir, snapshotName(f.capturedAt).replace('.jpg', `-${i}.jpg`)));
    const r = await archive.snapshot();
    expect(r).toMatchObject({ skipped: 'write' });
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });

  test('retention by age still runs when the write fails (a full disk must be able to free itself)', async () => {
    const now = Date.UTC(2026, 5, 1, 12);
    fs.writeFileSync(path.join(dir, snapshotName(now - 3 * 3_600_000)), jpeg(0));
    fs.writeFileSync(path.join(dir, snapshotName(now - 0.5 * 3_600_000)), jpeg(0));
    const { store, metrics, archive } = make({ maxAgeHours: 1 }, () => now);
    const f = store.publish(jpeg(1));
    // the final names are taken by directories: the write fails like it would on ENOSPC
    fs.mkdirSync(path.join(dir, snapshotName(f.capturedAt)));
    for (let i = 1; i < 100; i++) fs.mkdirSync(path.join(dir, snapshotName(f.capturedAt).replace('.jpg', `-${i}.jpg`)));
    const r = await archive.snapshot();
    expect(r).toMatchObject({ skipped: 'write' });
    expect(await metricValue(metrics.archiveErrors, { reason: 'write' })).toBe(1);
    expect(await metricValue(metrics.archivePruned)).toBe(1);
    expect(fs.existsSync(path.join(dir, snapshotName(now - 3 * 3_600_000)))).toBe(false);
    expect(fs.existsSync(path.join(dir, snapshotName(now - 0.5 * 3_600_000)))).toBe(true);
  });

  test('runs on its schedule, removes leftover temp files before the first snapshot, stops cleanly', async () => {
    fs.writeFileSync(path.join(dir, '.tmp-999-1-x.jpg'), 'half');
    const sched = new ManualSchedule();
    let now = Date.UTC(2026, 0, 1);
    const { store, metrics, archive, lines } = make({ cron: '* * * * * *', keep: 2 }, () => now, { schedule: sched.factory });
    await archive.start();
    await archive.start(); // idempotent
    expect(sched.cron).toBe('* * * * * *');
    expect(sched.started).toBe(1);
    expect(lines.find((l) => l.msg === 'archive scheduled')).toMatchObject({ writeTimeoutMs: TIMEOUT_MS });
    // start() itself does no file I/O (a hung disk must not hold up the relay's start)
    expect(fs.existsSync(path.join(dir, '.tmp-999-1-x.jpg'))).toBe(true);
    for (let i = 0; i < 3; i++) {
      store.publish(jpeg(i, 2000));
      await sched.fire();
      now += 1000;
    }
    expect(fs.existsSync(path.join(dir, '.tmp-999-1-x.jpg'))).toBe(false);
    expect(jpgs()).toHaveLength(2);
    expect(await metricValue(metrics.archiveSnapshots)).toBe(3);
    expect(await metricValue(metrics.archivePruned)).toBe(1);
    for (const n of jpgs()) expect(checkJpeg(fs.readFileSync(path.join(dir, n))).ok).toBe(true);
    await archive.stop();
    expect(sched.running).toBe(false);
    store.publish(jpeg(9, 2000));
    await sched.fire();
    expect(await metricValue(metrics.archiveSnapshots)).toBe(3);
    await archive.stop(); // idempotent
    expect(sched.stopped).toBe(1);
  });

  test('a SNAPSHOT_DIR where directories cannot exist (/proc/...) fails with a clear error instead of spinning', async () => {
    const { store, metrics, archive, lines } = make({ dir: '/proc/camrelay-no-such-dir/snapshots' });
    store.publish(jpeg(1));
    const r = await archive.snapshot();
    expect(r).toMatchObject({ skipped: 'write', error: 'ENOENT' });
    expect(await metricValue(metrics.archiveErrors, { reason: 'write' })).toBe(1);
    expect(String(lines.find((l) => l.msg === 'archive: cannot write snapshot')?.error)).toMatch(/cannot create \/proc\/camrelay-no-such-dir: its parent \/proc exists but does not accept directories/);
  });

  test('creates missing levels of SNAPSHOT_DIR one at a time, and again after it was removed', async () => {
    const target = path.join(dir, 'a', 'b', 'c');
    const hfs = new HangingFs();
    const { store, archive } = make({ dir: target }, undefined, { fs: hfs });
    store.publish(jpeg(1));
    expect(await archive.snapshot()).toMatchObject({ saved: expect.any(String) });
    expect(hfs.started.filter((o) => o === 'mkdir')).toHaveLength(5); // c, b, a fail ENOENT ... then a, b, c
    store.publish(jpeg(2));
    expect(await archive.snapshot()).toMatchObject({ saved: expect.any(String) });
    expect(hfs.started.filter((o) => o === 'mkdir')).toHaveLength(5); // known to exist now
    fs.rmSync(path.join(dir, 'a'), { recursive: true });
    store.publish(jpeg(3));
    expect(await archive.snapshot()).toMatchObject({ skipped: 'write', error: 'ENOENT' });
    store.publish(jpeg(4));
    expect(await archive.snapshot()).toMatchObject({ saved: expect.any(String) });
    expect(fs.readdirSync(target)).toHaveLength(1);
  });
});

describe('Archive on a disk that stops answering (SNAPSHOT_WRITE_TIMEOUT_MS)', () => {
  for (const op of ['mkdir', 'open', 'writeFile', 'sync', 'rename']) {
    test(`a hung ${op}: counted as timeout, logged once, one operation outstanding at most, recovers by itself`, async () => {
      const hfs = new HangingFs();
      const sched = new ManualSchedule();
      const clock = new FakeClock();
      let now = Date.UTC(2026, 0, 1);
      const { store, metrics, archive, lines } = make({ cron: '*/5 * * * * *' }, () => now, { clock, fs: hfs, schedule: sched.factory });
      await archive.start();
      if (op !== 'mkdir') {
        // a first snapshot creates the directory; later ones do not mkdir again
        store.publish(jpeg(0));
        await sched.fire();
        expect(await metricValue(metrics.archiveSnapshots)).toBe(1);
      }
      hfs.only = new Set([op]);
      hfs.hanging = true;
      store.publish(jpeg(1));
      const first = sched.fire();
      await blocked(hfs);
      await clock.advanceAsync(TIMEOUT_MS - 1);
      expect(await metricValue(metrics.archiveErrors, { reason: 'timeout' })).toBe(0);
      await clock.advanceAsync(1);
      await first; // the scheduled run ends at the deadline, not when the disk answers
      expect(archive.diskHung).toBe(true);
      expect(await metricValue(metrics.archiveErrors, { reason: 'timeout' })).toBe(1);
      const opsAtHang = hfs.started.length;

      // the disk stays hung for ten more scheduled runs: each is counted, none starts an operation
      for (let i = 2; i < 12; i++) {
        now += 5000;
        store.publish(jpeg(i));
        await sched.fire();
        await clock.advanceAsync(5000);
      }
      expect(await metricValue(metrics.archiveErrors, { reason: 'timeout' })).toBe(11);
      expect(hfs.started.length).toBe(opsAtHang);
      expect(hfs.inFlight).toBe(1);
      expect(lines.filter((l) => l.msg === 'archive disk not answering: snapshots are skipped until it does')).toEqual([
        expect.objectContaining({ op: op === 'writeFile' ? 'write' : op === 'sync' ? 'fsync' : op, timeoutMs: TIMEOUT_MS, dir }),
      ]);
      expect(lines.filter((l) => l.msg === 'archive: cannot write snapshot')).toEqual([]);

      // the disk answers: the blocked operation returns, its leftovers are cleaned, snapshots resume
      hfs.release();
      await answered(archive);
      expect(hfs.inFlight).toBe(0);
      expect(lines.filter((l) => l.msg === 'archive disk answering again')).toHaveLength(1);
      now += 5000;
      const saved = await metricValue(metrics.archiveSnapshots);
      store.publish(jpeg(20));
      await sched.fire();
      expect(await metricValue(metrics.archiveSnapshots)).toBe(saved + 1);
      expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
      expect(hfs.maxInFlight).toBe(1);
      expect(await metricValue(metrics.archiveErrors, { reason: 'timeout' })).toBe(11);
      await archive.stop();
    });
  }

  test('a hung prune is counted as timeout like a hung write', async () => {
    const hfs = new HangingFs();
    const clock = new FakeClock();
    const now = Date.UTC(2026, 5, 1, 12);
    fs.writeFileSync(path.join(dir, snapshotName(now - 3 * 3_600_000)), jpeg(0));
    const { store, metrics, archive } = make({ maxAgeHours: 1 }, () => now, { clock, fs: hfs });
    hfs.only = new Set(['rm']);
    hfs.hanging = true;
    store.publish(jpeg(1));
    const p = archive.snapshot();
    await blocked(hfs);
    await clock.advanceAsync(TIMEOUT_MS);
    expect(await p).toMatchObject({ skipped: 'timeout' });
    expect(await metricValue(metrics.archiveErrors, { reason: 'timeout' })).toBe(1);
    expect(archive.diskHung).toBe(true);
    hfs.release();
    await answered(archive);
    expect(fs.existsSync(path.join(dir, snapshotName(now - 3 * 3_600_000)))).toBe(false);
  });

  test('stop() while the disk hangs returns at the deadline, not when the disk answers', async () => {
    const hfs = new HangingFs();
    const clock = new FakeClock();
    const sched = new ManualSchedule();
    const { store, archive } = make({ cron: '* * * * * *' }, undefined, { clock, fs: hfs, schedule: sched.factory });
    await archive.start();
    hfs.hanging = true;
    store.publish(jpeg(1));
    void sched.fire();
    await blocked(hfs);
    let stopped = false;
    const s = archive.stop().then(() => {
      stopped = true;
    });
    await flush();
    expect(stopped).toBe(false);
    await clock.advanceAsync(TIMEOUT_MS);
    await s;
    expect(stopped).toBe(true);
    expect(hfs.blockedCount).toBe(1);
    hfs.release();
    await answered(archive);
  });
});
