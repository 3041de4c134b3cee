import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ed25519KeyPair } from '../../../test-support/ssh-keys';
import { ConfigError } from '@camrelay/common';
import { AGENT_SETTINGS, loadConfig, parseArgs, parseForwards } from '../../src/config';

const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHy29G1vZIzSksGNZkexzVSYYdcYvNkQ6vbmc3Vle1m9';
const ED_FP = 'SHA256:v0hp/6iN1QKJ5SJ+dwHhRHlI31smn6tzZ8knODD5sgo';

let dir: string;
let keyFile: string;
let encKeyFile: string;
let passFile: string;
let privateKeyText: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-config-'));
  const k = ed25519KeyPair();
  privateKeyText = k.private;
  keyFile = path.join(dir, 'id');
  fs.writeFileSync(keyFile, k.private, { mode: 0o600 });
  fs.chmodSync(keyFile, 0o600);
  const enc = ed25519KeyPair({ passphrase: 'sesame', cipher: 'aes256-ctr', rounds: 4 });
  encKeyFile = path.join(dir, 'id_enc');
  fs.writeFileSync(encKeyFile, enc.private, { mode: 0o600 });
  passFile = path.join(dir, 'pass');
  fs.writeFileSync(passFile, 'sesame\n', { mode: 0o600 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const base = () => ({ SSH_HOST: 'vps.example.com', SSH_PRIVATE_KEY_FILE: keyFile, SSH_HOST_KEY: ED_FP });

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('TUNNEL_FORWARDS', () => {
  test('ssh -R syntax with and without bind address, IPv6 in brackets, "*" = all', () => {
    expect(parseForwards('1234:cam:1234')).toEqual([{ spec: '1234:cam:1234', bindAddress: 'localhost', bindPort: 1234, host: 'cam', port: 1234 }]);
    const f = parseForwards('0.0.0.0:1234:192.168.1.50:1234, *:9101:127.0.0.1:9101,[::1]:80:[fe80::1]:8080');
    expect(f.map((x) => [x.bindAddress, x.bindPort, x.host, x.port])).toEqual([
      ['0.0.0.0', 1234, '192.168.1.50', 1234],
      ['', 9101, '127.0.0.1', 9101],
      ['::1', 80, 'fe80::1', 8080],
    ]);
    expect(f[1].spec).toBe('*:9101:127.0.0.1:9101');
    expect(Object.isFrozen(f[0])).toBe(true);
  });

  test.each([
    ['', /empty entry/],
    ['1234:cam', /3 or 4/],
    ['1:2:3:4:5', /3 or 4/],
    ['0:cam:1234', /port "0"/],
    ['70000:cam:1234', /port "70000"/],
    ['1234:cam:x', /hostport "x"/],
    ['1234:c@m:1234', /host "c@m"/],
    ['b@d:1234:cam:1234', /bind_address/],
    ['[::1:1234:cam:1234', /brackets/],
    ['1234:cam:1234,1234:cam2:1', /same remote address/],
    ['1234:cam:1234,,', /empty entry/],
  ])('rejects %j', (value, why) => {
    let err: unknown;
    try {
      parseForwards(value);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('TUNNEL_FORWARDS');
    expect((err as Error).message).toMatch(why);
    expect((err as Error).message).toMatch(/\[bind_address:\]port:host:hostport/);
  });
});

describe('loadConfig', () => {
  test('defaults, frozen, durations in ms', () => {
    const c = loadConfig(base());
    expect(c).toMatchObject({
      sshHost: 'vps.example.com', sshPort: 22, sshUser: 'tunnel', keepaliveIntervalMs: 15000, keepaliveCountMax: 3,
      reconnectMinMs: 1000, reconnectMaxMs: 60000, connectTimeoutMs: 15000, stableAfterMs: 30000, metricsPort: 9101, forwards: [{ spec: '1234:cam:1234' }], hostKey: { kind: 'pinned', accept: [ED_FP] },
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(c.warnings).toEqual([]);
    expect(c.privateKey.toString()).toBe(privateKeyText);
  });

  test('known_hosts file with [host]:port', () => {
    const kh = path.join(dir, 'kh');
    fs.writeFileSync(kh, `[vps.example.com]:2222 ${ED}\n`);
    const env = { ...base(), SSH_HOST_KEY: '', SSH_KNOWN_HOSTS_FILE: kh, SSH_PORT: '2222' };
    expect(loadConfig(env).hostKey).toMatchObject({ kind: 'pinned', accept: [ED_FP], source: 'known_hosts' });
    expect(configError({ ...env, SSH_PORT: '22' })).toMatchObject({ variable: 'SSH_KNOWN_HOSTS_FILE' });
  });

  test('host key verification is mandatory unless explicitly disabled', () => {
    const e = configError({ SSH_HOST: 'h', SSH_PRIVATE_KEY_FILE: keyFile });
    expect(e.variable).toBe('SSH_KNOWN_HOSTS_FILE');
    expect(e.message).toMatch(/SSH_HOST_KEY/);
    expect(loadConfig({ SSH_HOST: 'h', SSH_PRIVATE_KEY_FILE: keyFile, SSH_INSECURE_ACCEPT_ANY_HOST_KEY: 'true' }).hostKey).toEqual({ kind: 'insecure' });
    expect(configError({ ...base(), SSH_KNOWN_HOSTS_FILE: '/x' }).variable).toBe('SSH_HOST_KEY');
  });

  test('passphrase-protected keys need the passphrase file; errors never contain key material', () => {
    const e = configError({ ...base(), SSH_PRIVATE_KEY_FILE: encKeyFile });
    expect(e.variable).toBe('SSH_PRIVATE_KEY_FILE');
    expect(e.message).toMatch(/SSH_PRIVATE_KEY_PASSPHRASE_FILE/);
    expect(loadConfig({ ...base(), SSH_PRIVATE_KEY_FILE: encKeyFile, SSH_PRIVATE_KEY_PASSPHRASE_FILE: passFile }).passphrase).toBe('sesame');
    const wrong = path.join(dir, 'wrongpass');
    fs.writeFileSync(wrong, 'nope');
    const e2 = configError({ ...base(), SSH_PRIVATE_KEY_FILE: encKeyFile, SSH_PRIVATE_KEY_PASSPHRASE_FILE: wrong });
    expect(e2.message).toMatch(/passphrase/);
    expect(e2.message).not.toContain('nope');
    const garbage = path.join(dir, 'garbage');
    fs.writeFileSync(garbage, 'not a key at all');
    const e3 = configError({ ...base(), SSH_PRIVATE_KEY_FILE: garbage });
    expect(e3.message).not.toContain('not a key at all');
    const pub = path.join(dir, 'id.pub');
    fs.writeFileSync(pub, ED);
    expect(configError({ ...base(), SSH_PRIVATE_KEY_FILE: pub }).message).toMatch(/PRIVATE key/);
    expect(configError({ ...base(), SSH_PRIVATE_KEY_FILE: path.join(dir, 'missing') }).message).toMatch(/ENOENT/);
  });

  test('the key (or passphrase) pasted into a *_FILE variable is refused without echoing it', () => {
    for (const [name, secret] of [
      ['SSH_PRIVATE_KEY_FILE', privateKeyText],
      ['SSH_PRIVATE_KEY_FILE', privateKeyText.replace(/\n/g, ' ')],
      ['SSH_PRIVATE_KEY_PASSPHRASE_FILE', `sesame\nsecond-line`],
    ] as const) {
      const e = configError({ ...base(), [name]: secret });
      expect(e.variable).toBe(name);
      expect(e.message).toMatch(/redacted.*PATH of a file/);
      const body = secret.split(/[\n ]/).filter((l) => l.length > 20 && !l.startsWith('-----'));
      for (const l of body) expect(e.message).not.toContain(l);
      expect(e.message).not.toContain('second-line');
    }
  });

  test('warns when the key file is readable by group or others', () => {
    const loose = path.join(dir, 'loose');
    fs.writeFileSync(loose, privateKeyText);
    fs.chmodSync(loose, 0o644);
    const c = loadConfig({ ...base(), SSH_PRIVATE_KEY_FILE: loose });
    expect(c.warnings.join('\n')).toMatch(/readable by group\/others \(mode 644\)/);
  });

  test.each([
    ['SSH_HOST', 'bad host!'],
    ['SSH_PORT', '0'],
    ['SSH_USER', 'root;rm'],
    ['SSH_HOST_KEY', 'SHA256:short'],
    ['SSH_KEEPALIVE_INTERVAL_MS', '0'],
    ['SSH_KEEPALIVE_INTERVAL_S', '0'],
    ['SSH_KEEPALIVE_COUNT_MAX', '0'],
    ['SSH_CONNECT_TIMEOUT_MS', 'abc'],
    ['SSH_CONNECT_TIMEOUT_S', 'abc'],
    ['RECONNECT_MIN_MS', '-1'],
    ['RECONNECT_MIN_S', '-1'],
    ['RECONNECT_MAX_MS', '1.5'],
    ['STABLE_AFTER_MS', 'x'],
    ['STABLE_AFTER_S', 'x'],
    ['FORWARD_CONNECT_TIMEOUT_MS', '1.5'],
    ['FORWARD_MAX_CONNECTIONS', '0'],
    ['FORWARD_BIND_RETRY_MS', '5'],
    ['UNREACHABLE_PROBE_MS', '1'],
    ['METRICS_PORT', '65536'],
    ['LOG_LEVEL', 'loud'],
    ['SSH_INSECURE_ACCEPT_ANY_HOST_KEY', 'maybe'],
  ])('%s=%j is a ConfigError naming the variable and the value', (name, value) => {
    const e = configError({ ...base(), [name]: value });
    expect(e.variable).toBe(name);
    expect(e.message).toContain(JSON.stringify(value));
    expect(e.message).toMatch(/expected/);
  });

  test('RECONNECT_MAX_MS below RECONNECT_MIN_MS, under the names the user set', () => {
    expect(configError({ ...base(), RECONNECT_MIN_MS: '10000', RECONNECT_MAX_MS: '5000' })).toMatchObject({ variable: 'RECONNECT_MAX_MS', message: 'invalid RECONNECT_MAX_MS="5000": expected a value >= RECONNECT_MIN_MS (10000 ms)' });
    expect(configError({ ...base(), RECONNECT_MIN_S: '10', RECONNECT_MAX_S: '5' }).variable).toBe('RECONNECT_MAX_S');
  });

  test('the old _S names still work, converted to ms, with one warning line each', () => {
    const c = loadConfig({ ...base(), SSH_KEEPALIVE_INTERVAL_S: '0.5', SSH_CONNECT_TIMEOUT_S: '5', RECONNECT_MIN_S: '0.1', RECONNECT_MAX_S: '2', STABLE_AFTER_S: '1' });
    expect(c).toMatchObject({ keepaliveIntervalMs: 500, connectTimeoutMs: 5000, reconnectMinMs: 100, reconnectMaxMs: 2000, stableAfterMs: 1000 });
    expect(c.warnings).toHaveLength(5);
    expect(c.warnings).toContain('RECONNECT_MAX_S is deprecated, use RECONNECT_MAX_MS (ms): RECONNECT_MAX_S=2 read as RECONNECT_MAX_MS=2000');
    expect(configError({ ...base(), SSH_KEEPALIVE_INTERVAL_S: 'often' }).message).toBe('invalid SSH_KEEPALIVE_INTERVAL_S="often": expected a number of seconds from 0.05 to 3600');
  });

  test('an old and a new name set together is an error naming both', () => {
    const e = configError({ ...base(), STABLE_AFTER_S: '1', STABLE_AFTER_MS: '1000' });
    expect(e.variable).toBe('STABLE_AFTER_S');
    expect(e.message).toMatch(/only one of STABLE_AFTER_S .* and STABLE_AFTER_MS/);
  });
});

describe('declaration', () => {
  test('--help is the only flag; unknown flags list what is allowed', () => {
    expect(parseArgs(['--help'])).toEqual({ help: true });
    expect(parseArgs([])).toEqual({ help: false });
    expect(() => parseArgs(['--ssh-host', 'x'])).toThrow('unknown argument "--ssh-host": allowed flags are --help (see --help)');
    const h = AGENT_SETTINGS.help();
    for (const v of AGENT_SETTINGS.variables()) expect(h).toContain(v.name);
    expect(h).toContain('old name RECONNECT_MIN_S (in seconds)');
  });

  test('.env.example lists every variable with its default, and docs/configuration.md the generated table', () => {
    const root = path.resolve(__dirname, '../../..');
    expect(AGENT_SETTINGS.checkEnvExample(fs.readFileSync(path.join(root, '.env.example'), 'utf8'))).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'docs/configuration.md'), 'utf8')).toContain(AGENT_SETTINGS.markdown());
  });
});
