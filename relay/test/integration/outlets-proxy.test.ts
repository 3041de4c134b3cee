/**
 * The HTTP outlet behind a reverse proxy, over real loopback sockets (the test plays the proxy at
 * 127.0.0.1): trusted forwarding headers, per-request admission on a shared keep-alive connection,
 * the HTTPS sign-in form and its cookie, the sign-in limit, BASE_PATH and SNAPSHOT_CACHE_S.
 * The real Caddy in front is in relay-caddy.test.ts.
 */
import http from 'node:http';
import { parseSetCookie } from 'cookie';
import { CidrList } from '@camrelay/common';
import { Rig, fakeJpeg, openStream, request, startRig, waitFor } from '../../../test-support';
import { LOGIN_CSP } from '../../src/outlets/viewer-page';

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const TRUST_LOCAL = new CidrList(['127.0.0.1/32']);
/** what Caddy adds to every request it forwards */
const via = (client: string, proto = 'https') => ({ 'X-Forwarded-For': client, 'X-Forwarded-Proto': proto, 'X-Forwarded-Host': 'cam.example' });
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'https://cam.example' };
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('HTTP outlet behind a proxy', () => {
  let rig: Rig;
  afterEach(async () => {
    await rig?.stop();
  });

  test('from an untrusted peer a spoofed X-Forwarded-For / Forwarded changes nothing', async () => {
    rig = await startRig({ allowCidrs: ['192.0.2.0/24'] });
    rig.store.publish(fakeJpeg(1));
    for (const headers of [{ 'X-Forwarded-For': '192.0.2.1' }, { Forwarded: 'for=192.0.2.1' }]) {
      expect((await request(`${rig.base}/snapshot.jpg`, { headers })).status).toBe(403);
    }
    await rig.stop();
    // trusted list without our address: the same
    rig = await startRig({ maxClientsPerIp: 1, trustedProxies: new CidrList(['10.0.0.0/8']), viewerPassword: 'correct horse' });
    rig.store.publish(fakeJpeg(1));
    const s = await openStream(`${rig.base}/stream.mjpg`, 'camrelay', { headers: { 'X-Forwarded-For': '192.0.2.1', Authorization: basic('viewer', 'correct horse') } });
    expect(s.status).toBe(200);
    const r = await request(`${rig.base}/snapshot.jpg`, { headers: { 'X-Forwarded-For': '192.0.2.2', Authorization: basic('viewer', 'correct horse') } });
    expect(r.status).toBe(503);
    s.close();
    await waitFor(() => rig.limiter.connections === 0, 2000, 'the stream gone');
    // no sign-in form for a peer that merely claims HTTPS
    const page = await request(`${rig.base}/`, { headers: via('192.0.2.3') });
    expect(page.status).toBe(401);
    expect(page.headers['www-authenticate']).toBe('Basic realm="camrelay", charset="UTF-8"');
  });

  test('a trusted proxy: ALLOW_CIDRS decides per request for the forwarded address, on one keep-alive connection', async () => {
    // Node's agent reuses a socket only when the server's keep-alive hint leaves it more than 1 s
    rig = await startRig({ allowCidrs: ['192.0.2.0/24'], trustedProxies: TRUST_LOCAL, keepAliveTimeoutMs: 10_000 });
    rig.store.publish(fakeJpeg(1));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    try {
      const get = (client: string, path = '/snapshot.jpg') => request(`${rig.base}${path}`, { agent, headers: { 'X-Forwarded-For': client } });
      agent.on('free', (sock) => sockets.add(sock));
      expect((await get('192.0.2.10')).status).toBe(200);
      const refused = await get('198.51.100.20');
      expect(refused.status).toBe(403);
      expect(refused.headers.connection).not.toBe('close');
      expect((await get('192.0.2.11')).status).toBe(200);
      // health checks: only loopback clients outside ALLOW_CIDRS
      expect((await get('198.51.100.20', '/healthz')).status).toBe(403);
      expect((await get('127.0.0.1', '/healthz')).status).toBe(200);
      expect(sockets.size).toBe(1);
      expect(await rig.metric('relay_clients_rejected_total', { reason: 'not_allowed' })).toBe(2);
      const line = rig.logs.find((l) => l.msg === 'client refused');
      expect(line).toMatchObject({ reason: 'not_allowed', ip: '198.51.100.20' });
      // the proxy's connection itself holds no slot
      expect(rig.limiter.connectionsFrom('127.0.0.1')).toBe(0);
    } finally {
      agent.destroy();
    }
  });

  test('a trusted proxy: headers that name no client get 400, never the proxy\'s own (allowed, loopback) address', async () => {
    // the proxy's own address is inside ALLOW_CIDRS, as a private range often is
    rig = await startRig({ allowCidrs: ['127.0.0.0/8'], trustedProxies: TRUST_LOCAL, keepAliveTimeoutMs: 10_000 });
    rig.store.publish(fakeJpeg(1));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = (headers: Record<string, string>, path = '/snapshot.jpg') => request(`${rig.base}${path}`, { agent, headers });
      // nginx writes X-Forwarded-For and passes the client's own Forwarded through
      const bad: Record<string, string>[] = [
        { 'X-Forwarded-For': '198.51.100.20', Forwarded: 'for=127.0.0.1' }, // two stories
        { 'X-Forwarded-For': '198.51.100.20', Forwarded: 'for=unknown' }, // would have been the proxy
        { 'X-Forwarded-For': '198.51.100.20', Forwarded: 'garbage;;' }, // unreadable
        { 'X-Forwarded-For': 'garbage' },
      ];
      for (const headers of bad) {
        for (const path of ['/snapshot.jpg', '/healthz']) {
          const r = await get(headers, path);
          expect([headers, path, r.status]).toEqual([headers, path, 400]);
          expect(r.body.toString()).toMatch(/^conflicting or malformed forwarding headers from the proxy: make it strip the client's Forwarded\/X-Forwarded-For/);
          // the proxy's connection carries other clients: it stays open
          expect(r.headers.connection).not.toBe('close');
        }
      }
      // the same client with consistent headers: outside ALLOW_CIDRS, as it should be
      expect((await get({ 'X-Forwarded-For': '198.51.100.20', Forwarded: 'for=198.51.100.20' })).status).toBe(403);
      expect((await get({ 'X-Forwarded-For': '127.0.0.1' })).status).toBe(200);
      expect(await rig.metric('relay_clients_rejected_total', { reason: 'bad_forwarding' })).toBe(8);
      // one warning per 10 s, naming the proxy and what it sent
      const lines = rig.logs.filter((l) => l.reason === 'bad_forwarding');
      expect(lines).toEqual([expect.objectContaining({ msg: 'client refused', ip: '127.0.0.1', problem: 'conflict', forwarded: 'for=127.0.0.1', xForwardedFor: '198.51.100.20' })]);
    } finally {
      agent.destroy();
    }
  });

  test('a trusted proxy: MAX_CLIENTS_PER_IP counts streams per forwarded client, not the proxy connection', async () => {
    rig = await startRig({ maxClientsPerIp: 1, trustedProxies: TRUST_LOCAL });
    rig.store.publish(fakeJpeg(1));
    const a1 = await openStream(`${rig.base}/stream.mjpg`, 'camrelay', { headers: { 'X-Forwarded-For': '198.51.100.1' } });
    expect(a1.status).toBe(200);
    await waitFor(() => rig.limiter.connectionsFrom('198.51.100.1') === 1, 2000, 'the stream holds its client slot');
    const a2 = await openStream(`${rig.base}/stream.mjpg`, 'camrelay', { headers: { 'X-Forwarded-For': '198.51.100.1' } });
    expect(a2.status).toBe(503);
    const b = await openStream(`${rig.base}/stream.mjpg`, 'camrelay', { headers: { 'X-Forwarded-For': '198.51.100.2' } });
    expect(b.status).toBe(200);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'max_clients_per_ip' })).toBe(1);
    expect(rig.limiter.connectionsFrom('127.0.0.1')).toBe(0);
    a1.close();
    await waitFor(() => rig.limiter.connectionsFrom('198.51.100.1') === 0, 2000, 'slot released with the stream');
    const a3 = await openStream(`${rig.base}/stream.mjpg`, 'camrelay', { headers: { 'X-Forwarded-For': '198.51.100.1' } });
    expect(a3.status).toBe(200);
    for (const s of [a2, b, a3]) s.close();
  });

  describe('signing in over HTTPS', () => {
    const creds = { viewerUser: 'viewer', viewerPassword: 'correct horse', viewerToken: 'tok-12345678' };

    async function signIn(client = '198.51.100.7', fields: Record<string, string> = { user: 'viewer', password: 'correct horse', next: '/?fps=5' }) {
      return request(`${rig.base}/login`, { method: 'POST', headers: { ...via(client), ...FORM }, body: form(fields) });
    }

    test('a page asks with a form instead of the Basic prompt; scripts still get the challenge', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      const page = await request(`${rig.base}/?mode=poll&token=wrong`, { headers: via('198.51.100.7') });
      expect(page.status).toBe(401);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['content-security-policy']).toBe(LOGIN_CSP);
      expect(page.headers['www-authenticate']).toBe('Cookie realm="camrelay", form-action="/login", cookie-name="__Secure-camrelay-session"');
      const html = page.body.toString();
      expect(html).toContain('<form id="login" method="post" action="/login">');
      // where to go afterwards: the page, without the token
      expect(html).toContain('<input type="hidden" name="next" value="/?mode=poll">');
      expect(html).toContain('name="user"');
      // the snapshot is not a page: the challenges, as today
      const snap = await request(`${rig.base}/snapshot.jpg`, { headers: via('198.51.100.7') });
      expect(snap.status).toBe(401);
      const challenges = 'Basic realm="camrelay", charset="UTF-8", Bearer realm="camrelay"';
      expect(snap.headers['www-authenticate']).toBe(challenges);
      // plain HTTP behind the proxy: the prompt as today
      const plain = await request(`${rig.base}/`, { headers: via('198.51.100.7', 'http') });
      expect(plain.headers['www-authenticate']).toBe(challenges);
      // GET /login: the form, posting back to the start
      const login = await request(`${rig.base}/login`, { headers: via('198.51.100.7') });
      expect(login.status).toBe(200);
      expect(login.body.toString()).toContain('value="/"');
    });

    test('right credentials set a Secure, HttpOnly, SameSite cookie that opens every route; sign-out clears it', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      rig.store.publish(fakeJpeg(1));
      const bad = await signIn('198.51.100.7', { user: 'viewer', password: 'wrong horse', next: '/' });
      expect(bad.status).toBe(401);
      expect(bad.body.toString()).toContain('wrong user name or password');
      expect(bad.headers['set-cookie']).toBeUndefined();
      const ok = await signIn();
      expect(ok.status).toBe(303);
      expect(ok.headers.location).toBe('/?fps=5');
      const set = ok.headers['set-cookie'] as string[];
      expect(set).toHaveLength(1);
      const c = parseSetCookie(set[0]);
      expect(c).toMatchObject({ name: '__Secure-camrelay-session', httpOnly: true, secure: true, sameSite: 'lax', path: '/', maxAge: 7 * 86_400 });
      expect(set[0]).not.toContain('correct horse');
      const cookie = `${c.name}=${c.value}`;
      const headers = { ...via('198.51.100.7'), Cookie: cookie };
      expect((await request(`${rig.base}/`, { headers })).status).toBe(200);
      expect((await request(`${rig.base}/snapshot.jpg`, { headers })).status).toBe(200);
      const status = JSON.parse((await request(`${rig.base}/status.json`, { headers })).body.toString()) as Record<string, unknown>;
      expect(status).toMatchObject({ authenticated: true, session: true });
      const s = await openStream(`${rig.base}/stream.mjpg`, 'camrelay', { headers });
      expect(s.status).toBe(200);
      s.close();
      // a script's cookie without the proxy works like any credential
      expect((await request(`${rig.base}/snapshot.jpg`, { headers: { Cookie: cookie } })).status).toBe(200);
      expect(await rig.metric('relay_login_attempts_total', { result: 'ok' })).toBe(1);
      expect(await rig.metric('relay_login_attempts_total', { result: 'bad_credentials' })).toBe(1);
      // the token typed as the password works too
      expect((await signIn('198.51.100.7', { user: '', password: 'tok-12345678' })).status).toBe(303);

      const out = await request(`${rig.base}/logout`, { method: 'POST', headers: { ...headers, Origin: 'https://cam.example' } });
      expect(out.status).toBe(303);
      expect(out.headers.location).toBe('/');
      expect(parseSetCookie((out.headers['set-cookie'] as string[])[0])).toMatchObject({ name: '__Secure-camrelay-session', value: '', maxAge: 0, path: '/' });
      expect((await request(`${rig.base}/logout`)).status).toBe(405);
      expect(JSON.stringify(rig.logs)).not.toMatch(/correct horse|tok-12345678|camrelay-session=/);
    });

    test('a stale or forged cookie: no Basic prompt over HTTPS, and the cookie is cleared', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      const headers = { ...via('198.51.100.7'), Cookie: '__Secure-camrelay-session=1.99999999999.AAAA.BBBB' };
      const r = await request(`${rig.base}/status.json`, { headers });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Cookie realm="camrelay"/);
      expect(parseSetCookie((r.headers['set-cookie'] as string[])[0])).toMatchObject({ value: '', maxAge: 0 });
      // a forged cookie is no failed credential check (a changed password must not lock everyone out)
      for (let i = 0; i < 6; i++) await request(`${rig.base}/status.json`, { headers });
      expect((await signIn()).status).toBe(303);
    });

    test('CSRF: only same-origin POSTs, and the form only over HTTPS through a trusted proxy', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      const body = form({ user: 'viewer', password: 'correct horse' });
      const post = (headers: Record<string, string>) => request(`${rig.base}/login`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, body });
      expect((await post({ ...via('198.51.100.7'), Origin: 'https://evil.example' })).status).toBe(403);
      expect((await post({ ...via('198.51.100.7'), Origin: 'https://cam.example', 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
      expect((await post({ ...via('198.51.100.7', 'http'), Origin: 'https://cam.example' })).status).toBe(403);
      expect((await post({ ...via('198.51.100.7'), 'Content-Type': 'text/plain' })).status).toBe(415);
      expect((await request(`${rig.base}/logout`, { method: 'POST', headers: { Origin: 'https://evil.example' } })).status).toBe(403);
      const big = await request(`${rig.base}/login`, { method: 'POST', headers: { ...via('198.51.100.7'), ...FORM }, body: `password=${'x'.repeat(5000)}` });
      expect(big.status).toBe(413);
      expect(await rig.metric('relay_login_attempts_total', { result: 'ok' })).toBe(0);
      // an open redirect is not on offer
      for (const next of ['//evil.example/', '/..//evil.example/', '/%2e%2e//evil.example/']) {
        const r = await signIn('198.51.100.7', { user: 'viewer', password: 'correct horse', next });
        expect([next, r.headers.location]).toEqual([next, '/']);
      }
    });

    test('5 failures a minute per client address: then 429 with Retry-After, and right credentials are not even checked', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      rig.store.publish(fakeJpeg(1));
      for (let i = 0; i < 5; i++) expect((await signIn('198.51.100.7', { user: 'viewer', password: `guess ${i}` })).status).toBe(401);
      const blocked = await signIn();
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(50);
      expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(blocked.headers['set-cookie']).toBeUndefined();
      // Basic / token from the same address: not checked either
      const snap = await request(`${rig.base}/snapshot.jpg`, { headers: { ...via('198.51.100.7'), Authorization: basic('viewer', 'correct horse') } });
      expect(snap.status).toBe(429);
      expect(snap.headers['retry-after']).toBeDefined();
      // another client is not affected
      expect((await signIn('198.51.100.8')).status).toBe(303);
      expect(await rig.metric('relay_login_attempts_total', { result: 'bad_credentials' })).toBe(5);
      expect(await rig.metric('relay_login_attempts_total', { result: 'rate_limited' })).toBe(1);
      expect(await rig.metric('relay_clients_rejected_total', { reason: 'rate_limited' })).toBe(1);
      expect(rig.logs.filter((l) => String(l.msg).startsWith('too many failed sign-ins'))).toEqual([expect.objectContaining({ ip: '198.51.100.7' })]);
    });

    test('IPv6 clients are limited per /64: a fresh address of the same /64 is blocked too', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      for (let i = 1; i <= 5; i++) expect((await signIn(`2001:db8:1:2::${i}`, { user: 'viewer', password: `guess ${i}` })).status).toBe(401);
      expect((await signIn('2001:db8:1:2:ffff:ffff:ffff:ffff')).status).toBe(429);
      // the next /64 is someone else
      expect((await signIn('2001:db8:1:3::1')).status).toBe(303);
      expect(rig.logs.filter((l) => String(l.msg).startsWith('too many failed sign-ins'))).toEqual([expect.objectContaining({ ip: '2001:db8:1:2::5' })]);
    });

    test('wrong Basic credentials count too: after 5 the right ones get 429', async () => {
      rig = await startRig({ ...creds, trustedProxies: TRUST_LOCAL });
      rig.store.publish(fakeJpeg(1));
      const get = (pw: string) => request(`${rig.base}/snapshot.jpg`, { headers: { ...via('198.51.100.9', 'http'), Authorization: basic('viewer', pw) } });
      for (let i = 0; i < 5; i++) expect((await get(`guess ${i}`)).status).toBe(401);
      expect((await get('correct horse')).status).toBe(429);
      expect((await request(`${rig.base}/snapshot.jpg?token=tok-12345678`, { headers: via('198.51.100.9', 'http') })).status).toBe(429);
      // no credentials at all: the usual 401
      expect((await request(`${rig.base}/snapshot.jpg`, { headers: via('198.51.100.9', 'http') })).status).toBe(401);
    });
  });

  test('BASE_PATH: every route, redirect, form and cookie under the prefix; health also at /', async () => {
    rig = await startRig({ basePath: '/camrelay', viewerPassword: 'correct horse', trustedProxies: TRUST_LOCAL });
    rig.store.publish(fakeJpeg(1));
    const auth = { Authorization: basic('viewer', 'correct horse') };
    const page = await request(`${rig.base}/camrelay/`, { headers: auth });
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('<script src="viewer.js">');
    for (const p of ['/camrelay/snapshot.jpg', '/camrelay/status.json', '/camrelay/viewer.js', '/camrelay/healthz', '/healthz', '/readyz']) {
      expect([p, (await request(`${rig.base}${p}`, { headers: auth })).status]).toEqual([p, 200]);
    }
    for (const p of ['/', '/snapshot.jpg', '/camrelayx/', '/other/camrelay/', '/status.json']) {
      expect([p, (await request(`${rig.base}${p}`, { headers: auth })).status]).toEqual([p, 404]);
    }
    const r = await request(`${rig.base}/camrelay?mode=poll`);
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('/camrelay/?mode=poll');
    const form = await request(`${rig.base}/camrelay/cam/x/`, { headers: via('198.51.100.7') });
    expect(form.body.toString()).toContain('action="/camrelay/login"');
    expect(form.body.toString()).toContain('href="/camrelay/viewer.css"');
    const signIn = await request(`${rig.base}/camrelay/login`, { method: 'POST', headers: { ...via('198.51.100.7'), ...FORM }, body: 'password=correct%20horse&user=viewer' });
    expect(signIn.status).toBe(303);
    expect(signIn.headers.location).toBe('/camrelay/');
    expect(parseSetCookie((signIn.headers['set-cookie'] as string[])[0]).path).toBe('/camrelay');
  });

  test('SNAPSHOT_CACHE_S: Cache-Control public, max-age=N when anyone may see the camera, 304 too; else no-store', async () => {
    rig = await startRig({ snapshotCacheS: 7 });
    rig.store.publish(fakeJpeg(1));
    const r = await request(`${rig.base}/snapshot.jpg`);
    expect(r.headers['cache-control']).toBe('public, max-age=7');
    const again = await request(`${rig.base}/snapshot.jpg`, { headers: { 'If-None-Match': String(r.headers.etag) } });
    expect(again.status).toBe(304);
    expect(again.headers['cache-control']).toBe('public, max-age=7');
    await rig.stop();
    // credentials configured (the single camera is private), or an address list: never cacheable
    for (const o of [{ viewerToken: 'tok-12345678' }, { allowCidrs: ['127.0.0.0/8'] }]) {
      rig = await startRig({ snapshotCacheS: 7, ...o });
      rig.store.publish(fakeJpeg(1));
      const p = await request(`${rig.base}/snapshot.jpg?token=tok-12345678`);
      expect(p.status).toBe(200);
      expect(p.headers['cache-control']).toBe('no-store');
      await rig.stop();
    }
    rig = await startRig({ snapshotCacheS: 7, waitTimeoutMs: 100 });
    // no frame: the 503 is never cacheable
    expect((await request(`${rig.base}/snapshot.jpg`)).headers['cache-control']).toBe('no-store');
  });
});
