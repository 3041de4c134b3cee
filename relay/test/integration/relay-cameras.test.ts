/**
 * Several cameras in one relay (CAMERAS_FILE), real loopback sockets: isolation (a hanging and a
 * garbage camera do not slow a healthy one), per-camera raw ports, /cam/<name>/ and seed paths,
 * access (public / private / unknown), metrics with the camera label, per-camera archive dirs.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkJpeg } from '@camrelay/common';
import {
  Behaviour, FAST_ENV, frameNo, freePorts, jpeg, MultiRelay, openStream, rawFetch, request, sleep, spawnPackage, startMultiRelay, startRelay, TestCamera, waitFor,
} from '../../../test-support';

/** a healthy camera whose frames are `size` bytes (tells cameras apart) */
const sized = (size: number): Behaviour => (s, n) => s.end(jpeg(n, size));
/** accepts and never sends: every fetch ends in the idle timeout */
const hang: Behaviour = () => undefined;
const garbage: Behaviour = (s) => s.end(Buffer.from('this is not a jpeg at all'));

jest.setTimeout(30_000);

const cams: TestCamera[] = [];
async function camera(b: Behaviour): Promise<TestCamera> {
  const c = new TestCamera(b);
  await c.start();
  cams.push(c);
  return c;
}
let relay: MultiRelay | undefined;
afterEach(async () => {
  await relay?.stop();
  relay = undefined;
  await Promise.all(cams.splice(0).map((c) => c.stop()));
});

const entry = (name: string, cam: TestCamera, rawPort: number, extra = '') =>
  `  ${name}:\n    host: 127.0.0.1\n    port: ${cam.port}\n    raw_port: ${rawPort}\n${extra}`;

describe('relay with several cameras', () => {
  test('a hanging and a garbage camera leave the healthy one at its fetch rate; each camera has its own outlets', async () => {
    const [front, garden, printer] = [await camera(sized(100)), await camera(hang), await camera(garbage)];
    const raw = await freePorts(3);
    relay = await startMultiRelay(
      `cameras:\n${entry('front', front, raw[0])}${entry('garden', garden, raw[1])}${entry('printer', printer, raw[2])}`,
      { MAX_FPS: '10', IDLE_FPS: '10', STALE_AFTER_IDLE_MS: '0', CAMERA_IDLE_TIMEOUT_MS: '300', CAMERA_DEADLINE_MS: '1000' },
    );
    const r = relay;
    expect(r.ports.cameras.map((c) => [c.name, c.rawPort])).toEqual([['front', raw[0]], ['garden', raw[1]], ['printer', raw[2]]]);
    await waitFor(async () => (await r.metric('relay_camera_up', { camera: 'front' })) === 1, 5000, 'front up');
    await waitFor(async () => (await r.metric('relay_fetch_errors_total', { camera: 'garden', reason: 'idle_timeout' })) >= 2, 5000, 'garden timing out');
    await waitFor(async () => (await r.metric('relay_fetch_errors_total', { camera: 'printer', reason: 'not_jpeg' })) >= 2, 5000, 'printer failing');

    // isolation: over 2 s the healthy camera keeps (most of) its 10 fps while the others fail
    const f0 = await r.metric('relay_frames_total', { camera: 'front' });
    await sleep(2000);
    const f1 = await r.metric('relay_frames_total', { camera: 'front' });
    expect(f1 - f0).toBeGreaterThanOrEqual(14);
    expect(await r.metric('relay_camera_up', { camera: 'garden' })).toBe(0);
    expect(await r.metric('relay_frames_total', { camera: 'garden' })).toBe(0);
    expect(await r.metric('relay_fetch_errors_total', { camera: 'front', reason: 'idle_timeout' })).toBe(0);

    // raw TCP per camera: front serves its frames; garden has none to give (the client waits, then is closed)
    const got = await rawFetch(raw[0]);
    expect(checkJpeg(got.data).ok).toBe(true);
    expect(got.data.length).toBe(100);
    const none = await rawFetch(raw[1]);
    expect(none.data.length).toBe(0);

    // HTTP per camera and the seed paths (first camera)
    const snap = await request(`${r.base}/cam/front/snapshot.jpg`);
    expect(snap.status).toBe(200);
    expect(snap.body.length).toBe(100);
    const seed = await request(`${r.base}/snapshot.jpg`);
    expect(seed.status).toBe(200);
    expect(seed.body.length).toBe(100);
    const stream = await openStream(`${r.base}/cam/front/stream.mjpg`);
    try {
      expect(stream.status).toBe(200);
      await waitFor(() => stream.reader.parts.length >= 3, 5000, 'three MJPEG parts');
      expect(stream.reader.parts.every((p) => p.body.length === 100)).toBe(true);
    } finally {
      stream.close();
    }
    expect((await request(`${r.base}/cam/garden/snapshot.jpg`)).status).toBe(503);
    const redirect = await request(`${r.base}/cam/front?x=1`);
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/cam/front/?x=1');
    const page = await request(`${r.base}/cam/front/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect((await request(`${r.base}/cam/front/viewer.js`)).status).toBe(200);
    expect((await request(`${r.base}/cam/nope/snapshot.jpg`)).status).toBe(404); // no credentials configured: open, unknown = 404

    // status: every camera; one camera's own; readiness lists each
    const status = JSON.parse((await request(`${r.base}/status.json`)).body.toString()) as { cameras: { name: string; up: boolean; frame: unknown }[] };
    expect(status.cameras.map((c) => [c.name, c.up])).toEqual([['front', true], ['garden', false], ['printer', false]]);
    const one = JSON.parse((await request(`${r.base}/cam/printer/status.json`)).body.toString()) as Record<string, unknown>;
    expect(one).toMatchObject({ name: 'printer', up: false, cameraUp: false, lastErrorReason: 'not_jpeg', frame: null });
    const ready = await request(`${r.base}/readyz`);
    expect(ready.status).toBe(503);
    const rb = JSON.parse(ready.body.toString()) as { ready: boolean; cameras: { name: string; ready: boolean }[] };
    expect(rb.cameras.map((c) => [c.name, c.ready])).toEqual([['front', true], ['garden', false], ['printer', false]]);

    // metrics: the camera label on per-camera families, none on relay-wide ones
    const text = await r.metricsText();
    expect(text).toMatch(/^relay_frames_served_total\{camera="front",protocol="mjpeg"\} [1-9]/m);
    expect(text).toMatch(/^relay_delivery_latency_seconds_count\{camera="front",protocol="raw"\} 1$/m);
    expect(text).toMatch(/^relay_client_connections_total\{protocol="raw"\} [1-9]/m);
    expect(text).toMatch(/^relay_cameras 3$/m);
    expect(text).toMatch(/^relay_frame_age_seconds\{camera="garden"\} \+Inf$/m);
  });

  test('access: public cameras are open, private and unknown ones give the same 401, unknown is 404 with credentials', async () => {
    const [a, b] = [await camera(sized(100)), await camera(sized(200))];
    const raw = await freePorts(2);
    relay = await startMultiRelay(`cameras:\n${entry('pub', a, raw[0], '    public: true\n')}${entry('priv', b, raw[1])}`, { VIEWER_TOKEN: 'secret-token-123' });
    const r = relay;
    await waitFor(async () => (await r.metric('relay_camera_up', { camera: 'priv' })) === 1 && (await r.metric('relay_camera_up', { camera: 'pub' })) === 1, 5000, 'both up');
    const tok = '?token=secret-token-123';
    expect((await request(`${r.base}/cam/pub/snapshot.jpg`)).status).toBe(200);
    const priv = await request(`${r.base}/cam/priv/snapshot.jpg`);
    const unknown = await request(`${r.base}/cam/nope/snapshot.jpg`);
    expect(priv.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(unknown.body.equals(priv.body)).toBe(true);
    expect(unknown.headers['www-authenticate']).toEqual(priv.headers['www-authenticate']);
    expect((await request(`${r.base}/cam/nope/status.json`)).status).toBe(401);
    expect((await request(`${r.base}/cam/priv/snapshot.jpg${tok}`)).status).toBe(200);
    expect((await request(`${r.base}/cam/nope/snapshot.jpg${tok}`)).status).toBe(404);
    // the first camera (seed paths) is public here
    expect((await request(`${r.base}/snapshot.jpg`)).body.length).toBe(100);
    // the overview and status without credentials: only the public camera
    expect((await request(`${r.base}/`)).status).toBe(200);
    const open = JSON.parse((await request(`${r.base}/status.json`)).body.toString()) as { cameras: { name: string }[] };
    expect(open.cameras.map((c) => c.name)).toEqual(['pub']);
    const all = JSON.parse((await request(`${r.base}/status.json${tok}`)).body.toString()) as { cameras: { name: string }[] };
    expect(all.cameras.map((c) => c.name)).toEqual(['pub', 'priv']);
    const s = await openStream(`${r.base}/cam/priv/stream.mjpg`);
    expect(s.status).toBe(401);
    s.close();
  });

  test('without a public camera, / and /status.json need credentials as before', async () => {
    const a = await camera(sized(100));
    const [p] = await freePorts(1);
    relay = await startMultiRelay(`cameras:\n${entry('a', a, p)}`, { VIEWER_TOKEN: 'secret-token-123' });
    expect((await request(`${relay.base}/`)).status).toBe(401);
    expect((await request(`${relay.base}/status.json`)).status).toBe(401);
    expect((await request(`${relay.base}/snapshot.jpg`)).status).toBe(401);
    expect((await request(`${relay.base}/healthz`)).status).toBe(200);
  });

  test('a push camera in the list has its own ingest port beside a pull camera', async () => {
    const a = await camera(sized(100));
    const [rawA, rawP, ingest] = await freePorts(3);
    relay = await startMultiRelay(`cameras:\n${entry('a', a, rawA)}  p:\n    mode: push\n    ingest_port: ${ingest}\n    raw_port: ${rawP}\n`);
    const r = relay;
    expect(r.ports.cameras).toEqual([{ name: 'a', rawPort: rawA }, { name: 'p', rawPort: rawP, ingestPort: ingest }]);
    const s = net.connect({ port: ingest, host: '127.0.0.1' });
    await new Promise<void>((res, rej) => s.once('connect', res).once('error', rej));
    s.end(jpeg(7, 300));
    await waitFor(async () => (await r.metric('relay_frames_total', { camera: 'p' })) === 1, 5000, 'pushed frame');
    const got = await rawFetch(rawP);
    expect(got.data.length).toBe(300);
    expect(frameNo(got.data)).toBe(7);
    expect((await rawFetch(rawA)).data.length).toBe(100);
    expect(await r.metric('relay_frames_total', { camera: 'a' })).toBeGreaterThan(0);
  });

  test('archive: one directory per camera under SNAPSHOT_DIR', async () => {
    const [a, b] = [await camera(sized(100)), await camera(sized(200))];
    const raw = await freePorts(2);
    relay = await startMultiRelay(`cameras:\n${entry('a', a, raw[0])}${entry('b', b, raw[1], '    snapshot_keep: 1\n')}`, {
      SNAPSHOT_CRON: '* * * * * *', IDLE_FPS: '5',
    });
    const dir = path.dirname(relay.file);
    const jpgs = (n: string) => (fs.existsSync(path.join(dir, 'snapshots', n)) ? fs.readdirSync(path.join(dir, 'snapshots', n)).filter((f) => f.endsWith('.jpg')) : []);
    await waitFor(() => jpgs('a').length >= 2 && jpgs('b').length >= 1, 10_000, 'snapshots of both cameras');
    await waitFor(async () => (await relay!.metric('relay_archive_pruned_total', { camera: 'b' })) >= 1, 10_000, 'b pruned to 1');
    expect(jpgs('b').length).toBe(1);
    expect(fs.readFileSync(path.join(dir, 'snapshots', 'a', jpgs('a')[0])).length).toBe(100);
    expect(fs.readFileSync(path.join(dir, 'snapshots', 'b', jpgs('b')[0])).length).toBe(200);
    expect(await relay.metric('relay_archive_snapshots_total', { camera: 'a' })).toBeGreaterThanOrEqual(2);
  });
});

describe('reload (SIGHUP) of the camera list', () => {
  test('add, remove, invalid (kept), change; a viewer of an unchanged camera stays connected', async () => {
    const [a, b, c] = [await camera(sized(100)), await camera(sized(200)), await camera(sized(300))];
    const raw = await freePorts(3);
    const listAB = `cameras:\n${entry('a', a, raw[0])}${entry('b', b, raw[1])}`;
    relay = await startMultiRelay(listAB, { MAX_FPS: '20', IDLE_FPS: '5' });
    const r = relay;
    await waitFor(async () => (await r.metric('relay_camera_up', { camera: 'b' })) === 1, 5000, 'b up');
    const viewA = await openStream(`${r.base}/cam/a/stream.mjpg`);
    const viewB = await openStream(`${r.base}/cam/b/stream.mjpg`);
    try {
      await waitFor(() => viewA.reader.parts.length >= 2 && viewB.reader.parts.length >= 2, 5000, 'both viewers get frames');
      const storeA = r.relay.camera('a');

      // remove b, add c
      r.write(`cameras:\n${entry('a', a, raw[0])}${entry('c', c, raw[2])}`);
      const res = await r.relay.reload();
      expect(res).toMatchObject({ ok: true, added: ['c'], removed: ['b'], changed: [], unchanged: ['a'] });
      expect(r.relay.camera('a')).toBe(storeA); // untouched
      await viewB.ended; // b's viewer was disconnected
      const partsA = viewA.reader.parts.length;
      await waitFor(() => viewA.reader.parts.length >= partsA + 3, 5000, 'a keeps streaming across the reload');
      expect((await rawFetch(raw[1])).error).toBeDefined(); // b's raw port is closed
      expect((await rawFetch(raw[2])).data.length).toBe(300);
      expect((await request(`${r.base}/cam/b/snapshot.jpg`)).status).toBe(404);
      expect((await request(`${r.base}/cam/c/snapshot.jpg`)).body.length).toBe(300);
      const text = await r.metricsText();
      expect(text).not.toMatch(/camera="b"/);
      expect(text).toMatch(/^relay_camera_up\{camera="c"\} [01]$/m);
      expect(await r.metric('relay_config_reloads_total', { result: 'ok' })).toBe(1);
      expect(await r.metric('relay_cameras')).toBe(2);

      // invalid: refused, the running set kept
      r.write(`cameras:\n${entry('a', a, raw[0])}  c:\n    host: 127.0.0.1\n    raw_port: 80808\n`);
      const bad = await r.relay.reload();
      expect(bad.ok).toBe(false);
      expect(bad.error).toBe('cameras.c.raw_port: 80808 is not a port (1-65535)');
      expect(await r.metric('relay_config_reloads_total', { result: 'error' })).toBe(1);
      expect(r.logs.some((l) => l.msg === 'reload: invalid camera list, running cameras kept' && l.error === bad.error)).toBe(true);
      expect(r.relay.cameras.map((x) => x.name)).toEqual(['a', 'c']);
      expect((await rawFetch(raw[2])).data.length).toBe(300);
      expect(viewA.reader.parts.length).toBeGreaterThan(partsA);

      // change a: rebuilt (its viewer ends), c untouched
      const storeC = r.relay.camera('c');
      r.write(`cameras:\n${entry('a', a, raw[0], '    max_fps: 5\n')}${entry('c', c, raw[2])}`);
      const changed = await r.relay.reload();
      expect(changed).toMatchObject({ ok: true, added: [], removed: [], changed: ['a'], unchanged: ['c'] });
      await viewA.ended;
      expect(r.relay.camera('c')).toBe(storeC);
      expect(r.relay.camera('a')?.config.source.maxFps).toBe(5);
      expect((await rawFetch(raw[0])).data.length).toBe(100); // the same raw port, rebuilt
    } finally {
      viewA.close();
      viewB.close();
    }
  });

  test('the daemon: SIGHUP re-reads CAMERAS_FILE; an invalid file at start-up exits 2 with the key path', async () => {
    const [a, b] = [await camera(sized(100)), await camera(sized(200))];
    const raw = await freePorts(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-hup-'));
    const file = path.join(dir, 'cameras.yml');
    try {
      fs.writeFileSync(file, `cameras:\n${entry('a', a, raw[0])}`);
      const d = await startRelay({ CAMERAS_FILE: file, SNAPSHOT_DIR: dir });
      try {
        expect((await rawFetch(raw[0])).data.length).toBe(100);
        fs.writeFileSync(file, `cameras:\n${entry('a', a, raw[0])}${entry('b', b, raw[1])}`);
        d.child.proc.kill('SIGHUP');
        await d.child.waitForLog((l) => l.msg === 'reload: camera list applied', 5000);
        await waitFor(async () => (await rawFetch(raw[1])).data.length === 200, 5000, 'b serving after SIGHUP');
        expect(await d.metric('relay_config_reloads_total', { result: 'ok' })).toBe(1);
        expect(await d.metric('relay_frames_total', { camera: 'b' })).toBeGreaterThan(0);
      } finally {
        expect((await d.child.kill('SIGTERM')).code).toBe(0);
      }
      fs.writeFileSync(file, `cameras:\n${entry('a', a, raw[0], '    idle_fps: 50\n')}`);
      const bad = spawnPackage('relay', [], { ...FAST_ENV, CAMERAS_FILE: file, MAX_FPS: '25' });
      expect((await bad.exited).code).toBe(2);
      expect(bad.stderr()).toContain('cameras.a.idle_fps: 50 is not a number from 0 to MAX_FPS (25)');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

