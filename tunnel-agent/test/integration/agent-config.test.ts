/** The built agent's start-up: invalid configuration exits 2 naming the variable; no sshd needed. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ed25519KeyPair } from '../../../test-support/ssh-keys';
import { killAllChildren, spawnPackage } from '../../../test-support';

jest.setTimeout(30_000);
afterAll(() => killAllChildren());

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-cfg-'));
const key = path.join(dir, 'id');
fs.writeFileSync(key, ed25519KeyPair().private, { mode: 0o600 });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const ok = { SSH_HOST: '127.0.0.1', SSH_PRIVATE_KEY_FILE: key, SSH_HOST_KEY: 'SHA256:v0hp/6iN1QKJ5SJ+dwHhRHlI31smn6tzZ8knODD5sgo', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' };

test.each([
  [{ TUNNEL_FORWARDS: '1234:cam' }, /invalid TUNNEL_FORWARDS="1234:cam": expected .*\[bind_address:\]port:host:hostport/],
  [{ SSH_HOST_KEY: '' }, /invalid SSH_KNOWN_HOSTS_FILE="": expected a known_hosts file, or SSH_HOST_KEY/],
  [{ SSH_KEEPALIVE_INTERVAL_S: 'often' }, /invalid SSH_KEEPALIVE_INTERVAL_S="often"/],
  // the key itself pasted instead of its path: refused, and not echoed (checked below)
  [{ SSH_PRIVATE_KEY_FILE: fs.readFileSync(key, 'utf8') }, /invalid SSH_PRIVATE_KEY_FILE="<redacted[^"]*": expected the PATH of a file/],
])('%j exits 2 with a message naming the variable', async (env, re) => {
  const child = spawnPackage('tunnel-agent', [], { ...ok, ...env });
  const r = await child.exited;
  expect(r.code).toBe(2);
  expect(child.stderr()).toMatch(re);
  expect(child.stdout()).toBe('');
  expect(child.stderr()).not.toMatch(/BEGIN OPENSSH PRIVATE KEY/);
});

test('a valid configuration with an unreachable server starts, serves /healthz, is not ready, and exits 0 on SIGTERM', async () => {
  const child = spawnPackage('tunnel-agent', [], { ...ok, SSH_PORT: '9' });
  const started = await child.waitForLog((l) => l.msg === 'tunnel-agent started');
  const port = String(started.metrics).split(':').pop();
  expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  expect(ready.status).toBe(503);
  expect(await ready.json()).toMatchObject({ ready: false, forwards: { '1234:cam:1234': false } });
  const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
  expect(await metrics.text()).toMatch(/tunnel_agent_build_info\{version="0.1.0"/);
  expect(await child.kill('SIGTERM')).toEqual({ code: 0, signal: null });
});

test('a key file readable by group/others is logged as a warning by the running agent (and the key is not)', async () => {
  const loose = path.join(dir, 'id-loose');
  fs.copyFileSync(key, loose);
  fs.chmodSync(loose, 0o640);
  const child = spawnPackage('tunnel-agent', [], { ...ok, SSH_PORT: '9', SSH_PRIVATE_KEY_FILE: loose });
  const warn = await child.waitForLog((l) => /readable by group\/others/.test(String(l.msg)));
  expect(warn).toMatchObject({ level: 40 });
  expect(String(warn.msg)).toContain(loose);
  await child.waitForLog((l) => l.msg === 'tunnel-agent started');
  expect(await child.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  const body = fs.readFileSync(key, 'utf8').split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
  for (const l of body) expect(child.stdout() + child.stderr()).not.toContain(l);
});
