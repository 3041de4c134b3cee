import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CidrList, ConfigError } from '../../src/config';
import { bool, cidrs, defineSettings, int, KeyPathError, logLevel, ms, number, oneOf, port, secret, string, UsageError } from '../../src/settings';

const table = () =>
  defineSettings({
    program: 'demo',
    section: 'demo',
    usage: 'demo [--host H] [--port P]',
    intro: 'A demo daemon.',
    settings: {
      mode: { env: 'MODE', kind: oneOf(['pull', 'push'] as const), default: 'pull', yaml: 'mode', perCamera: true, group: 'Source', doc: 'pull or push' },
      host: { env: 'HOST', kind: string(), default: 'localhost', flag: 'host', metavar: 'H', yaml: 'host', perCamera: true, doc: 'camera host' },
      port: { env: 'PORT', kind: port(1), default: 1234, flag: 'port', yaml: 'port', perCamera: true, doc: 'camera port' },
      rawPort: { env: 'RAW_PORT', kind: port(1), default: 8080, yaml: 'raw_port', perCamera: true, doc: 'raw outlet port' },
      maxFps: { env: 'MAX_FPS', kind: number({ min: 0, max: 1000 }), default: 25, unit: 'frames/s', yaml: 'max_fps', perCamera: true, doc: 'fetch rate cap' },
      timeoutMs: { env: 'TIMEOUT_MS', kind: ms({ min: 50, max: 60_000 }), default: 1000, unit: 'ms', aliases: [{ env: 'TIMEOUT_S', scale: 1000, unit: 'seconds' }], doc: 'a timeout' },
      count: { env: 'COUNT', kind: int({ min: 1, max: 10 }), default: 3, doc: 'a count' },
      verbose: { env: 'VERBOSE', kind: bool(), default: false, group: 'Process', doc: 'chatty' },
      allow: { env: 'ALLOW', kind: cidrs(), default: new CidrList([]), yaml: 'allow', perCamera: true, doc: 'allow-list' },
      token: { env: 'TOKEN', kind: secret(8), doc: 'a token' },
      optional: { env: 'OPTIONAL', kind: string(), doc: 'unset by default' },
      level: { env: 'LOG_LEVEL', kind: logLevel(), default: 'info', doc: 'log level' },
    },
  });

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('settings: parsing the environment', () => {
  test('defaults come from the declaration; unset optional settings are undefined; blank = default', () => {
    const v = table().parse({ HOST: '  ' }).values;
    expect(v).toMatchObject({ mode: 'pull', host: 'localhost', port: 1234, maxFps: 25, timeoutMs: 1000, count: 3, verbose: false, token: undefined, optional: undefined, level: 'info' });
    expect(v.allow.empty).toBe(true);
    expect(table().defaults()).toMatchObject({ host: 'localhost', port: 1234, optional: undefined });
  });

  test('values are parsed by kind', () => {
    const v = table().parse({ MODE: 'push', PORT: '1', MAX_FPS: '12.5', TIMEOUT_MS: '50', VERBOSE: 'Yes', ALLOW: '10.0.0.0/8, ::1', TOKEN: 'long-enough', OPTIONAL: 'x' }).values;
    expect(v).toMatchObject({ mode: 'push', port: 1, maxFps: 12.5, timeoutMs: 50, verbose: true, token: 'long-enough', optional: 'x' });
    expect(v.allow.allows('10.2.3.4')).toBe(true);
    expect(v.allow.allows('192.168.1.1')).toBe(false);
  });

  test.each([
    [{ MAX_FPS: 'abc' }, 'invalid MAX_FPS="abc": expected a number from 0 to 1000'],
    [{ PORT: '0' }, 'invalid PORT="0": expected an integer from 1 to 65535'],
    [{ COUNT: '1.5' }, 'invalid COUNT="1.5": expected an integer from 1 to 10'],
    [{ TIMEOUT_MS: '49' }, 'invalid TIMEOUT_MS="49": expected an integer from 50 to 60000'],
    [{ MODE: 'poll' }, 'invalid MODE="poll": expected one of pull, push'],
    [{ VERBOSE: 'maybe' }, 'invalid VERBOSE="maybe": expected one of 1, true, yes, on, 0, false, no, off'],
    [{ LOG_LEVEL: 'loud' }, 'invalid LOG_LEVEL="loud": expected one of fatal, error, warn, info, debug, trace, silent'],
    [{ ALLOW: '10.0.0.0/33' }, 'invalid ALLOW="10.0.0.0/33": expected a comma-separated list of IP addresses or CIDRs like 192.168.1.0/24,::1 (bad prefix length in 10.0.0.0/33)'],
  ])('%j -> %s', (env, message) => {
    const e = thrown(() => table().parse(env));
    expect(e.message).toBe(message);
    expect(e.variable).toBe(Object.keys(env)[0]);
  });

  test('secrets are never echoed and may come from NAME_FILE, not both', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'settings-'));
    try {
      const short = thrown(() => table().parse({ TOKEN: 'short' }));
      expect(short.message).toBe('invalid TOKEN="<redacted>": expected a secret of at least 8 characters');
      fs.writeFileSync(path.join(dir, 't'), 'from-a-file\n');
      expect(table().parse({ TOKEN_FILE: path.join(dir, 't') }).values.token).toBe('from-a-file');
      fs.writeFileSync(path.join(dir, 's'), 'tiny\n');
      const e = thrown(() => table().parse({ TOKEN_FILE: path.join(dir, 's') }));
      expect(e.variable).toBe('TOKEN_FILE');
      expect(e.message).not.toContain('tiny');
      expect(thrown(() => table().parse({ TOKEN: 'long-enough', TOKEN_FILE: path.join(dir, 't') })).message).toMatch(/only one of TOKEN and TOKEN_FILE/);
      expect(thrown(() => table().parse({ TOKEN_FILE: path.join(dir, 'nope') })).message).toMatch(/TOKEN_FILE.*readable file.*ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an old name keeps working, converted, with one warning naming old and new', () => {
    const p = table().parse({ TIMEOUT_S: '0.25' });
    expect(p.values.timeoutMs).toBe(250);
    expect(p.warnings).toEqual(['TIMEOUT_S is deprecated, use TIMEOUT_MS (ms): TIMEOUT_S=0.25 read as TIMEOUT_MS=250']);
    expect(table().parse({ TIMEOUT_MS: '250' }).warnings).toEqual([]);
    expect(thrown(() => table().parse({ TIMEOUT_S: 'soon' })).message).toBe('invalid TIMEOUT_S="soon": expected a number of seconds from 0.05 to 60');
    expect(thrown(() => table().parse({ TIMEOUT_S: '61' })).variable).toBe('TIMEOUT_S');
    const both = thrown(() => table().parse({ TIMEOUT_S: '1', TIMEOUT_MS: '1000' }));
    expect(both.variable).toBe('TIMEOUT_S');
    expect(both.message).toContain('TIMEOUT_MS');
    // an empty old name (compose passes `${X:-}`) is unset, not a clash
    expect(table().parse({ TIMEOUT_S: '', TIMEOUT_MS: '100' }).values.timeoutMs).toBe(100);
  });

  test('an equivalent name (equivalent: true) is read the same way, converted, with no deprecation warning', () => {
    const t = defineSettings({
      program: 'eq',
      section: 'eq',
      usage: 'eq',
      intro: 'Equivalent names.',
      settings: {
        frozenAfterMs: {
          env: 'FROZEN_AFTER_MS', kind: ms({ min: 0, max: 86_400_000 }), default: 60_000, unit: 'ms',
          aliases: [{ env: 'FROZEN_AFTER_S', scale: 1000, unit: 'seconds', equivalent: true }], doc: 'frozen after',
        },
      },
    });
    const p = t.parse({ FROZEN_AFTER_S: '90' });
    expect(p.values.frozenAfterMs).toBe(90_000);
    expect(p.warnings).toEqual([]);
    expect(p.name('frozenAfterMs')).toBe('FROZEN_AFTER_S');
    expect(t.parse({ FROZEN_AFTER_S: '0.5' }).values.frozenAfterMs).toBe(500);
    expect(thrown(() => t.parse({ FROZEN_AFTER_S: 'x' })).message).toBe('invalid FROZEN_AFTER_S="x": expected a number of seconds from 0 to 86400');
    const both = thrown(() => t.parse({ FROZEN_AFTER_S: '1', FROZEN_AFTER_MS: '1000' }));
    expect(both.variable).toBe('FROZEN_AFTER_S');
    expect(both.message).toBe('invalid FROZEN_AFTER_S="1": expected only one of FROZEN_AFTER_S (the same setting in seconds) and FROZEN_AFTER_MS: remove FROZEN_AFTER_S');
    // documented as an equivalent, never as an old name
    const md = t.markdown();
    expect(md).toContain('Equivalent names');
    expect(md).toContain('| `FROZEN_AFTER_S` | `FROZEN_AFTER_MS` | seconds × 1000 |');
    expect(md).not.toContain('Old names');
    const h = t.help();
    expect(h).toContain('or FROZEN_AFTER_S, the same in seconds (not both)');
    expect(h).not.toMatch(/deprecated|old name|with a warning/);
  });

  test('cross-field errors name where the value came from and its text', () => {
    const t = table();
    const p = t.parse({ TIMEOUT_S: '2' }, { '--port': '99' });
    expect(p.name('timeoutMs')).toBe('TIMEOUT_S');
    expect(p.name('port')).toBe('--port');
    expect(p.name('count')).toBe('COUNT');
    expect(p.error('timeoutMs', 'something').message).toBe('invalid TIMEOUT_S="2": expected something');
    expect(p.error('count', 'x').message).toBe('invalid COUNT="3": expected x');
  });
});

describe('settings: the command line', () => {
  test('flags in both spellings override the environment; errors in a flag name the flag', () => {
    const t = table();
    const a = t.parseArgv(['--host', 'cam', '--port=4321']);
    expect(a).toEqual({ help: false, flags: { '--host': 'cam', '--port': '4321' } });
    if (a.help) throw new Error('unexpected help');
    expect(t.parse({ HOST: 'env', PORT: '1' }, a.flags).values).toMatchObject({ host: 'cam', port: 4321 });
    expect(thrown(() => t.parse({}, { '--port': 'abc' })).message).toBe('invalid --port="abc": expected an integer from 1 to 65535');
  });

  test('--help and -h', () => {
    expect(table().parseArgv(['--help'])).toEqual({ help: true });
    expect(table().parseArgv(['--port', '1', '-h'])).toEqual({ help: true });
  });

  test.each([
    [['--bogus'], 'unknown argument "--bogus": allowed flags are --host, --port, --help (see --help)'],
    [['--port', '1', 'stray'], 'unknown argument "stray": allowed flags are --host, --port, --help (see --help)'],
    [['stray'], 'unknown argument "stray": allowed flags are --host, --port, --help (see --help)'],
    [['--port'], '--port needs a value: --port <value> or --port=<value> (see --help)'],
    [['--host', '--port', '1'], '--host needs a value: --host <value> or --host=<value> (see --help)'],
  ])('%j is a usage error', (argv, message) => {
    const e = thrown(() => table().parseArgv(argv));
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toBe(message);
  });
});

describe('settings: per-camera overrides (camera list)', () => {
  test('valid overrides come back by setting key, parsed', () => {
    const o = table().validateOverrides({ max_fps: 10, raw_port: 8082, mode: 'push', allow: ['10.0.0.0/8'], lan: '192.168.1.100:1234' }, 'cameras.garden', ['lan']);
    expect(o).toMatchObject({ maxFps: 10, rawPort: 8082, mode: 'push' });
    expect(o.allow?.allows('10.1.1.1')).toBe(true);
    expect('lan' in o).toBe(false);
  });

  test.each([
    [{ max_fps: 'x' }, 'cameras.garden.max_fps: "x" is not a number (0-1000)'],
    [{ max_fps: 2000 }, 'cameras.garden.max_fps: 2000 is not a number (0-1000)'],
    [{ raw_port: 80808 }, 'cameras.garden.raw_port: 80808 is not a port (1-65535)'],
    [{ port: 1.5 }, 'cameras.garden.port: 1.5 is not a port (1-65535)'],
    [{ mode: 'poll' }, 'cameras.garden.mode: "poll" is not one of pull, push'],
    [{ allow: ['nope'] }, 'cameras.garden.allow: ["nope"] is not a list of IP addresses or CIDRs'],
    [{ bogus: 1 }, 'cameras.garden.bogus: unknown key (allowed: lan, mode, host, port, raw_port, max_fps, allow)'],
    // not per camera: a global setting is an unknown key here
    [{ count: 3 }, 'cameras.garden.count: unknown key (allowed: lan, mode, host, port, raw_port, max_fps, allow)'],
  ])('%j -> %s', (obj, message) => {
    const e = thrown(() => table().validateOverrides(obj, 'cameras.garden', ['lan']));
    expect(e).toBeInstanceOf(KeyPathError);
    expect(e.message).toBe(message);
    expect(e.variable).toBe(`cameras.garden.${Object.keys(obj)[0]}`);
  });

  test('a non-mapping is refused with its path', () => {
    expect(thrown(() => table().validateOverrides('x', 'cameras.front')).message).toBe('cameras.front: "x" is not a mapping of settings');
    expect(thrown(() => table().validateOverrides(null, 'cameras.front')).message).toBe('cameras.front: null is not a mapping of settings');
  });

  test('perCameraKeys lists the file keys', () => {
    expect(table().perCameraKeys()).toEqual(['mode', 'host', 'port', 'raw_port', 'max_fps', 'allow']);
  });
});

describe('settings: declarations', () => {
  test('a name, flag or yaml key mistake fails at definition time', () => {
    const base = { program: 'x', section: 'x', usage: 'x', intro: 'x' };
    expect(() => defineSettings({ ...base, settings: { a: { env: 'A', kind: int({ min: 0, max: 1 }), default: 0, doc: '' }, b: { env: 'A', kind: int({ min: 0, max: 1 }), default: 0, doc: '' } } })).toThrow(/A declared twice/);
    expect(() => defineSettings({ ...base, settings: { a: { env: 'A', kind: int({ min: 0, max: 1 }), default: 5, doc: '' } } })).toThrow(/default of A/);
    expect(() => defineSettings({ ...base, settings: { a: { env: 'A', kind: int({ min: 0, max: 1 }), default: 0, perCamera: true, doc: '' } } })).toThrow(/no yaml key/);
  });
});

describe('settings: help, docs and .env.example', () => {
  test('--help lists every variable with its flag and default, and the old names', () => {
    const h = table().help();
    expect(h.startsWith('Usage: demo [--host H] [--port P]\n')).toBe(true);
    expect(h).toContain('  HOST (--host H) [localhost]');
    expect(h).toContain('  OPTIONAL [unset]');
    expect(h).toContain('TOKEN_FILE');
    expect(h).toContain('old name TIMEOUT_S (in seconds)');
    for (const v of table().variables()) expect(h).toContain(v.name);
  });

  test('markdown: one row per setting, camera keys, old names', () => {
    const md = table().markdown();
    expect(md).toContain('| `MAX_FPS` |  | `max_fps` | `25` | frames/s | a number from 0 to 1000 | fetch rate cap. |');
    expect(md).toContain('| `COUNT` |  |  | `3` |  | an integer from 1 to 10 | a count. |');
    expect(md).toContain('| `TIMEOUT_S` | `TIMEOUT_MS` | seconds × 1000 |');
    expect(md).not.toContain('Equivalent names');
    expect(md).toContain('| **Process** |');
  });

  test('checkEnvExample finds missing variables, wrong defaults and undeclared names', () => {
    const t = table();
    const lines = t.variables().map((v) => (v.default === '' ? `${v.name}=` : `# ${v.name}=${v.default}`));
    const good = `x\n# --- section:demo\n${lines.join('\n')}\n# --- /section:demo\nOTHER=1\n`;
    expect(t.checkEnvExample(good)).toEqual([]);
    const bad = good.replace('# COUNT=3', '# COUNT=4').replace('# HOST=localhost\n', '').replace('# --- /section:demo', 'TIMEOUT_S=1\nSTRAY=1\n# --- /section:demo');
    expect(t.checkEnvExample(bad)).toEqual(['HOST is missing', 'COUNT=4 but its default is "3"', 'TIMEOUT_S is not a demo setting', 'STRAY is not a demo setting']);
    expect(t.checkEnvExample('nothing')).toEqual(['no section:demo ... /section:demo in .env.example']);
  });
});
