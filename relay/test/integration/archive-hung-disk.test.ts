/**
 * A disk under SNAPSHOT_DIR that stops answering, for real: the relay daemon archives every second onto
 * a small FUSE filesystem (test-support/hangfs.py) whose operations block in the kernel while a flag
 * file exists. While it hangs the relay must keep fetching the camera (by host name, so dns.lookup needs
 * a libuv pool thread too) and serving clients, count relay_archive_errors_total{reason="timeout"} for
 * the missed deadline and every skipped snapshot, stay idle (no spinning), and resume archiving by
 * itself once the disk answers again.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, ROOT, describeWith, findExecutable, killAllChildren, rawFetch, spawnChild, waitFor } from '../../../test-support';
import { CameraProc, RelayProc, startCamera, startRelay } from './relay-fixture';

jest.setTimeout(90_000);

const PYTHON = '/usr/bin/python3';
const HANGFS = path.join(ROOT, 'test-support', 'hangfs.py');
const FUSERMOUNT = findExecutable(['/usr/bin/fusermount3', '/bin/fusermount3', '/usr/bin/fusermount', '/bin/fusermount']);

function fuseAvailable(): boolean {
  if (process.getuid?.() !== 0 || FUSERMOUNT === undefined || findExecutable([PYTHON]) === undefined) return false;
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return false;
  }
  return spawnSync(PYTHON, ['-c', 'import fusepy'], { stdio: 'ignore' }).status === 0;
}
const FUSE_COMPONENT = 'FUSE (/dev/fuse, root, fuse3, python3-fusepy)';
const present = fuseAvailable();

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
const CLK_TCK = present ? Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) : 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeWith(FUSE_COMPONENT, present, 'archive on a disk that stops answering (real FUSE mount)', () => {
  let base: string;
  let backing: string;
  let mnt: string;
  let flag: string;
  let hangfs: Child;
  let cam: CameraProc;
  let relay: RelayProc;
  const snapshotFiles = () => fs.readdirSync(path.join(backing, 'snapshots')).filter((n) => n.endsWith('.jpg'));
  const m = (name: string, labels?: Record<string, string>) => relay.metric(name, labels);
  const logCount = (msg: string) => relay.child.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg)).length;

  beforeAll(async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-hangfs-'));
    backing = path.join(base, 'backing');
    mnt = path.join(base, 'mnt');
    flag = path.join(base, 'hang'); // outside the mount
    fs.mkdirSync(backing);
    fs.mkdirSync(mnt);
    hangfs = spawnChild(PYTHON, [HANGFS, backing, mnt, flag]);
    await waitFor(() => hangfs.stdout().includes('hangfs: mounted'), 10_000, `hangfs mount (stderr: ${hangfs.stderr()})`);
    cam = await startCamera();
    relay = await startRelay({
      // a host name: every fetch resolves it with dns.lookup, which needs a libuv pool thread
      CAMERA_HOST: 'localhost',
      CAMERA_PORT: String(cam.port),
      IDLE_FPS: '10', // fetch steadily even with nobody watching
      SNAPSHOT_CRON: '* * * * * *',
      SNAPSHOT_DIR: path.join(mnt, 'snapshots'),
      SNAPSHOT_WRITE_TIMEOUT_MS: '500',
      SNAPSHOT_MAX_FRAME_AGE_MS: '5000',
    });
  });

  afterAll(async () => {
    // Unhang first: a process blocked in a FUSE request only dies once the request returns.
    if (flag) fs.rmSync(flag, { force: true });
    await killAllChildren(); // relay, camera and hangfs (its death aborts the FUSE connection)
    if (mnt) {
      if (spawnSync(FUSERMOUNT as string, ['-u', mnt], { stdio: 'ignore' }).status !== 0) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
    }
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  test('archives onto the FUSE mount while it answers', async () => {
    await waitFor(async () => (await m('relay_archive_snapshots_total')) >= 2, 15_000, 'two snapshots');
    expect(snapshotFiles().length).toBeGreaterThanOrEqual(2);
    expect(await m('relay_archive_errors_total', { reason: 'timeout' })).toBe(0);
  });

  test('while the disk hangs: timeouts counted, one log line, camera fetched, clients served, CPU idle', async () => {
    fs.writeFileSync(flag, '');
    await waitFor(async () => (await m('relay_archive_errors_total', { reason: 'timeout' })) >= 1, 10_000, 'the first timeout');
    const savedAtHang = await m('relay_archive_snapshots_total');
    const framesAtHang = await m('relay_frames_total');
    const cpu0 = cpuSeconds(relay.child.proc.pid as number);
    const t0 = Date.now();

    // the skipped scheduled snapshots are counted too (one a second)
    const timeouts0 = await m('relay_archive_errors_total', { reason: 'timeout' });
    await waitFor(async () => (await m('relay_archive_errors_total', { reason: 'timeout' })) >= timeouts0 + 3, 10_000, 'three more skipped snapshots');

    // clients still get fresh frames, and the camera is still fetched by name
    for (let i = 0; i < 5; i++) {
      const r = await rawFetch(relay.clientPort, '127.0.0.1', 5000);
      expect(r.error).toBeUndefined();
      expect(r.data.subarray(0, 2).equals(Buffer.from([0xff, 0xd8]))).toBe(true);
    }
    await sleep(1000);
    expect(await m('relay_frames_total')).toBeGreaterThan(framesAtHang + 10);
    expect(await m('relay_camera_up')).toBe(1);
    expect(await m('relay_archive_snapshots_total')).toBe(savedAtHang);

    // not spinning: far less than a core over the hang (a spinning mkdir or retry loop would use ~100 %)
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(relay.child.proc.pid as number) - cpu0;
    expect({ cpuShare: cpu / wall < 0.5, cpu, wall }).toMatchObject({ cpuShare: true });

    expect(logCount('archive disk not answering')).toBe(1);
    expect(logCount('archive disk answering again')).toBe(0);
  });

  test('when the disk answers again, snapshots resume by themselves and timeouts stop', async () => {
    const saved = await m('relay_archive_snapshots_total');
    const files = snapshotFiles().length;
    fs.rmSync(flag, { force: true });
    await relay.child.waitForLog((l) => l.msg === 'archive disk answering again', 10_000);
    await waitFor(async () => (await m('relay_archive_snapshots_total')) >= saved + 2, 10_000, 'two snapshots after the hang');
    expect(snapshotFiles().length).toBeGreaterThanOrEqual(files + 2);
    // the temp file of the write that hung was removed once the disk answered
    expect(fs.readdirSync(path.join(backing, 'snapshots')).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    const timeouts = await m('relay_archive_errors_total', { reason: 'timeout' });
    await sleep(2000);
    expect(await m('relay_archive_errors_total', { reason: 'timeout' })).toBe(timeouts);
    expect(logCount('archive disk not answering')).toBe(1);
    expect(logCount('archive disk answering again')).toBe(1);
  });
});
