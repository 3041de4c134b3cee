/**
 * The agent's forwards from CAMERAS_FILE (the relay's camera list): one forward per camera reached on
 * the LAN, TUNNEL_FORWARDS as extra forwards, the `camera` each forward reports, and errors that name
 * the key path. The camera list's own checks are in common/test/unit/cameras.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ed25519KeyPair } from '../../../test-support/ssh-keys';
import { ConfigError } from '@camrelay/common';
import { EXAMPLE_CAMERAS_YAML } from '../../../test-support/cameras';
import { loadConfig, loadForwards, parseForwards } from '../../src/config';

const ED_FP = 'SHA256:v0hp/6iN1QKJ5SJ+dwHhRHlI31smn6tzZ8knODD5sgo';
let dir: string;
let keyFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-cameras-'));
  keyFile = path.join(dir, 'id');
  fs.writeFileSync(keyFile, ed25519KeyPair().private, { mode: 0o600 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function list(yaml: string): string {
  const f = path.join(dir, `cameras-${n++}.yml`);
  fs.writeFileSync(f, yaml);
  return f;
}

const base = (extra: Record<string, string> = {}) => ({ SSH_HOST: 'vps.example.com', SSH_PRIVATE_KEY_FILE: keyFile, SSH_HOST_KEY: ED_FP, ...extra });

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

// The example file: two cameras on the LAN, a push camera and one the relay reaches itself.
const EXAMPLE = EXAMPLE_CAMERAS_YAML;

describe('CAMERAS_FILE', () => {
  test('one forward per camera with lan, on its tunnel port (raw_port + 10000 unless tunnel_port), labelled with its name', () => {
    const c = loadConfig(base({ CAMERAS_FILE: list(EXAMPLE) }));
    expect(c.forwards.map((f) => [f.camera, f.spec, f.bindAddress, f.bindPort, f.host, f.port])).toEqual([
      ['front', '0.0.0.0:18080:192.168.1.100:1234', '0.0.0.0', 18080, '192.168.1.100', 1234],
      ['garden', '0.0.0.0:18082:192.168.1.101:1234', '0.0.0.0', 18082, '192.168.1.101', 1234],
    ]);
    expect(c.camerasFile).toMatch(/cameras-/);
    expect(c.extraForwards).toEqual([]);
  });

  test('TUNNEL_FORWARDS adds forwards of no camera; its one-camera default does not apply', () => {
    const file = list(EXAMPLE);
    const c = loadConfig(base({ CAMERAS_FILE: file, TUNNEL_FORWARDS: '0.0.0.0:9101:127.0.0.1:9101' }));
    expect(c.forwards.map((f) => [f.spec, f.camera])).toEqual([
      ['0.0.0.0:18080:192.168.1.100:1234', 'front'],
      ['0.0.0.0:18082:192.168.1.101:1234', 'garden'],
      ['0.0.0.0:9101:127.0.0.1:9101', ''],
    ]);
    expect(c.extraForwards.map((f) => f.spec)).toEqual(['0.0.0.0:9101:127.0.0.1:9101']);
    expect(c.forwards.some((f) => f.spec === '1234:cam:1234')).toBe(false);
  });

  test('tunnel_port, a host name and an IPv6 LAN address', () => {
    const c = loadConfig(base({
      CAMERAS_FILE: list('cameras:\n  a: { lan: "cam-a.lan:81", raw_port: 9000, tunnel_port: 2000 }\n  b: { lan: "[fd00::5]:1234", raw_port: 9001 }\n'),
    }));
    expect(c.forwards.map((f) => f.spec)).toEqual(['0.0.0.0:2000:cam-a.lan:81', '0.0.0.0:19001:[fd00::5]:1234']);
    expect(c.forwards[1].host).toBe('fd00::5');
    // the spec reads back as the same forward
    expect(parseForwards(c.forwards[1].spec)[0]).toMatchObject({ bindPort: 19001, host: 'fd00::5', port: 1234 });
  });

  test('reordering or removing entries changes no other camera\'s forward', () => {
    const all = loadForwards(list(EXAMPLE), []);
    const reordered = loadForwards(list('cameras:\n  garden: { lan: 192.168.1.101:1234, raw_port: 8082 }\n  front: { lan: 192.168.1.100:1234, raw_port: 8080 }\n'), []);
    const fewer = loadForwards(list('cameras:\n  garden: { lan: 192.168.1.101:1234, raw_port: 8082 }\n'), []);
    const byCamera = (fs: { camera?: string; spec: string }[]) => Object.fromEntries(fs.map((f) => [f.camera, f.spec]));
    expect(byCamera(reordered)).toEqual(byCamera(all));
    expect(byCamera(fewer).garden).toBe(byCamera(all).garden);
  });

  test.each([
    ['cameras:\n  Front: { lan: 192.168.1.100:1234, raw_port: 8080 }\n', 'cameras.Front', /not a camera name/],
    ['cameras:\n  a: { lan: 192.168.1.100:1234, raw_port: 80808 }\n', 'cameras.a.raw_port', /80808 is not a port \(1-65535\)/],
    ['cameras:\n  a: { lan: nope, raw_port: 8080 }\n', 'cameras.a.lan', /host:port/],
    ['cameras:\n  a: { lan: 10.0.0.1:1, raw_port: 8080 }\n  b: { lan: 10.0.0.2:1, raw_port: 8080 }\n', 'cameras.b.raw_port', /already used by cameras.a.raw_port/],
    ['cameras:\n  a: { lan: 10.0.0.1:1, raw_port: 8080, bogus: 1 }\n', 'cameras.a.bogus', /unknown key/],
    ['cameras:\n  a: { lan: 10.0.0.1:1, raw_port: 8080 }\n  a: { lan: 10.0.0.2:1, raw_port: 8081 }\n', 'CAMERAS_FILE', /valid YAML/],
  ])('an invalid list exits with the key path: %j', (yaml, variable, why) => {
    const e = configError(base({ CAMERAS_FILE: list(yaml) }));
    expect(e.variable).toBe(variable);
    expect(e.message).toMatch(why);
  });

  test('a TUNNEL_FORWARDS port that a camera uses, an unreadable file, a list with nothing to forward', () => {
    const clash = configError(base({ CAMERAS_FILE: list(EXAMPLE), TUNNEL_FORWARDS: '0.0.0.0:18082:127.0.0.1:9101' }));
    expect(clash.variable).toBe('TUNNEL_FORWARDS');
    expect(clash.message).toMatch(/18082 is the tunnel port of cameras.garden/);
    expect(configError(base({ CAMERAS_FILE: path.join(dir, 'missing.yml') })).message).toMatch(/readable file \(ENOENT\)/);
    const pushOnly = configError(base({ CAMERAS_FILE: list('cameras:\n  p: { mode: push, ingest_port: 1236, raw_port: 8083 }\n') }));
    expect(pushOnly.variable).toBe('CAMERAS_FILE');
    expect(pushOnly.message).toMatch(/at least one camera reached through the tunnel/);
    // ...unless TUNNEL_FORWARDS gives something to forward
    const c = loadConfig(base({ CAMERAS_FILE: list('cameras:\n  p: { mode: push, ingest_port: 1236, raw_port: 8083 }\n'), TUNNEL_FORWARDS: '0.0.0.0:9101:127.0.0.1:9101' }));
    expect(c.forwards.map((f) => f.spec)).toEqual(['0.0.0.0:9101:127.0.0.1:9101']);
  });
});

describe('without CAMERAS_FILE', () => {
  test('TUNNEL_FORWARDS report CAMERA_NAME, except the forward to the agent\'s own metrics', () => {
    const fw = '0.0.0.0:1234:192.168.1.50:1234,0.0.0.0:9101:127.0.0.1:9101';
    expect(loadConfig(base({ TUNNEL_FORWARDS: fw })).forwards.map((f) => f.camera)).toEqual(['default', '']);
    expect(loadConfig(base({ TUNNEL_FORWARDS: fw, CAMERA_NAME: 'porch' })).forwards.map((f) => f.camera)).toEqual(['porch', '']);
    // another metrics port: then 9101 is just a camera
    expect(loadConfig(base({ TUNNEL_FORWARDS: fw, METRICS_PORT: '9200' })).forwards.map((f) => f.camera)).toEqual(['default', 'default']);
    expect(configError(base({ CAMERA_NAME: 'Porch' })).variable).toBe('CAMERA_NAME');
    expect(loadConfig(base()).camerasFile).toBeUndefined();
  });
});
