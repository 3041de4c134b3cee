import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CAMERA_SETTING_KEYS, ConfigError } from '@camrelay/common';
import { loadConfig, RELAY_SETTINGS, RelayConfig, usage } from '../../src/config';

function cfg(env: Record<string, string> = {}, argv: string[] = []): RelayConfig {
  const r = loadConfig(argv, env);
  if (r.help) throw new Error('unexpected help');
  return r.config;
}

function configError(env: Record<string, string>, argv: string[] = []): ConfigError {
  try {
    loadConfig(argv, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('relay config', () => {
  test('defaults match the documented ones', () => {
    const c = cfg();
    expect(c.source).toMatchObject({
      mode: 'pull', host: 'localhost', port: 1234, connectTimeoutMs: 3000, idleTimeoutMs: 3000, deadlineMs: 10_000,
      frameMaxBytes: 4_194_304, retryBaseMs: 250, retryMaxMs: 1000, maxFps: 25, idleFps: 1, staleAfterIdleMs: 5000,
    });
    expect(c.ingest).toMatchObject({ host: '0.0.0.0', port: 1234 });
    expect(c.ingest.allow.empty).toBe(true);
    expect(c.clients).toMatchObject({
      bindHost: '0.0.0.0', rawPort: 8080, httpPort: 8081, maxFrameAgeMs: 1000, waitTimeoutMs: 5000, maxClients: 1000,
      maxClientsPerIp: 50, writeTimeoutMs: 10_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 5000,
      viewerToken: undefined, viewerUser: 'viewer', viewerPassword: undefined,
    });
    expect(c.clients.allow.empty).toBe(true);
    expect(c.metrics).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(c.archive).toMatchObject({ cron: undefined, dir: '/var/lib/camrelay/snapshots', keep: 0, maxAgeHours: 0 });
    expect(c.shutdownGraceMs).toBe(5000);
    expect(c.logLevel).toBe('info');
    // the declared defaults are the parsed ones (the table is the only place they are written)
    const d = RELAY_SETTINGS.defaults();
    expect([c.source.maxFps, c.source.port, c.clients.rawPort, c.archive.maxFrameAgeMs]).toEqual([d.maxFps, d.cameraPort, d.rawPort, d.snapshotMaxFrameAgeMs]);
  });

  test('the config is frozen, deeply', () => {
    const c = cfg();
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.source)).toBe(true);
    expect(() => {
      (c.source as { port: number }).port = 1;
    }).toThrow();
  });

  test('env values are parsed', () => {
    const c = cfg({
      CAMERA_MODE: 'push', INGEST_PORT: '0', INGEST_ALLOW_CIDRS: '10.0.0.0/8, ::1', MAX_FPS: '12.5', IDLE_FPS: '0',
      ALLOW_CIDRS: '192.168.1.0/24', SNAPSHOT_CRON: '*/5 * * * * *', SNAPSHOT_KEEP: '10', SNAPSHOT_MAX_AGE_HOURS: '1.5',
      VIEWER_TOKEN: 'sekrit-token', CLIENT_PORT: '0', HTTP_PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'warn',
    });
    expect(c.source.mode).toBe('push');
    expect(c.source.maxFps).toBe(12.5);
    expect(c.source.idleFps).toBe(0);
    expect(c.ingest.allow.allows('10.1.2.3')).toBe(true);
    expect(c.ingest.allow.allows('::1')).toBe(true);
    expect(c.ingest.allow.allows('192.168.1.1')).toBe(false);
    expect(c.clients.allow.allows('::ffff:192.168.1.7')).toBe(true);
    expect(c.archive).toMatchObject({ cron: '*/5 * * * * *', keep: 10, maxAgeHours: 1.5 });
    expect(c.clients.viewerToken).toBe('sekrit-token');
    expect(c.logLevel).toBe('warn');
  });

  test('the seed flags work and override the environment, in both spellings', () => {
    const c = cfg({ CAMERA_HOST: 'envhost', CAMERA_PORT: '1', CLIENT_PORT: '1' }, ['--esp32-host', '192.168.1.100', '--esp32-port=4321', '--client-port', '0']);
    expect(c.source.host).toBe('192.168.1.100');
    expect(c.source.port).toBe(4321);
    expect(c.clients.rawPort).toBe(0);
  });

  test('--help', () => {
    expect(loadConfig(['--help'], {})).toEqual({ help: true });
    expect(loadConfig(['-h', '--bogus-is-not-parsed-after-help'].slice(0, 1), {})).toEqual({ help: true });
    const u = usage();
    for (const v of RELAY_SETTINGS.variables()) expect(u).toContain(v.name);
    expect(u).toContain('--esp32-host');
  });

  test.each([
    [{ CAMERA_MODE: 'pul' }, 'CAMERA_MODE', 'one of pull, push'],
    [{ CAMERA_PORT: '0' }, 'CAMERA_PORT', 'from 1 to 65535'],
    [{ CAMERA_PORT: '70000' }, 'CAMERA_PORT', 'from 1 to 65535'],
    [{ CLIENT_PORT: 'http' }, 'CLIENT_PORT', 'from 0 to 65535'],
    [{ CAMERA_CONNECT_TIMEOUT_MS: '0' }, 'CAMERA_CONNECT_TIMEOUT_MS', 'from 1'],
    [{ CAMERA_IDLE_TIMEOUT_MS: '-5' }, 'CAMERA_IDLE_TIMEOUT_MS', 'from 1'],
    [{ CAMERA_DEADLINE_MS: '1.5' }, 'CAMERA_DEADLINE_MS', 'an integer'],
    [{ FRAME_MAX_BYTES: '10' }, 'FRAME_MAX_BYTES', 'from 1024'],
    [{ RETRY_BASE_MS: '500', RETRY_MAX_MS: '100' }, 'RETRY_MAX_MS', '>= RETRY_BASE_MS'],
    [{ MAX_FPS: 'fast' }, 'MAX_FPS', 'a number from 0 to 1000'],
    [{ MAX_FPS: '5', IDLE_FPS: '10' }, 'IDLE_FPS', 'MAX_FPS'],
    [{ STALE_AFTER_IDLE_MS: '-1' }, 'STALE_AFTER_IDLE_MS', 'from 0'],
    [{ INGEST_ALLOW_CIDRS: '10.0.0.0/33' }, 'INGEST_ALLOW_CIDRS', 'CIDR'],
    [{ ALLOW_CIDRS: 'example.com' }, 'ALLOW_CIDRS', 'CIDR'],
    [{ MAX_CLIENTS: '0' }, 'MAX_CLIENTS', 'from 1'],
    [{ MAX_CLIENTS_PER_IP: 'many' }, 'MAX_CLIENTS_PER_IP', 'an integer'],
    [{ SNAPSHOT_CRON: '61 * * * * *' }, 'SNAPSHOT_CRON', 'node-cron expression'],
    [{ SNAPSHOT_KEEP: '-1' }, 'SNAPSHOT_KEEP', 'from 0'],
    [{ SNAPSHOT_MAX_AGE_HOURS: 'a day' }, 'SNAPSHOT_MAX_AGE_HOURS', 'a number'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'one of fatal'],
    [{ VIEWER_USER: 'a:b' }, 'VIEWER_USER', 'without ":"'],
    [{ HTTP_PORT: '8080' }, 'HTTP_PORT', 'different from CLIENT_PORT'],
    [{ CAMERA_MODE: 'push', INGEST_PORT: '9100' }, 'INGEST_PORT', 'different from METRICS_PORT'],
    [{ SHUTDOWN_GRACE_MS: 'soon' }, 'SHUTDOWN_GRACE_MS', 'an integer'],
  ])('%j is rejected naming the variable, the value and what is allowed', (env, variable, allowed) => {
    const e = configError(env as Record<string, string>);
    expect(e.variable).toBe(variable);
    expect(e.message).toContain(variable);
    expect(e.message).toContain(JSON.stringify((env as Record<string, string>)[variable]));
    expect(e.message).toContain(allowed);
  });

  test('a bad value given by flag names the flag', () => {
    const e = configError({}, ['--esp32-port', 'abc']);
    expect(e.variable).toBe('--esp32-port');
    expect(e.message).toBe('invalid --esp32-port="abc": expected an integer from 1 to 65535');
  });

  test('unknown flags and missing values are usage errors', () => {
    expect(configError({}, ['--esp32-hots', 'x']).message).toMatch(/unknown argument "--esp32-hots".*--esp32-host/);
    expect(configError({}, ['--esp32-host']).message).toMatch(/--esp32-host needs a value/);
    expect(configError({}, ['--esp32-host', '--client-port', '1']).message).toMatch(/needs a value/);
    expect(configError({}, ['positional']).message).toMatch(/unknown argument/);
    expect(RELAY_SETTINGS.parseArgv([])).toEqual({ help: false, flags: {} });
  });

  describe('secrets', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-config-'));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('are read from *_FILE with the trailing newline removed', () => {
      fs.writeFileSync(path.join(dir, 'token'), 'file-token-123\n');
      fs.writeFileSync(path.join(dir, 'pw'), 'file-password\n');
      const c = cfg({ VIEWER_TOKEN_FILE: path.join(dir, 'token'), VIEWER_PASSWORD_FILE: path.join(dir, 'pw'), VIEWER_USER: 'alice' });
      expect(c.clients.viewerToken).toBe('file-token-123');
      expect(c.clients.viewerPassword).toBe('file-password');
      expect(c.clients.viewerUser).toBe('alice');
    });

    test('a missing file, both forms at once, or a short secret are errors that never print the secret', () => {
      expect(configError({ VIEWER_TOKEN_FILE: path.join(dir, 'nope') }).message).toMatch(/VIEWER_TOKEN_FILE.*readable file.*ENOENT/);
      expect(configError({ VIEWER_TOKEN: 'long-enough', VIEWER_TOKEN_FILE: path.join(dir, 'token') }).message).toMatch(/only one of VIEWER_TOKEN and VIEWER_TOKEN_FILE/);
      const short = configError({ VIEWER_PASSWORD: 'short' });
      expect(short.variable).toBe('VIEWER_PASSWORD');
      expect(short.message).not.toContain('short"');
      expect(short.message).toContain('at least 8 characters');
    });
  });

  test('CAMERA_FROZEN_AFTER_MS: default 60 s, 0 = off; CAMERA_FROZEN_AFTER_S (the issue\'s name) is an equivalent in seconds, not deprecated', () => {
    expect(cfg().cameras[0].frozenAfterMs).toBe(60_000);
    expect(cfg({ CAMERA_FROZEN_AFTER_MS: '0' }).cameras[0].frozenAfterMs).toBe(0);
    const r = loadConfig([], { CAMERA_FROZEN_AFTER_S: '90' });
    if (r.help) throw new Error('unexpected help');
    expect(r.config.cameras[0].frozenAfterMs).toBe(90_000);
    expect(r.warnings).toEqual([]); // no "deprecated" line for a name the issue itself uses
    expect(cfg({ CAMERA_FROZEN_AFTER_S: '0' }).cameras[0].frozenAfterMs).toBe(0);
    expect(configError({ CAMERA_FROZEN_AFTER_S: '60', CAMERA_FROZEN_AFTER_MS: '60000' }).variable).toBe('CAMERA_FROZEN_AFTER_S');
    expect(configError({ CAMERA_FROZEN_AFTER_S: 'a minute' }).message).toBe('invalid CAMERA_FROZEN_AFTER_S="a minute": expected a number of seconds from 0 to 86400');
    expect(configError({ CAMERA_FROZEN_AFTER_MS: '-1' }).variable).toBe('CAMERA_FROZEN_AFTER_MS');
    expect(usage()).toContain('or CAMERA_FROZEN_AFTER_S, the same in seconds (not both)');
  });

  test('.env.example lists every variable with its default, and docs/configuration.md the generated table', () => {
    const root = path.resolve(__dirname, '../../..');
    expect(RELAY_SETTINGS.checkEnvExample(fs.readFileSync(path.join(root, '.env.example'), 'utf8'))).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'docs/configuration.md'), 'utf8')).toContain(RELAY_SETTINGS.markdown());
  });

  test('per-camera settings: the camera list may override them, with key-path errors', () => {
    expect(RELAY_SETTINGS.perCameraKeys()).toEqual(expect.arrayContaining([
      'mode', 'host', 'port', 'connect_timeout_ms', 'idle_timeout_ms', 'deadline_ms', 'frame_max_bytes', 'retry_base_ms', 'retry_max_ms',
      'max_fps', 'idle_fps', 'stale_after_idle_ms', 'ingest_port', 'raw_port', 'snapshot_cron', 'snapshot_keep', 'snapshot_max_age_hours',
      'snapshot_max_frame_age_ms', 'max_frame_age_ms', 'frozen_after_ms',
    ]));
    expect(RELAY_SETTINGS.validateOverrides({ max_fps: 10, raw_port: 8082, snapshot_cron: '0 * * * * *' }, 'cameras.garden')).toEqual({ maxFps: 10, rawPort: 8082, snapshotCron: '0 * * * * *' });
    expect(() => RELAY_SETTINGS.validateOverrides({ max_fps: 'x' }, 'cameras.garden')).toThrow('cameras.garden.max_fps: "x" is not a number (0-1000)');
    expect(() => RELAY_SETTINGS.validateOverrides({ raw_port: 80808 }, 'cameras.garden')).toThrow('cameras.garden.raw_port: 80808 is not a port (0-65535)');
    expect(() => RELAY_SETTINGS.validateOverrides({ snapshot_cron: '61 * * * * *' }, 'cameras.garden')).toThrow(/cameras\.garden\.snapshot_cron: "61 \* \* \* \* \*" is not a node-cron expression/);
    expect(() => RELAY_SETTINGS.validateOverrides({ viewer_password: 'x' }, 'cameras.garden')).toThrow(/cameras\.garden\.viewer_password: unknown key \(allowed: mode, host, port, /);
  });
});

describe('camera list keys', () => {
  test('the per-camera keys common knows (tunnel-agent, stack) are exactly the relay table\'s', () => {
    expect([...CAMERA_SETTING_KEYS].sort()).toEqual(RELAY_SETTINGS.perCameraKeys().sort());
  });
});
