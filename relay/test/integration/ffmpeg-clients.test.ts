/**
 * A client no one here wrote: Debian `ffmpeg`/`ffprobe` (what Home Assistant's generic camera uses)
 * reads every camera's MJPEG stream and snapshot from a real relay process, with basic auth in the
 * URL for a private camera, and `?fps=N` on the stream.
 * - the single-camera relay (no CAMERAS_FILE): the seed paths /stream.mjpg and /snapshot.jpg;
 * - the multi-camera relay with a CAMERAS_FILE: front (public) and garden (private), each a fake
 *   camera, at /cam/<name>/stream.mjpg and /cam/<name>/snapshot.jpg.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { closedPort, describeWith, findExecutable, killAllChildren, startCamera, startRelay, type RelayProc } from '../../../test-support';

const FFMPEG = findExecutable(['/usr/bin/ffmpeg']);
const FFPROBE = findExecutable(['/usr/bin/ffprobe']);
const USER = 'viewer';
const PASSWORD = 'ffmpeg-test-pass';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Decodes `frames` video frames from `url` with ffmpeg; the per-frame MD5s of the decoded pictures. */
async function decodeFrames(url: string, frames: number): Promise<{ run: Run; md5s: string[] }> {
  const r = await run(FFMPEG as string, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', url, '-frames:v', String(frames), '-f', 'framemd5', '-']);
  const md5s = r.stdout.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(',').pop()?.trim() ?? '');
  return { run: r, md5s };
}

/** What ffprobe sees at `url`: codec and size of the first video stream. */
async function probe(url: string): Promise<{ run: Run; stream?: { codec_name: string; width: number; height: number } }> {
  const r = await run(FFPROBE as string, ['-hide_banner', '-loglevel', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', url]);
  if (r.code !== 0) return { run: r };
  return { run: r, stream: (JSON.parse(r.stdout) as { streams: { codec_name: string; width: number; height: number }[] }).streams[0] };
}

async function expectStream(url: string): Promise<void> {
  const { run: r, md5s } = await decodeFrames(url, 5);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(md5s).toHaveLength(5);
  // live pictures: they change from frame to frame
  expect(new Set(md5s).size).toBeGreaterThan(1);
}

async function expectSnapshot(url: string): Promise<void> {
  const p = await probe(url);
  expect(p.run.stderr).toBe('');
  expect(p.stream).toEqual({ codec_name: 'mjpeg', width: 320, height: 240 });
  const { run: r, md5s } = await decodeFrames(url, 1);
  expect(r.code).toBe(0);
  expect(md5s).toHaveLength(1);
}

const camArgs = ['--width', '320', '--height', '240'];

describeWith('ffmpeg', FFMPEG !== undefined && FFPROBE !== undefined, 'ffmpeg as a client of the single-camera relay', () => {
  let relay: RelayProc;
  let base: string;

  beforeAll(async () => {
    const cam = await startCamera(camArgs);
    relay = await startRelay({ CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), MAX_FPS: '10', VIEWER_USER: USER, VIEWER_PASSWORD: PASSWORD });
    base = `http://${USER}:${PASSWORD}@127.0.0.1:${relay.httpPort}`;
  }, 30_000);

  afterAll(() => killAllChildren());

  test('reads /stream.mjpg and /snapshot.jpg with basic auth in the URL', async () => {
    await expectStream(`${base}/stream.mjpg`);
    await expectSnapshot(`${base}/snapshot.jpg`);
  }, 60_000);

  test('without credentials ffmpeg is refused', async () => {
    const { run: r, md5s } = await decodeFrames(`http://127.0.0.1:${relay.httpPort}/stream.mjpg`, 1);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/401/);
    expect(md5s).toEqual([]);
  }, 30_000);
});

describeWith('ffmpeg', FFMPEG !== undefined && FFPROBE !== undefined, 'ffmpeg as a client of every camera of the multi-camera relay', () => {
  let relay: RelayProc;
  let dir: string;
  let port: number;
  const authed = () => `http://${USER}:${PASSWORD}@127.0.0.1:${port}`;
  const anon = () => `http://127.0.0.1:${port}`;

  beforeAll(async () => {
    const [front, garden] = await Promise.all([startCamera(camArgs), startCamera(camArgs)]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-ffmpeg-'));
    const file = path.join(dir, 'cameras.yml');
    fs.writeFileSync(file, [
      'cameras:',
      '  front:',
      '    host: 127.0.0.1',
      `    port: ${front.port}`,
      `    raw_port: ${await closedPort()}`,
      '    public: true',
      '  garden:',
      '    host: 127.0.0.1',
      `    port: ${garden.port}`,
      `    raw_port: ${await closedPort()}`,
      '',
    ].join('\n'));
    relay = await startRelay({ CAMERAS_FILE: file, VIEWER_USER: USER, VIEWER_PASSWORD: PASSWORD, MAX_FPS: '10' });
    port = relay.httpPort;
  }, 30_000);

  afterAll(async () => {
    await killAllChildren();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test.each(['front', 'garden'])('reads camera %s: stream.mjpg and snapshot.jpg under /cam/<name>/ (basic auth in the URL)', async (name) => {
    await expectStream(`${authed()}/cam/${name}/stream.mjpg`);
    await expectSnapshot(`${authed()}/cam/${name}/snapshot.jpg`);
  }, 60_000);

  test('the public camera needs no credentials; the private one is refused without them', async () => {
    await expectStream(`${anon()}/cam/front/stream.mjpg`);
    await expectSnapshot(`${anon()}/cam/front/snapshot.jpg`);
    for (const p of ['stream.mjpg', 'snapshot.jpg']) {
      const { run: r, md5s } = await decodeFrames(`${anon()}/cam/garden/${p}`, 1);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/401/);
      expect(md5s).toEqual([]);
    }
  }, 60_000);

  test('the seed path /stream.mjpg serves the first camera', async () => {
    await expectStream(`${authed()}/stream.mjpg`);
  }, 60_000);

  test('?fps=2 caps the rate ffmpeg receives; an invalid ?fps= is refused', async () => {
    // 6 frames at most 2 fps take well over 2 s; at the camera's 10 fps they would take ~0.6 s
    const t0 = Date.now();
    const { run: r, md5s } = await decodeFrames(`${authed()}/cam/garden/stream.mjpg?fps=2`, 6);
    expect(r.code).toBe(0);
    expect(md5s).toHaveLength(6);
    expect(Date.now() - t0).toBeGreaterThan(1500);
    const bad = await decodeFrames(`${authed()}/cam/garden/stream.mjpg?fps=0`, 1);
    expect(bad.run.code).not.toBe(0);
    expect(bad.run.stderr).toMatch(/400/);
  }, 60_000);
});
