/**
 * caddy/Caddyfile for every value of the variables it reads: `caddy adapt` (Debian's caddy 2.6; the
 * file uses nothing that 2.8+ parses differently) turns it into Caddy's JSON, whose parts are checked
 * here. A value outside the contract (GRAFANA_PUBLIC=yes, TLS_MODE=acme, an empty DOMAIN) must make
 * Caddy refuse to start, naming the file. The Caddyfile running in front of a real relay is
 * relay/test/integration/relay-caddy.test.ts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CADDY, ROOT, describeWith } from '../../../test-support';

const FILE = path.join(ROOT, 'caddy', 'Caddyfile');

interface Adapted {
  ok: boolean;
  error: string;
  json: Record<string, unknown>;
  text: string;
}

function adapt(env: Record<string, string>): Adapted {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-adapt-'));
  try {
    const r = spawnSync(CADDY as string, ['adapt', '--config', FILE, '--adapter', 'caddyfile'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env }, encoding: 'utf8', timeout: 20_000,
    });
    const ok = r.status === 0;
    return { ok, error: r.stderr, text: r.stdout, json: ok ? (JSON.parse(r.stdout) as Record<string, unknown>) : {} };
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const server = (a: Adapted): Json => (a.json as Json).apps.http.servers.srv0;
/** every handler object in the server's routes, depth first */
function handlers(node: Json, out: Json[] = []): Json[] {
  if (Array.isArray(node)) node.forEach((n) => handlers(n, out));
  else if (node && typeof node === 'object') {
    if (typeof node.handler === 'string') out.push(node);
    Object.values(node).forEach((v) => handlers(v, out));
  }
  return out;
}

describeWith('caddy', CADDY !== undefined, 'caddy/Caddyfile', () => {
  test('defaults: localhost on 443 from the local CA, TLS 1.2+, HSTS, the relay upstream, no Grafana, h1/h2 only', () => {
    const a = adapt({});
    expect(a.error).not.toContain('"level":"error"');
    const s = server(a);
    expect(s.listen).toEqual([':443']);
    expect(s.protocols).toEqual(['h1', 'h2']);
    expect(s.routes[0].match).toEqual([{ host: ['localhost'] }]);
    expect(s.tls_connection_policies[0]).toMatchObject({ protocol_min: 'tls1.2', default_sni: 'localhost' });
    const all = handlers(s.routes);
    const proxies = all.filter((h) => h.handler === 'reverse_proxy');
    expect(proxies).toHaveLength(1);
    expect(proxies[0].upstreams).toEqual([{ dial: 'relay:8081' }]);
    // a client's Forwarded header is dropped; X-Forwarded-* are Caddy's own (its default)
    expect(proxies[0].headers.request.delete).toEqual(['Forwarded']);
    // MJPEG: no flush_interval (Caddy flushes streams without Content-Length at once), keep-alive below the relay's 5 s
    expect(proxies[0].flush_interval).toBeUndefined();
    expect(proxies[0].transport.keep_alive.idle_timeout).toBe(4e9);
    const headers = all.find((h) => h.handler === 'headers');
    expect(headers.response.set['Strict-Transport-Security']).toEqual(['max-age=31536000']);
    expect(headers.response.delete).toEqual(['Server']);
    expect(a.text).not.toContain('grafana');
    // Caddy's local CA: never installed into this machine's trust store; no admin API
    expect(a.json).toMatchObject({ admin: { disabled: true } });
    expect(JSON.stringify((a.json as Json).apps.pki ?? {})).toContain('"install_trust":false');
    // the access log drops ?token= and the Location of redirects
    const log = (a.json as Json).logging.logs.log0;
    expect(log.encoder.fields['request>uri']).toEqual({ filter: 'query', actions: [{ type: 'delete', parameter: 'token' }] });
    expect(log.encoder.fields['resp_headers>Location']).toEqual({ filter: 'delete' });
  });

  test('a real DOMAIN: ACME (no issuer configured = Caddy default), HTTPS_PORT and HTTP_REDIRECT_PORT', () => {
    const a = adapt({ DOMAIN: 'cam.example.com', HTTPS_PORT: '8443', HTTP_REDIRECT_PORT: '8080' });
    const s = server(a);
    expect(s.listen).toEqual([':8443']);
    expect(s.routes[0].match).toEqual([{ host: ['cam.example.com'] }]);
    expect((a.json as Json).apps.http.http_port).toBe(8080);
    expect((a.json as Json).apps.tls).toBeUndefined();
  });

  test('TLS_MODE=internal: the local CA for any name', () => {
    const a = adapt({ DOMAIN: 'cam.lan', TLS_MODE: 'internal' });
    expect((a.json as Json).apps.tls.automation.policies).toEqual([{ subjects: ['cam.lan'], issuers: [{ module: 'internal' }] }]);
    expect(server(a).tls_connection_policies[0]).toMatchObject({ protocol_min: 'tls1.2' });
  });

  test('GRAFANA_PUBLIC=true: Grafana at /grafana/ (prefix kept), the relay for everything else; upstreams and HSTS from the environment', () => {
    const a = adapt({ GRAFANA_PUBLIC: 'true', GRAFANA_UPSTREAM: 'grafana.internal:3000', RELAY_UPSTREAM: '10.0.0.5:8081', HSTS_MAX_AGE: '0' });
    const all = handlers(server(a).routes);
    const dials = all.filter((h) => h.handler === 'reverse_proxy').map((h) => h.upstreams[0].dial);
    expect(dials).toEqual(['grafana.internal:3000', '10.0.0.5:8081']);
    expect(a.text).toContain('"path":["/grafana/*"]');
    expect(all.some((h) => h.handler === 'rewrite' || h.handler === 'strip_path_prefix')).toBe(false);
    expect(all.find((h) => h.handler === 'static_response' && h.status_code === 308)?.headers.Location).toEqual(['/grafana/']);
    expect(all.find((h) => h.handler === 'headers').response.set['Strict-Transport-Security']).toEqual(['max-age=0']);
  });

  test('every file is as `caddy fmt` writes it (Caddy warns about unformatted input)', () => {
    for (const f of ['Caddyfile', 'tls-auto.caddy', 'tls-internal.caddy', 'grafana-true.caddy', 'grafana-false.caddy']) {
      const file = path.join(ROOT, 'caddy', f);
      const r = spawnSync(CADDY as string, ['fmt', file], { encoding: 'utf8', timeout: 20_000 });
      expect([f, r.stdout]).toEqual([f, fs.readFileSync(file, 'utf8')]);
    }
  });

  test.each([
    [{ GRAFANA_PUBLIC: 'yes' }, /File to import not found: grafana-yes\.caddy/],
    [{ TLS_MODE: 'acme' }, /File to import not found: tls-acme\.caddy/],
    [{ DOMAIN: '' }, /Caddyfile:\d+/],
  ])('%j is refused with the file named', (env, message) => {
    const a = adapt(env);
    expect(a.ok).toBe(false);
    expect(a.error).toMatch(message);
  });
});
