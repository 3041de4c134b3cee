import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkJpeg } from '@camrelay/common';
import { Archive, parseSnapshotName, snapshotName } from '../../src/archive';
import type { ArchiveConfig } from '../../src/config';
import { FrameStore } from '../../src/frame-store';
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

function make(over: Partial<ArchiveConfig> = {}, now?: () => number) {
  const store = new FrameStore(now);
  const metrics = testMetrics();
  const { log, lines } = captureLog();
  archive = new Archive({ config: { cron: undefined, dir, keep: 0, maxAgeHours: 0, maxFrameAgeMs: 10_000, ...over }, store, metrics, log, now });
  return { store, metrics, lines, archive };
}

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

  test('runs on its cron schedule, removes leftover temp files at start, stops cleanly', async () => {
    fs.writeFileSync(path.join(dir, '.tmp-999-1-x.jpg'), 'half');
    const { store, metrics, archive } = make({ cron: '* * * * * *', keep: 2 });
    const timer = setInterval(() => store.publish(jpeg(1, 2000)), 100);
    try {
      await archive.start();
      expect(fs.existsSync(path.join(dir, '.tmp-999-1-x.jpg'))).toBe(false);
      await until(() => jpgs().length >= 2, 5000, 'two snapshots');
      await until(async () => (await metricValue(metrics.archivePruned)) >= 1, 5000, 'a prune');
      expect(jpgs()).toHaveLength(2);
      for (const n of jpgs()) expect(checkJpeg(fs.readFileSync(path.join(dir, n))).ok).toBe(true);
    } finally {
      clearInterval(timer);
    }
    await archive.stop();
    const count = await metricValue(metrics.archiveSnapshots);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await metricValue(metrics.archiveSnapshots)).toBe(count);
    await archive.stop();
  });
});
