/**
 * A relay with public and private cameras behind a (simulated) HTTPS proxy at 127.0.0.1: the
 * sign-in form answers unknown and private cameras alike, the cookie opens private cameras like any
 * credential, SNAPSHOT_CACHE_S marks only public cameras' snapshots cacheable, BASE_PATH carries
 * through the camera routes. Real loopback sockets, an in-process relay (test-support).
 */
import { parseSetCookie } from 'cookie';
import { MultiRelay, request, startPubPrivRelay } from '../../../test-support';

jest.setTimeout(30_000);

const HTTPS = { 'X-Forwarded-For': '198.51.100.7', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'cam.example' };
const ENV = { TRUSTED_PROXY_CIDRS: '127.0.0.1/32', VIEWER_PASSWORD: 'correct horse', VIEWER_TOKEN: 'tok-12345678', SNAPSHOT_CACHE_S: '5' };

let relay: MultiRelay | undefined;
afterEach(async () => {
  await relay?.stop();
  relay = undefined;
});

const start = (env: Record<string, string> = {}) => startPubPrivRelay({ ...ENV, ...env });

async function signIn(r: MultiRelay, base = ''): Promise<string> {
  const res = await request(`${r.base}${base}/login`, {
    method: 'POST', headers: { ...HTTPS, 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'https://cam.example' },
    body: 'user=viewer&password=correct+horse',
  });
  expect(res.status).toBe(303);
  const c = parseSetCookie((res.headers['set-cookie'] as string[])[0]);
  return `${c.name}=${c.value}`;
}

describe('relay behind an HTTPS proxy', () => {
  test('unknown and private cameras get the same sign-in form; the cookie opens the private one', async () => {
    relay = await start();
    const r = relay;
    const priv = await request(`${r.base}/cam/priv/`, { headers: HTTPS });
    const unknown = await request(`${r.base}/cam/nope/`, { headers: HTTPS });
    expect(priv.status).toBe(401);
    expect(unknown.status).toBe(401);
    // the same page, but for where it goes back to (the path the visitor typed)
    expect(unknown.body.toString().replace('/cam/nope/', '/cam/priv/')).toBe(priv.body.toString());
    for (const h of ['www-authenticate', 'content-security-policy', 'content-type', 'cache-control']) expect(unknown.headers[h]).toEqual(priv.headers[h]);
    // a public camera needs nothing
    expect((await request(`${r.base}/cam/pub/`, { headers: HTTPS })).status).toBe(200);

    const cookie = await signIn(r);
    const headers = { ...HTTPS, Cookie: cookie };
    expect((await request(`${r.base}/cam/priv/`, { headers })).status).toBe(200);
    const snap = await request(`${r.base}/cam/priv/snapshot.jpg`, { headers });
    expect(snap.status).toBe(200);
    expect(snap.body.length).toBe(200);
    expect((await request(`${r.base}/cam/nope/`, { headers })).status).toBe(404);
    const status = JSON.parse((await request(`${r.base}/status.json`, { headers })).body.toString()) as { session: boolean; cameras: { name: string }[] };
    expect(status.session).toBe(true);
    expect(status.cameras.map((c) => c.name)).toEqual(['pub', 'priv']);
  });

  test('sign-out works from every page in a browser without fetch metadata: the pages send their origin, never more', async () => {
    relay = await start();
    const r = relay;
    const cookie = await signIn(r);
    const headers = { ...HTTPS, Cookie: cookie };
    for (const path of ['/', '/cam/pub/', '/cam/priv/', '/login']) {
      const page = await request(`${r.base}${path}`, { headers: path === '/login' ? HTTPS : headers });
      expect([path, page.status]).toEqual([path, 200]);
      const meta = /<meta name="referrer" content="([^"]+)">/.exec(page.body.toString())?.[1];
      // both say the same; a <meta> would win over the header
      expect([path, page.headers['referrer-policy'], meta]).toEqual([path, 'strict-origin', 'strict-origin']);
      // what a browser without Sec-Fetch-Site sends as Origin with the page's form POST (Fetch: "serializing a
      // request origin" is "null" under no-referrer), and as Referer with its loads (origin only)
      const origin = meta === 'no-referrer' ? 'null' : 'https://cam.example';
      const out = await request(`${r.base}/logout`, { method: 'POST', headers: { ...headers, Origin: origin, Referer: 'https://cam.example/' } });
      expect([path, out.status]).toEqual([path, 303]);
    }
  });

  test('/readyz without credentials names only the public cameras; with them, and on the metrics port, every one', async () => {
    relay = await start({ BASE_PATH: '/camrelay' });
    const r = relay;
    const cookie = await signIn(r, '/camrelay');
    const names = (body: Buffer) => (JSON.parse(body.toString()) as { cameras: { name: string }[] }).cameras.map((c) => c.name);
    const metricsPort = await request(`http://127.0.0.1:${r.ports.metricsPort}/readyz`);
    expect(names(metricsPort.body)).toEqual(['pub', 'priv']);
    for (const path of ['/readyz', '/camrelay/readyz']) {
      for (const headers of [{}, HTTPS, { Authorization: 'Bearer wrong-token-1' }, { Cookie: '__Secure-camrelay-session=1.9999999999.AAAA.BBBB' }]) {
        const anon = await request(`${r.base}${path}`, { headers });
        expect([path, headers, names(anon.body)]).toEqual([path, headers, ['pub']]);
        expect(anon.body.toString()).not.toContain('priv');
        // the status still covers every camera
        expect(anon.status).toBe(metricsPort.status);
      }
      for (const headers of [{ Authorization: 'Bearer tok-12345678' }, { ...HTTPS, Cookie: cookie }]) {
        const full = await request(`${r.base}${path}`, { headers });
        expect([path, names(full.body)]).toEqual([path, ['pub', 'priv']]);
      }
    }
  });

  test('SNAPSHOT_CACHE_S: public cameras cacheable, private ones no-store whatever the credential', async () => {
    relay = await start();
    const r = relay;
    const cookie = await signIn(r);
    for (const headers of [{}, HTTPS, { Authorization: 'Bearer tok-12345678' }]) {
      const pub = await request(`${r.base}/cam/pub/snapshot.jpg`, { headers });
      expect(pub.status).toBe(200);
      expect(pub.headers['cache-control']).toBe('public, max-age=5');
    }
    // the seed path serves the first camera, public here
    expect((await request(`${r.base}/snapshot.jpg`)).headers['cache-control']).toBe('public, max-age=5');
    for (const headers of [{ Authorization: 'Bearer tok-12345678' }, { ...HTTPS, Cookie: cookie }]) {
      // the camera is pulled continuously: a new frame may come between the two requests (then a 200
      // with the new frame, no-store as well), so try a few pairs until one gets its 304
      const answers: [number, unknown][] = [];
      for (let i = 0; i < 10 && !answers.some(([status]) => status === 304); i++) {
        const priv = await request(`${r.base}/cam/priv/snapshot.jpg`, { headers });
        expect([priv.status, priv.headers['cache-control']]).toEqual([200, 'no-store']);
        const again = await request(`${r.base}/cam/priv/snapshot.jpg`, { headers: { ...headers, 'If-None-Match': String(priv.headers.etag) } });
        answers.push([again.status, again.headers['cache-control']]);
      }
      expect(answers).toContainEqual([304, 'no-store']);
      for (const a of answers) expect([[200, 'no-store'], [304, 'no-store']]).toContainEqual(a);
    }
    expect((await request(`${r.base}/cam/priv/snapshot.jpg`)).headers['cache-control']).toBe('no-store');
  });

  test('BASE_PATH carries through camera routes, redirects and the overview', async () => {
    relay = await start({ BASE_PATH: '/camrelay' });
    const r = relay;
    const redirect = await request(`${r.base}/camrelay/cam/pub?fps=2`);
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/camrelay/cam/pub/?fps=2');
    expect((await request(`${r.base}/camrelay/cam/pub/snapshot.jpg`)).status).toBe(200);
    expect((await request(`${r.base}/cam/pub/snapshot.jpg`)).status).toBe(404);
    const overview = await request(`${r.base}/camrelay/`);
    expect(overview.status).toBe(200);
    expect(overview.body.toString()).toContain('<script src="overview.js">');
    const cookie = await signIn(r, '/camrelay');
    expect((await request(`${r.base}/camrelay/cam/priv/snapshot.jpg`, { headers: { Cookie: cookie } })).status).toBe(200);
  });
});
