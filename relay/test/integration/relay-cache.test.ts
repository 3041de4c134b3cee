/**
 * SNAPSHOT_CACHE_S with a real shared HTTP cache in front: Debian's varnishd (run in the foreground
 * on loopback) before an in-process relay with a public and a private camera. Requests are counted
 * at the relay (relay_client_connections_total{protocol="snapshot"}: one per snapshot request it
 * answered, relay_clients_rejected_total{reason="unauthorized"}).
 */
import http from 'node:http';
import { parseSetCookie } from 'cookie';
import { describeWith, killAllChildren, MultiRelay, request, startPubPrivRelay, startVarnish, VARNISHD, VarnishProc } from '../../../test-support';

jest.setTimeout(60_000);

const CACHE_S = 2;
const CLIENTS = 200;
const POLL_MS = 4000;

describeWith('varnish', VARNISHD !== undefined, 'relay behind a shared HTTP cache (varnish)', () => {
  let relay: MultiRelay;
  let varnish: VarnishProc | undefined;

  beforeAll(async () => {
    relay = await startPubPrivRelay({
      SNAPSHOT_CACHE_S: String(CACHE_S), VIEWER_TOKEN: 'cache-test-token', VIEWER_PASSWORD: 'cache-test-password', TRUSTED_PROXY_CIDRS: '127.0.0.1/32',
      MAX_CLIENTS_PER_IP: '1000',
    });
  });

  afterEach(async () => {
    await varnish?.stop();
    varnish = undefined;
  });

  afterAll(async () => {
    await relay?.stop();
    await killAllChildren();
  });

  const snapshotRequests = () => relay.metric('relay_client_connections_total', { protocol: 'snapshot' });

  test(`${CLIENTS} clients polling a public snapshot for ${POLL_MS / 1000} s cost the relay about one request per SNAPSHOT_CACHE_S`, async () => {
    const v = (varnish = await startVarnish(relay.ports.httpPort));
    const url = `${v.base}/cam/pub/snapshot.jpg`;
    // warm: the first answer through the cache is public, max-age
    const first = await request(url);
    expect(first.status).toBe(200);
    expect(first.headers['cache-control']).toBe(`public, max-age=${CACHE_S}`);
    const before = await snapshotRequests();
    const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
    const statuses = new Map<number, number>();
    const seqs = new Set<string>();
    const until = Date.now() + POLL_MS;
    const poller = async () => {
      while (Date.now() < until) {
        const r = await request(url, { agent });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        seqs.add(String(r.headers['x-frame-seq']));
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    try {
      await Promise.all(Array.from({ length: CLIENTS }, poller));
    } finally {
      agent.destroy();
    }
    const served = [...statuses.values()].reduce((a, b) => a + b, 0);
    const reached = (await snapshotRequests()) - before;
    // every poll answered, by the cache
    expect([...statuses.keys()]).toEqual([200]);
    expect(served).toBeGreaterThan(CLIENTS * 5);
    // about POLL_MS / CACHE_S refreshes (+1 for a refresh in flight at either end, +1 for grace)
    expect(reached).toBeGreaterThanOrEqual(1);
    expect(reached).toBeLessThanOrEqual(Math.ceil(POLL_MS / 1000 / CACHE_S) + 2);
    // the pollers saw the warm frame and then each refresh's (the picture moves on, from the cache)
    expect(seqs.size).toBeGreaterThanOrEqual(2);
    expect(seqs.size).toBeLessThanOrEqual(reached + 1);
  });

  test('a private snapshot never comes from the cache, with or without credentials, even from a cache that ignores them', async () => {
    // a sign-in cookie (the form, as if over HTTPS through the trusted proxy)
    const signIn = await request(`http://127.0.0.1:${relay.ports.httpPort}/login`, {
      method: 'POST', headers: { 'X-Forwarded-Proto': 'https', 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'user=viewer&password=cache-test-password',
    });
    const c = parseSetCookie((signIn.headers['set-cookie'] as string[])[0]);
    const cookie = `${c.name}=${c.value}`;
    for (const careless of [false, true]) {
      const v = (varnish = await startVarnish(relay.ports.httpPort, { careless }));
      const url = `${v.base}/cam/priv/snapshot.jpg`;
      const unauthorized = () => relay.metric('relay_clients_rejected_total', { reason: 'unauthorized' });
      for (const headers of [{ Authorization: 'Bearer cache-test-token' }, { Cookie: cookie }]) {
        const before = await snapshotRequests();
        for (let i = 0; i < 10; i++) {
          const r = await request(url, { headers });
          expect([careless, r.status, r.headers['cache-control'], r.body.length]).toEqual([careless, 200, 'no-store', 200]);
          // anonymous right after: the relay's 401, never the frame a credentialed client just got
          const anon = await request(url);
          expect([careless, anon.status]).toEqual([careless, 401]);
        }
        expect(await snapshotRequests()).toBe(before + 10);
      }
      const before = await unauthorized();
      for (let i = 0; i < 10; i++) expect((await request(url)).status).toBe(401);
      expect(await unauthorized()).toBe(before + 10);
      await v.stop();
      varnish = undefined;
    }
    // and the public camera through the careless cache is still cached
    const v = (varnish = await startVarnish(relay.ports.httpPort, { careless: true }));
    await request(`${v.base}/cam/pub/snapshot.jpg`);
    const before = await snapshotRequests();
    for (let i = 0; i < 10; i++) expect((await request(`${v.base}/cam/pub/snapshot.jpg`, { headers: { Authorization: 'Bearer cache-test-token' } })).status).toBe(200);
    expect((await snapshotRequests()) - before).toBeLessThanOrEqual(1);
  });
});
