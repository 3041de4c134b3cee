/**
 * The settings for running behind an HTTPS proxy: TRUSTED_PROXY_CIDRS, BASE_PATH, SNAPSHOT_CACHE_S,
 * SESSION_TTL_MS and SESSION_SECRET(_FILE): defaults and the errors that stop the relay (exit 2).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@camrelay/common';
import { loadConfig, RelayConfig } from '../../src/config';

function cfg(env: Record<string, string> = {}): RelayConfig {
  const r = loadConfig([], env);
  if (r.help) throw new Error('unexpected help');
  return r.config;
}

function error(env: Record<string, string>): ConfigError {
  try {
    loadConfig([], env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('HTTPS-related relay settings', () => {
  test('defaults: no trusted proxy, served at /, snapshots no-store, 7-day sign-in, no extra secret', () => {
    const c = cfg().clients;
    expect(c.trustedProxies.empty).toBe(true);
    expect(c).toMatchObject({ basePath: '', snapshotCacheS: 0, sessionTtlMs: 604_800_000, sessionSecret: undefined });
  });

  test('values are read', () => {
    const c = cfg({ TRUSTED_PROXY_CIDRS: '172.16.0.0/12, fd00::/8', BASE_PATH: '/cams/home-1', SNAPSHOT_CACHE_S: '5', SESSION_TTL_MS: '3600000', SESSION_SECRET: 'sixteen-chars-ok' }).clients;
    expect(c.trustedProxies.cidrs).toEqual(['172.16.0.0/12', 'fd00::/8']);
    expect(c.trustedProxies.contains('::ffff:172.18.0.3')).toBe(true);
    expect(c).toMatchObject({ basePath: '/cams/home-1', snapshotCacheS: 5, sessionTtlMs: 3_600_000, sessionSecret: 'sixteen-chars-ok' });
  });

  test('SESSION_SECRET_FILE reads the secret from a file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-secret-'));
    try {
      fs.writeFileSync(path.join(dir, 's'), 'a-secret-from-a-file\n');
      expect(cfg({ SESSION_SECRET_FILE: path.join(dir, 's') }).clients.sessionSecret).toBe('a-secret-from-a-file');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['BASE_PATH', '/camrelay/'], ['BASE_PATH', 'camrelay'], ['BASE_PATH', '/a/../b'], ['BASE_PATH', '/..'], ['BASE_PATH', '/a//b'],
    ['BASE_PATH', '/a b'], ['BASE_PATH', '/a?b'], ['BASE_PATH', '/%2e'], ['BASE_PATH', '/'],
    ['TRUSTED_PROXY_CIDRS', '10.0.0.0/33'], ['TRUSTED_PROXY_CIDRS', 'caddy'],
    ['SNAPSHOT_CACHE_S', '-1'], ['SNAPSHOT_CACHE_S', '1.5'], ['SNAPSHOT_CACHE_S', '86401'],
    ['SESSION_TTL_MS', '59999'], ['SESSION_TTL_MS', 'week'],
  ])('%s=%j is refused, naming the variable and the value', (name, value) => {
    const e = error({ [name]: value });
    expect(e.variable).toBe(name);
    expect(e.message).toContain(`invalid ${name}=${JSON.stringify(value)}`);
  });

  test('a short SESSION_SECRET is refused without echoing it', () => {
    const e = error({ SESSION_SECRET: 'short-secret' });
    expect(e.variable).toBe('SESSION_SECRET');
    expect(e.message).not.toContain('short-secret');
  });

  test('BASE_PATH: the error says what is allowed', () => {
    expect(error({ BASE_PATH: '/camrelay/' }).message).toMatch(/starting with "\/", no trailing "\/"/);
  });
});
