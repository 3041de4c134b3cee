/**
 * scripts/keys.sh (`make keys`): what it writes, with which modes, idempotence and FORCE=1.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeWith, findExecutable } from '../../../test-support';
import { KEYS_SCRIPT, SSH_KEYGEN_BIN } from '../../../test-support/sshd';

function keys(dir: string, env: Record<string, string> = {}) {
  // the script cds to the repo root; SECRETS_DIR is absolute and ENV_FILE keeps a developer's .env out
  const r = spawnSync('bash', [KEYS_SCRIPT], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, SECRETS_DIR: dir, AGENT_UID: '0', ENV_FILE: '/nonexistent/.env', ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const mode = (f: string) => fs.statSync(f).mode & 0o777;
const read = (f: string) => fs.readFileSync(f, 'utf8');

describeWith('openssh-client (ssh-keygen)', findExecutable([SSH_KEYGEN_BIN]) !== undefined, 'make keys (scripts/keys.sh)', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-keys-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('writes the client key, authorized_keys and host key with safe modes and prints the pin', () => {
    const dir = path.join(tmp, 'secrets');
    const r = keys(dir);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(mode(dir)).toBe(0o700);
    expect(mode(`${dir}/tunnel_client_key`)).toBe(0o600);
    expect(mode(`${dir}/tunnel_host_key`)).toBe(0o600);
    expect(read(`${dir}/tunnel_client_key.pub`)).toMatch(/^ssh-ed25519 /);
    const clientPub = read(`${dir}/tunnel_client_key.pub`).split(' ').slice(0, 2).join(' ');
    expect(read(`${dir}/tunnel_authorized_keys`)).toBe(`restrict,port-forwarding ${clientPub} camrelay-tunnel-agent\n`);
    const fp = spawnSync(SSH_KEYGEN_BIN, ['-l', '-E', 'sha256', '-f', `${dir}/tunnel_host_key.pub`], { encoding: 'utf8' }).stdout.split(' ')[1];
    expect(r.out).toContain(`SSH_HOST_KEY=${fp}`);
    const hostPub = read(`${dir}/tunnel_host_key.pub`).split(' ').slice(0, 2).join(' ');
    expect(r.out).toContain(`SSH_HOST_KEY=${hostPub}`);
    expect(r.out).toContain(`[<your-vps>]:2222 ${hostPub}`);
    expect(fs.existsSync(`${dir}/tunnel_known_hosts`)).toBe(false);
  });

  test('is idempotent; FORCE=1 replaces every key', () => {
    const dir = path.join(tmp, 's');
    expect(keys(dir).code).toBe(0);
    const before = ['tunnel_client_key', 'tunnel_host_key', 'tunnel_authorized_keys'].map((f) => read(`${dir}/${f}`));
    const again = keys(dir);
    expect(again.code).toBe(0);
    expect(again.out).toContain('client key: kept, host key: kept');
    expect(['tunnel_client_key', 'tunnel_host_key', 'tunnel_authorized_keys'].map((f) => read(`${dir}/${f}`))).toEqual(before);
    const forced = keys(dir, { FORCE: '1' });
    expect(forced.code).toBe(0);
    expect(forced.out).toContain('client key: new, host key: new');
    const after = ['tunnel_client_key', 'tunnel_host_key', 'tunnel_authorized_keys'].map((f) => read(`${dir}/${f}`));
    after.forEach((a, i) => expect(a).not.toBe(before[i]));
  });

  test('a new client key alone (rotation) rewrites authorized_keys and keeps the host key', () => {
    const dir = path.join(tmp, 's');
    expect(keys(dir).code).toBe(0);
    const host = read(`${dir}/tunnel_host_key`);
    const auth = read(`${dir}/tunnel_authorized_keys`);
    fs.rmSync(`${dir}/tunnel_client_key`);
    fs.rmSync(`${dir}/tunnel_client_key.pub`);
    const r = keys(dir);
    expect(r.out).toContain('client key: new, host key: kept');
    expect(read(`${dir}/tunnel_host_key`)).toBe(host);
    expect(read(`${dir}/tunnel_authorized_keys`)).not.toBe(auth);
    expect(read(`${dir}/tunnel_authorized_keys`)).toContain(read(`${dir}/tunnel_client_key.pub`).split(' ')[1]);
  });

  test('with SSH_HOST it writes a known_hosts line ([host]:port, or the bare host for port 22)', () => {
    const dir = path.join(tmp, 's');
    expect(keys(dir, { SSH_HOST: 'vps.example.org', SSH_PORT: '2200' }).code).toBe(0);
    const hostPub = read(`${dir}/tunnel_host_key.pub`).split(' ').slice(0, 2).join(' ');
    expect(read(`${dir}/tunnel_known_hosts`)).toBe(`[vps.example.org]:2200 ${hostPub}\n`);
    expect(keys(dir, { SSH_HOST: 'vps.example.org', SSH_PORT: '22' }).code).toBe(0);
    expect(read(`${dir}/tunnel_known_hosts`)).toBe(`vps.example.org ${hostPub}\n`);
  });

  test('refuses a bad FORCE value and a corrupt existing key', () => {
    const dir = path.join(tmp, 's');
    const bad = keys(dir, { FORCE: 'yes' });
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('FORCE=yes is invalid');
    expect(keys(dir).code).toBe(0);
    fs.writeFileSync(`${dir}/tunnel_host_key`, 'garbage\n', { mode: 0o600 });
    const corrupt = keys(dir);
    expect(corrupt.code).toBe(1);
    expect(corrupt.err).toContain('tunnel_host_key exists but is not a readable unencrypted private key');
  });
});
