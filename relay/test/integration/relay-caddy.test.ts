/**
 * The stack's own caddy/Caddyfile, run by Debian's caddy (local CA, HTTPS on a free port), in front of
 * a real relay process and fake camera, all on loopback. Clients use other loopback addresses
 * (127.0.0.2 ...) than Caddy (127.0.0.1, the relay's TRUSTED_PROXY_CIDRS), so the relay's decisions
 * show which address it believed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { checkJpeg } from '@camrelay/common';
import {
  CADDY, CaddyProc, CameraProc, describeWith, killAllChildren, openStream, RelayProc, request, startCaddy, startCamera, startRelay, waitFor,
} from '../../../test-support';
import { VIEWER_CSP } from '../../src/outlets/viewer-page';

jest.setTimeout(60_000);

const TOKEN = 'caddy-test-token-123';
const FPS = 8;

describeWith('caddy', CADDY !== undefined, 'relay behind Caddy (HTTPS)', () => {
  let cam: CameraProc;
  let relay: RelayProc;
  let caddy: CaddyProc;

  beforeAll(async () => {
    cam = await startCamera(['--width', '160', '--height', '120']);
    relay = await startRelay({
      CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), TRUSTED_PROXY_CIDRS: '127.0.0.1/32', MAX_FPS: String(FPS),
      MAX_CLIENTS_PER_IP: '2', VIEWER_TOKEN: TOKEN,
    });
    caddy = await startCaddy({ RELAY_UPSTREAM: `127.0.0.1:${relay.httpPort}` });
  });

  afterAll(async () => {
    await caddy?.stop();
    await killAllChildren();
  });

  /** through Caddy as https://localhost:<port>, from the loopback address `from` */
  const viaCaddy = (path: string, from = '127.0.0.2', headers: Record<string, string> = {}) =>
    ({ url: `https://127.0.0.1:${caddy.httpsPort}${path}`, opts: { ...caddy.tls, localAddress: from, headers: { Host: `localhost:${caddy.httpsPort}`, ...headers } } });
  const get = (path: string, from?: string, headers?: Record<string, string>) => {
    const r = viaCaddy(path, from, headers);
    return request(r.url, r.opts);
  };
  const stream = (path: string, from?: string, headers?: Record<string, string>) => {
    const r = viaCaddy(path, from, headers);
    return openStream(r.url, 'camrelay', r.opts);
  };

  test('viewer page and snapshot over HTTPS from the local CA, HSTS, the relay headers unchanged, HTTP redirects', async () => {
    const page = await get(`/?token=${TOKEN}`);
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('<img id="live"');
    expect(page.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(page.headers['content-security-policy']).toBe(VIEWER_CSP);
    expect(page.headers).toMatchObject({ 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff', 'referrer-policy': 'strict-origin', 'cache-control': 'no-store' });
    expect(page.headers.server).toBeUndefined();
    const snap = await get('/snapshot.jpg', '127.0.0.2', { Authorization: `Bearer ${TOKEN}` });
    expect(snap.status).toBe(200);
    expect(checkJpeg(snap.body)).toMatchObject({ ok: true });
    expect(snap.headers.etag).toMatch(/^"[0-9a-f]+-\d+"$/);
    // no credentials: the relay's challenge, passed through
    const denied = await get('/snapshot.jpg');
    expect(denied.status).toBe(401);
    expect(denied.headers['www-authenticate']).toBe('Bearer realm="camrelay"');

    const redirect = await request(`http://127.0.0.1:${caddy.httpPort}/cam/default/`, { headers: { Host: 'localhost' } });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe(`https://localhost:${caddy.httpsPort}/cam/default/`);
  });

  test('TLS 1.2 and 1.3 only: a TLS 1.1 client gets a protocol_version alert from Caddy', async () => {
    const hello = (version: tls.SecureVersion) =>
      new Promise<string>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: caddy.httpsPort, ...caddy.tls, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
          resolve(s.getProtocol() ?? 'none');
          s.destroy();
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
    expect(await hello('TLSv1.1')).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    expect(await hello('TLSv1.2')).toBe('TLSv1.2');
    expect(await hello('TLSv1.3')).toBe('TLSv1.3');
  });

  test("MJPEG through Caddy: every frame at the camera's rate, unbuffered; a viewer leaving ends the relay's stream", async () => {
    const s = await stream(`/stream.mjpg?token=${TOKEN}`);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('multipart/x-mixed-replace; boundary=camrelay');
    await waitFor(() => s.reader.parts.length >= 2, 10_000, 'first frames through caddy');
    const framesAt = async () => relay.metric('relay_frames_total', { camera: 'default' });
    const f0 = await framesAt();
    const p0 = s.reader.parts.length;
    const lags: number[] = [];
    const onData = () => {
      const last = s.reader.parts[s.reader.parts.length - 1];
      if (last) lags.push(Date.now() - Number(last.headers['x-timestamp']) * 1000);
    };
    const timer = setInterval(onData, 50);
    await new Promise((r) => setTimeout(r, 3000));
    clearInterval(timer);
    const published = (await framesAt()) - f0;
    const received = s.reader.parts.length - p0;
    // the relay fetches at MAX_FPS while watched; the viewer gets (almost) every frame it publishes
    expect(published).toBeGreaterThanOrEqual(FPS * 3 * 0.6);
    expect(received).toBeGreaterThanOrEqual(published - 2);
    // unbuffered: the newest frame the viewer has is never much older than a frame interval
    lags.sort((a, b) => a - b);
    expect(lags[Math.floor(lags.length / 2)]).toBeLessThan(1000 / FPS + 300);
    for (const p of s.reader.parts.slice(-3)) expect(checkJpeg(p.body)).toMatchObject({ ok: true });
    s.close();
    await waitFor(async () => (await relay.metric('relay_clients', { protocol: 'mjpeg' })) === 0, 5000, "the relay's stream to end with the viewer");
  });

  test('X-Forwarded-For from Caddy decides MAX_CLIENTS_PER_IP; a spoofed one, through Caddy or straight to the relay, is ignored', async () => {
    const q = `/stream.mjpg?token=${TOKEN}`;
    const a = [await stream(q, '127.0.0.2'), await stream(q, '127.0.0.2')];
    expect(a.map((s) => s.status)).toEqual([200, 200]);
    const third = await get(q, '127.0.0.2');
    expect(third.status).toBe(503);
    expect(third.body.toString()).toContain('too many clients');
    await waitFor(() => relay.child.logs().find((l) => l.msg === 'client refused' && l.reason === 'max_clients_per_ip'), 5000, 'the refusal logged')
      .then((l) => expect(l.ip).toBe('127.0.0.2'));
    // 127.0.0.3 claims to be 127.0.0.2: Caddy replaces X-Forwarded-For and drops Forwarded
    const spoof = await stream(q, '127.0.0.3', { 'X-Forwarded-For': '127.0.0.9', Forwarded: 'for=127.0.0.2' });
    expect(spoof.status).toBe(200);
    const spoof2 = await stream(q, '127.0.0.3', { 'X-Forwarded-For': '127.0.0.2' });
    expect(spoof2.status).toBe(200);
    // straight to the relay from an untrusted address: its headers count for nothing
    const direct = await openStream(`http://127.0.0.1:${relay.httpPort}${q}`, 'camrelay', { localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': '127.0.0.2' } });
    expect(direct.status).toBe(200);
    const page = await request(`http://127.0.0.1:${relay.httpPort}/`, { localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': '127.0.0.2', 'X-Forwarded-Proto': 'https' } });
    expect(page.status).toBe(401);
    expect(page.headers['www-authenticate']).toBe('Bearer realm="camrelay"');
    expect(page.headers['content-type']).toMatch(/^text\/plain/);
    expect(await relay.metric('relay_clients_rejected_total', { reason: 'max_clients_per_ip' })).toBe(1);
    for (const s of [...a, spoof, spoof2, direct]) s.close();
    await waitFor(async () => (await relay.metric('relay_clients', { protocol: 'mjpeg' })) === 0, 5000, 'streams closed');
  });

  test("Caddy's access log has the requests but no token", async () => {
    await get(`/snapshot.jpg?fps=1&token=${TOKEN}`);
    // the relay's redirect carries the query on to the browser; the log must not
    const r = await get(`/cam/default?token=${TOKEN}`);
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe(`/cam/default/?token=${TOKEN}`);
    await waitFor(() => caddy.accessLog().some((x) => JSON.stringify(x).includes('/cam/default')), 5000, 'access log lines');
    const log = caddy.accessLog();
    const uris = log.map((l) => (l.request as { uri: string }).uri);
    expect(uris).toContain('/snapshot.jpg?fps=1');
    expect(JSON.stringify(log)).not.toContain(TOKEN);
    expect(caddy.child.stdout() + caddy.child.stderr()).not.toContain(TOKEN);
  });
});

describeWith('caddy', CADDY !== undefined, 'Grafana behind the same Caddy (GRAFANA_PUBLIC=true)', () => {
  // Grafana has no image or package here: a stand-in upstream records what Caddy sends it, which is
  // what Grafana with serve_from_sub_path needs (the /grafana/ prefix kept, HTTPS said in X-Forwarded-Proto).
  let caddy: CaddyProc;
  let upstream: http.Server;
  const seen: { url: string; proto: string }[] = [];

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', proto: String(req.headers['x-forwarded-proto'] ?? '') });
      res.end('grafana stand-in');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    caddy = await startCaddy({
      GRAFANA_PUBLIC: 'true', GRAFANA_UPSTREAM: `127.0.0.1:${(upstream.address() as AddressInfo).port}`, RELAY_UPSTREAM: '127.0.0.1:9',
    });
  });
  afterAll(async () => {
    await caddy?.stop();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  test('/grafana/... reaches Grafana with its prefix over HTTPS; /grafana redirects to /grafana/; the rest stays the relay\'s', async () => {
    const get = (p: string) => request(`https://127.0.0.1:${caddy.httpsPort}${p}`, { ...caddy.tls, headers: { Host: `localhost:${caddy.httpsPort}` } });
    const r = await get('/grafana/api/health');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('grafana stand-in');
    expect(seen).toEqual([{ url: '/grafana/api/health', proto: 'https' }]);
    const bare = await get('/grafana');
    expect(bare.status).toBe(308);
    expect(bare.headers.location).toBe('/grafana/');
    expect((await get('/status.json')).status).toBe(502); // the relay's route (no relay behind it here), not Grafana's
    expect(seen).toHaveLength(1);
  });
});
