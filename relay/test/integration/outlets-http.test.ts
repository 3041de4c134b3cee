/** HTTP outlet (snapshot, status, health, auth, limits, slowloris) over real sockets. */
import net from 'node:net';
import { waitFor } from '../../../test-support';
import { Rig, closed, connect, fakeJpeg, request, sleep, startRig } from '../../../test-support';

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('HTTP outlet', () => {
  let rig: Rig;
  afterEach(async () => {
    await rig?.stop();
  });

  test('/snapshot.jpg: fresh frame with no-store, ETag, Last-Modified, frame age; 304 on If-None-Match; HEAD has no body', async () => {
    rig = await startRig();
    const img = fakeJpeg(1, 30_000);
    const capturedAt = Date.now() - 200;
    rig.store.publish(img, capturedAt);
    const r = await request(`${rig.base}/snapshot.jpg`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('image/jpeg');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(Number(r.headers['content-length'])).toBe(img.length);
    expect(r.body.equals(img)).toBe(true);
    const etag = r.headers.etag as string;
    expect(etag).toMatch(/^"[0-9a-f]{8}-1"$/);
    expect(r.headers['last-modified']).toBe(new Date(capturedAt).toUTCString());
    expect(Number(r.headers['x-frame-age-ms'])).toBeGreaterThanOrEqual(190);
    expect(Number(r.headers['x-frame-age-ms'])).toBeLessThan(1000);

    const nm = await request(`${rig.base}/snapshot.jpg`, { headers: { 'If-None-Match': etag } });
    expect(nm.status).toBe(304);
    expect(nm.body.length).toBe(0);
    expect(nm.headers.etag).toBe(etag);

    const head = await request(`${rig.base}/snapshot.jpg`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(img.length);
    expect(head.body.length).toBe(0);

    rig.store.publish(fakeJpeg(2, 100));
    const changed = await request(`${rig.base}/snapshot.jpg`, { headers: { 'If-None-Match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
    expect(changed.body.equals(fakeJpeg(2, 100))).toBe(true);
    // exactly the two GETs with a body count as served frames
    expect(await rig.metric('relay_frames_served_total', { protocol: 'snapshot' })).toBe(2);
    expect(await rig.metric('relay_bytes_sent_total', { protocol: 'snapshot' })).toBe(30_100);
    expect(await rig.metric('relay_client_connections_total', { protocol: 'snapshot' })).toBe(4);
  });

  test('/snapshot.jpg waits for the next frame when the latest is stale, and answers 503 when none comes', async () => {
    rig = await startRig({ maxFrameAgeMs: 100, waitTimeoutMs: 400 });
    rig.store.publish(fakeJpeg(1), Date.now() - 5000);
    const t0 = Date.now();
    const none = await request(`${rig.base}/snapshot.jpg`);
    expect(none.status).toBe(503);
    expect(none.headers['retry-after']).toBe('1');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);

    const waiting = request(`${rig.base}/snapshot.jpg`);
    await waitFor(() => rig.limiter.clients('snapshot') === 1 && rig.store.demand === 1, 2000, 'the snapshot client waiting');
    rig.store.publish(fakeJpeg(2));
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(r.body.equals(fakeJpeg(2))).toBe(true);
    await waitFor(() => rig.limiter.clients('snapshot') === 0, 2000, 'the snapshot client released');
  });

  test('/healthz is always 200; /readyz is 503 with a reason until a fresh frame exists', async () => {
    rig = await startRig({ maxFrameAgeMs: 500, status: { cameraUp: false, mode: 'pull', lastError: 'refused' } });
    expect((await request(`${rig.base}/healthz`)).status).toBe(200);
    const nr = await request(`${rig.base}/readyz`);
    expect(nr.status).toBe(503);
    expect(JSON.parse(nr.body.toString())).toMatchObject({ ready: false, reason: expect.stringMatching(/no frame/), cameraUp: false });
    rig.store.publish(fakeJpeg(1), Date.now() - 2000);
    const stale = JSON.parse((await request(`${rig.base}/readyz`)).body.toString());
    expect(stale.reason).toMatch(/ms old/);
    rig.store.publish(fakeJpeg(2));
    const ok = await request(`${rig.base}/readyz`);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.toString())).toMatchObject({ ready: true, seq: 2 });
    expect((await request(`${rig.base}/healthz`, { method: 'HEAD' })).status).toBe(200);
  });

  test('/readyz follows the readiness callback when main provides one', async () => {
    let ready = false;
    rig = await startRig({ readiness: () => ({ ready, detail: { frameAgeMs: 1500, cameraUp: ready } }) });
    const a = await request(`${rig.base}/readyz`);
    expect(a.status).toBe(503);
    expect(JSON.parse(a.body.toString())).toEqual({ ready: false, frameAgeMs: 1500, cameraUp: false });
    ready = true;
    expect((await request(`${rig.base}/readyz`)).status).toBe(200);
  });

  test('/readyz with credentials set: no detail of the (private) camera without them, but the status still follows it', async () => {
    rig = await startRig({ viewerToken: 'tok-12345678', status: { cameraUp: false, mode: 'pull', lastError: 'refused' } });
    const anon = await request(`${rig.base}/readyz`);
    expect([anon.status, JSON.parse(anon.body.toString())]).toEqual([503, { ready: false, cameras: [] }]);
    const full = await request(`${rig.base}/readyz?token=tok-12345678`);
    expect(full.status).toBe(503);
    expect(JSON.parse(full.body.toString())).toMatchObject({ ready: false, reason: expect.stringMatching(/no frame/), cameras: [{ name: 'default', ready: false }] });
    rig.store.publish(fakeJpeg(1));
    expect([(await request(`${rig.base}/readyz`)).status, (await request(`${rig.base}/readyz`, { method: 'HEAD' })).status]).toEqual([200, 200]);
  });

  test('/status.json reports camera, fps, frame, clients by protocol, uptime and no addresses', async () => {
    rig = await startRig({ status: { cameraUp: true, mode: 'pull', fps: 99 } });
    for (let i = 1; i <= 10; i++) {
      rig.store.publish(fakeJpeg(i, 1000 + i));
      await sleep(50); // frames spread over real time: /status.json measures their rate
    }
    const holder = await connect(rig.raw.port);
    await waitFor(() => rig.limiter.clients('raw') === 1, 2000, 'the raw client admitted');
    const r = await request(`${rig.base}/status.json`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const s = JSON.parse(r.body.toString());
    expect(s).toMatchObject({ cameraUp: true, mode: 'pull', lastError: null, maxFrameAgeMs: 1000 });
    expect(s.frame).toMatchObject({ seq: 10, bytes: 1010 });
    expect(s.frame.ageMs).toBeLessThan(1000);
    expect(s.fps).toBeGreaterThan(1);
    expect(s.fps).toBeLessThan(40);
    expect(s.clients).toEqual({ raw: 1, snapshot: 0, mjpeg: 0 });
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(r.body.toString()).not.toContain('127.0.0.1');
    holder.destroy();
  });

  test('unknown paths 404, other methods 405, request bodies and odd URLs do not hurt', async () => {
    rig = await startRig();
    expect((await request(`${rig.base}/nope`)).status).toBe(404);
    expect((await request(`${rig.base}/../etc/passwd`)).status).toBe(404);
    const post = await request(`${rig.base}/snapshot.jpg`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const page = await request(`${rig.base}/?x=1`);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.body.toString()).toContain('<img id="live"');
    expect((await request(`${rig.base}/viewer.js`)).headers['content-type']).toMatch(/javascript/);
    expect((await request(`${rig.base}/viewer.css`)).headers['content-type']).toMatch(/css/);
  });

  test('VIEWER_TOKEN: Bearer or ?token= opens page, snapshot, stream and status; health stays open; failures are 401 and counted', async () => {
    rig = await startRig({ viewerToken: 'tok-abcdefgh' });
    rig.store.publish(fakeJpeg(1));
    for (const p of ['/', '/snapshot.jpg', '/status.json']) {
      const r = await request(`${rig.base}${p}`);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="camrelay"');
      expect((await request(`${rig.base}${p}?token=tok-abcdefgh`)).status).toBe(200);
      expect((await request(`${rig.base}${p}`, { headers: { Authorization: 'Bearer tok-abcdefgh' } })).status).toBe(200);
      expect((await request(`${rig.base}${p}?token=tok-abcdefgX`)).status).toBe(401);
    }
    expect((await request(`${rig.base}/stream.mjpg?token=wrong`)).status).toBe(401);
    expect((await request(`${rig.base}/stream.mjpg?token=tok-abcdefgh`, { method: 'HEAD' })).status).toBe(200);
    expect((await request(`${rig.base}/healthz`)).status).toBe(200);
    expect((await request(`${rig.base}/readyz`)).status).toBe(200);
    expect((await request(`${rig.base}/viewer.js`)).status).toBe(200);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'unauthorized' })).toBe(7);
    expect(JSON.stringify(rig.logs)).not.toContain('tok-abcdefg');
  });

  test('VIEWER_USER/VIEWER_PASSWORD: Basic with a browser challenge', async () => {
    rig = await startRig({ viewerUser: 'viewer', viewerPassword: 'correct horse' });
    rig.store.publish(fakeJpeg(1));
    const r = await request(`${rig.base}/snapshot.jpg`);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Basic realm="camrelay", charset="UTF-8"');
    expect((await request(`${rig.base}/snapshot.jpg`, { headers: { Authorization: basic('viewer', 'correct horse') } })).status).toBe(200);
    expect((await request(`${rig.base}/snapshot.jpg`, { headers: { Authorization: basic('viewer', 'wrong') } })).status).toBe(401);
    expect((await request(`${rig.base}/snapshot.jpg?token=correct%20horse`)).status).toBe(401);
  });

  test('over MAX_CLIENTS HTTP answers 503 with Retry-After and closes; /healthz still answers', async () => {
    rig = await startRig({ maxClients: 1, waitTimeoutMs: 5000 });
    const holder = await connect(rig.raw.port);
    await waitFor(() => rig.limiter.connections === 1, 2000, 'the raw client admitted');
    const r = await request(`${rig.base}/snapshot.jpg`);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('5');
    expect(r.headers.connection).toBe('close');
    expect((await request(`${rig.base}/healthz`)).status).toBe(200);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'max_clients' })).toBe(1);
    // the raw client gets its frame and leaves: its slot is free again
    holder.resume();
    rig.store.publish(fakeJpeg(1));
    await closed(holder);
    await waitFor(() => rig.limiter.connections === 0, 2000, 'slot released');
    // a fresh frame, so this asserts the freed slot and not frame freshness on a loaded machine
    rig.store.publish(fakeJpeg(2));
    expect((await request(`${rig.base}/snapshot.jpg`)).status).toBe(200);
  });

  test('over MAX_CLIENTS_PER_IP HTTP answers 503 (keep-alive connections hold their slot)', async () => {
    rig = await startRig({ maxClientsPerIp: 2 });
    rig.store.publish(fakeJpeg(1));
    const a = await connect(rig.http.port);
    const b = await connect(rig.http.port);
    await waitFor(() => rig.limiter.connections === 2, 2000, 'two HTTP connections admitted');
    const r = await request(`${rig.base}/snapshot.jpg`);
    expect(r.status).toBe(503);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'max_clients_per_ip' })).toBe(1);
    a.destroy();
    b.destroy();
  });

  test('ALLOW_CIDRS that excludes 127.0.0.1: 403 everywhere except loopback health checks', async () => {
    rig = await startRig({ allowCidrs: ['192.0.2.0/24'] });
    rig.store.publish(fakeJpeg(1));
    for (const p of ['/', '/snapshot.jpg', '/stream.mjpg', '/status.json', '/nope']) {
      const r = await request(`${rig.base}${p}`);
      expect(r.status).toBe(403);
      expect(r.body.toString()).not.toContain('\xff\xd8');
    }
    expect((await request(`${rig.base}/healthz`)).status).toBe(200);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'not_allowed' })).toBe(5);
  });

  test('slowloris: a header trickle is cut after HTTP_HEADERS_TIMEOUT_MS', async () => {
    rig = await startRig({ headersTimeoutMs: 600 });
    const s = await connect(rig.http.port);
    const got: Buffer[] = [];
    s.on('data', (c) => got.push(c));
    s.on('error', () => undefined);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => s.writable && s.write('X-a: b\r\n'), 100);
    const ms = await closed(s);
    clearInterval(trickle);
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(3000);
    expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 408/);
    await waitFor(() => rig.limiter.connections === 0, 2000, 'server side closed');
  });

  test('an idle connection that never sends a request is cut too, and oversized headers get 431', async () => {
    rig = await startRig({ headersTimeoutMs: 500 });
    const idle = await connect(rig.http.port);
    idle.on('error', () => undefined);
    idle.resume();
    idle.write('G');
    expect(await closed(idle)).toBeLessThan(3000);
    await waitFor(() => rig.limiter.connections === 0, 2000, 'server side closed');

    const big = await connect(rig.http.port);
    const got: Buffer[] = [];
    big.on('data', (c) => got.push(c));
    big.on('error', () => undefined);
    big.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await closed(big);
    expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 431/);

    const garbage = net.connect(rig.http.port, '127.0.0.1');
    const g: Buffer[] = [];
    garbage.on('data', (c) => g.push(c));
    garbage.on('error', () => undefined);
    garbage.write('\x16\x03\x01 definitely not http\r\n\r\n');
    await closed(garbage);
    expect(Buffer.concat(g).toString()).toMatch(/^HTTP\/1\.1 400/);
  });

  test('a port in use fails start() with the error, and the outlet can start later', async () => {
    rig = await startRig();
    const { HttpOutlet } = await import('../../src/outlets');
    const clash = new HttpOutlet(
      { bindHost: '127.0.0.1', httpPort: rig.http.port, maxFrameAgeMs: 1000, waitTimeoutMs: 1000, writeTimeoutMs: 1000, headersTimeoutMs: 1000, keepAliveTimeoutMs: 1000 },
      { store: rig.store, metrics: rig.metrics, limiter: rig.limiter, log: (await import('@camrelay/common')).createLogger({ name: 't', level: 'silent' }), status: () => ({ cameraUp: true, mode: 'pull' }) },
    );
    await expect(clash.start()).rejects.toThrow(/EADDRINUSE/);
    expect(clash.port).toBe(-1);
    await clash.stop();
  });

  test('stop() answers waiting snapshot requests, closes the port and is idempotent', async () => {
    rig = await startRig({ waitTimeoutMs: 10_000 });
    const pending = request(`${rig.base}/snapshot.jpg`);
    await waitFor(() => rig.store.demand === 1, 2000, 'the snapshot request waiting');
    const t0 = Date.now();
    await Promise.all([rig.http.stop(), rig.http.stop()]);
    const r = await pending.catch(() => ({ status: -1 }));
    expect([503, -1]).toContain(r.status);
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect(request(`${rig.base}/healthz`)).rejects.toThrow();
  });
});
