/**
 * The seed's three tests and the relay's promises, with the fake camera and the relay as child
 * processes on loopback.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { checkJpeg } from '@camrelay/common';
import { frameSeqOf } from '../../../fake-camera/src/frames';
import { killAllChildren, rawFetch, ROOT, sleep, startCamera, startRelay, waitFor } from '../../../test-support';

jest.setTimeout(60_000);
afterEach(() => killAllChildren());

const whole = (b: Buffer) => checkJpeg(b).ok;

describe('seed tests', () => {
  test('Test 1: a direct fetch from the (fake) camera yields one whole JPEG', async () => {
    const cam = await startCamera();
    const r = await rawFetch(cam.port);
    expect(r.error).toBeUndefined();
    expect(whole(r.data)).toBe(true);
    expect(frameSeqOf(r.data)).toBeGreaterThan(0);
  });

  test('Test 2: a fetch through the relay (seed flags) yields a whole JPEG from the camera', async () => {
    const cam = await startCamera();
    const relay = await startRelay({}, ['--esp32-host', '127.0.0.1', '--esp32-port', String(cam.port), '--client-port', '0']);
    const r = await rawFetch(relay.clientPort);
    expect(r.error).toBeUndefined();
    expect(whole(r.data)).toBe(true);
    expect(frameSeqOf(r.data)).toBeGreaterThan(0);
    const started = relay.child.logs().find((l) => l.msg === 'relay started')!;
    expect(started).toMatchObject({ mode: 'pull', cameraHost: '127.0.0.1', cameraPort: cam.port });
    for (const k of ['clientPort', 'httpPort', 'metricsPort']) expect(started[k]).toBeGreaterThan(0);
  });

  test('Test 3: clients connecting at once get the SAME frame', async () => {
    const cam = await startCamera(['--capture-ms', '300']);
    // Nothing fetched while idle and no frame counts as fresh: every client waits for the next fetch.
    const relay = await startRelay({ CAMERA_PORT: String(cam.port), CAMERA_HOST: '127.0.0.1', IDLE_FPS: '0', MAX_FRAME_AGE_MS: '0', STALE_AFTER_IDLE_MS: '0' });
    const results = await Promise.all(Array.from({ length: 20 }, () => rawFetch(relay.clientPort)));
    for (const r of results) expect(whole(r.data)).toBe(true);
    const seqs = new Set(results.map((r) => frameSeqOf(r.data)));
    expect(seqs.size).toBe(1);
    expect((await cam.stats()).connections).toBe(1);
  });
});

describe('fan-out', () => {
  test('200 concurrent raw clients cost the camera no more fetches than one client', async () => {
    const cam = await startCamera(['--capture-ms', '30']);
    // MAX_FRAME_AGE_MS=0: every client waits for a NEW frame, so the relay fetches at MAX_FPS while anyone watches.
    const relay = await startRelay({ CAMERA_PORT: String(cam.port), CAMERA_HOST: '127.0.0.1', MAX_CLIENTS_PER_IP: '1000', MAX_FPS: '10', MAX_FRAME_AGE_MS: '0' });
    await waitFor(async () => (await relay.metric('relay_frames_total')) >= 1, 10_000, 'first frame');
    const phase = async (clients: number, ms: number) => {
      const before = (await cam.stats()).connections;
      const end = Date.now() + ms;
      let frames = 0;
      let bad = 0;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (Date.now() < end) {
            const r = await rawFetch(relay.clientPort);
            if (whole(r.data)) frames++;
            else bad++;
          }
        }),
      );
      return { fetches: (await cam.stats()).connections - before, frames, bad };
    };
    const one = await phase(1, 2000);
    const many = await phase(200, 2000);
    expect(one.bad).toBe(0);
    expect(many.bad).toBe(0);
    // one client gets one new frame per fetch; 200 clients share each fetch
    expect(one.frames).toBeGreaterThanOrEqual(one.fetches - 2);
    expect(many.frames).toBeGreaterThan(one.frames * 20);
    // MAX_FPS=10 over 2 s: about 20 camera fetches however many clients there are
    expect(one.fetches).toBeGreaterThanOrEqual(10);
    expect(many.fetches).toBeLessThanOrEqual(one.fetches + 3);
  });
});

describe('polling clients', () => {
  test('raw clients polling the cached frame get newer frames at MAX_FPS pace, not IDLE_FPS', async () => {
    const cam = await startCamera();
    // defaults that matter: IDLE_FPS=1, MAX_FRAME_AGE_MS=1000 (so every poll below is served from cache)
    const relay = await startRelay({ CAMERA_PORT: String(cam.port), CAMERA_HOST: '127.0.0.1', MAX_FPS: '10' });
    await waitFor(async () => whole((await rawFetch(relay.clientPort)).data), 10_000, 'first frame');
    const seen = new Set<number>();
    const end = Date.now() + 2000;
    while (Date.now() < end) {
      const r = await rawFetch(relay.clientPort);
      expect(whole(r.data)).toBe(true);
      seen.add(frameSeqOf(r.data) ?? -1);
      await sleep(50); // a polling client: the spacing between polls is the scenario
    }
    // at IDLE_FPS=1 this was 2-3 distinct frames; each poll now earns the next fetch (MAX_FPS 10 caps it)
    expect(seen.size).toBeGreaterThanOrEqual(8);
    expect(await relay.metric('relay_frames_total')).toBeLessThanOrEqual(2 * 10 + 5);
    expect(await relay.metric('relay_clients_rejected_total', { reason: 'max_clients' })).toBe(0);
  });
});

describe('test client', () => {
  test('fetches N frames through the relay, verifies and saves them, prints rate and latency', async () => {
    const cam = await startCamera();
    const relay = await startRelay({ CAMERA_PORT: String(cam.port), CAMERA_HOST: '127.0.0.1' });
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-client-'));
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'client/dist/client.js'), '--host', '127.0.0.1', '--port', String(relay.clientPort), '--frames', '12', '--concurrency', '3', '--out', out], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/12\/12 whole frames from 127\.0\.0\.1:\d+ in [\d.]+ s: [\d.]+ frames\/s, latency p50 [\d.]+ ms p99 [\d.]+ ms/);
      const files = fs.readdirSync(out);
      expect(files).toHaveLength(12);
      for (const f of files) expect(whole(fs.readFileSync(path.join(out, f)))).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  test('exits non-zero when a frame is not whole', async () => {
    const cam = await startCamera(['--mode', 'truncated']);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'client/dist/client.js'), '--host', '127.0.0.1', '--port', String(cam.port), '--frames', '2'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('BAD (truncated');
    expect(r.stdout).toContain('0/2 whole frames');
  });

  test('an --out it cannot write to is a one-line error with exit 2, not a stack trace', async () => {
    const cam = await startCamera();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'relay-client-')), 'a-file');
    fs.writeFileSync(file, 'x');
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'client/dist/client.js'), '--host', '127.0.0.1', '--port', String(cam.port), '--frames', '1', '--out', path.join(file, 'frames')], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^camrelay-client: ENOTDIR: not a directory, mkdir '.*frames'\n$/);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});

describe('push mode', () => {
  test('a camera that connects out delivers frames that raw clients receive unchanged', async () => {
    const cam = await startCamera();
    const frame = (await rawFetch(cam.port)).data;
    expect(whole(frame)).toBe(true);
    const relay = await startRelay({ CAMERA_MODE: 'push', CLIENT_WAIT_TIMEOUT_MS: '5000', MAX_FRAME_AGE_MS: '0' });
    expect(relay.ingestPort).toBeGreaterThan(0);
    const waiting = rawFetch(relay.clientPort);
    await waitFor(async () => (await relay.metric('relay_clients', { protocol: 'raw' })) === 1, 5000, 'client waiting');
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: relay.ingestPort! }, () => s.end(frame));
      s.on('error', reject);
      s.on('close', () => resolve());
      s.resume();
    });
    const got = await waiting;
    expect(got.data.equals(frame)).toBe(true);
    expect(await relay.metric('relay_frames_total')).toBe(1);
    expect(await relay.metric('relay_camera_up')).toBe(1);
    expect(await relay.metric('relay_build_info', { mode: 'push' })).toBe(1);
  });
});

describe('archive', () => {
  test("SNAPSHOT_CRON='* * * * * *' writes whole files atomically and prunes to SNAPSHOT_KEEP", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-archive-'));
    try {
      const cam = await startCamera();
      const relay = await startRelay({ CAMERA_PORT: String(cam.port), CAMERA_HOST: '127.0.0.1', IDLE_FPS: '5', SNAPSHOT_CRON: '* * * * * *', SNAPSHOT_DIR: dir, SNAPSHOT_KEEP: '2' });
      await waitFor(async () => (await relay.metric('relay_archive_pruned_total')) >= 2, 15_000, 'two prunes');
      const names = fs.readdirSync(dir);
      expect(names.filter((n) => n.startsWith('.tmp-'))).toEqual([]);
      const jpgs = names.filter((n) => /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z(-\d+)?\.jpg$/.test(n));
      expect(jpgs.length).toBeGreaterThanOrEqual(1);
      expect(jpgs.length).toBeLessThanOrEqual(3); // 2 kept, plus possibly one written between prune and readdir
      for (const n of jpgs) {
        const data = fs.readFileSync(path.join(dir, n));
        expect(whole(data)).toBe(true);
        expect(frameSeqOf(data)).toBeGreaterThan(0);
      }
      expect(await relay.metric('relay_archive_snapshots_total')).toBeGreaterThanOrEqual(4);
      expect(await relay.metric('relay_archive_errors_total', { reason: 'write' })).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('process', () => {
  test('--help prints usage and every variable, exit 0', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'relay/dist/main.js'), '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--esp32-host');
    expect(r.stdout).toContain('SNAPSHOT_CRON');
  });

  test.each([
    [['--esp32-port', 'abc'], {}, /invalid --esp32-port="abc": expected an integer from 1 to 65535/],
    [['--nope'], {}, /unknown argument "--nope"/],
    [[], { CAMERA_MODE: 'pushh' }, /invalid CAMERA_MODE="pushh": expected one of pull, push/],
    [[], { MAX_FPS: '-1' }, /invalid MAX_FPS="-1"/],
  ])('bad config %j %j exits 2 with a clear message', (args, env, msg) => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'relay/dist/main.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
  });

  test('SIGTERM with clients connected exits 0 promptly and logs the shutdown', async () => {
    const cam = await startCamera(['--mode', 'hang-accept']);
    const relay = await startRelay({ CAMERA_PORT: String(cam.port), CAMERA_HOST: '127.0.0.1', CLIENT_WAIT_TIMEOUT_MS: '60000', CAMERA_IDLE_TIMEOUT_MS: '60000', CAMERA_DEADLINE_MS: '60000', SHUTDOWN_GRACE_MS: '1000' });
    const clients = Array.from({ length: 20 }, () => rawFetch(relay.clientPort, '127.0.0.1', 30_000));
    await waitFor(async () => (await relay.metric('relay_clients', { protocol: 'raw' })) === 20, 5000, '20 waiting clients');
    const viewer = fetch(`http://127.0.0.1:${relay.httpPort}/stream.mjpg`).then(async (r) => {
      await r.arrayBuffer().catch(() => undefined);
    }).catch(() => undefined);
    await waitFor(async () => (await relay.metric('relay_clients', { protocol: 'mjpeg' })) === 1, 5000, 'the stream viewer connected');
    const t0 = Date.now();
    relay.child.proc.kill('SIGTERM');
    const exit = await relay.child.exited;
    const took = Date.now() - t0;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(took).toBeLessThan(5000);
    const results = await Promise.all(clients);
    for (const r of results) expect(r.data.length).toBe(0); // cut, never a partial frame
    await viewer;
    const msgs = relay.child.logs().map((l) => l.msg);
    expect(msgs).toContain('shutting down');
    expect(msgs[msgs.length - 1]).toBe('stopped');
  });
});
