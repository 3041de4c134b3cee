import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CAMERA_SETTING_KEYS, ConfigError, keysOnly, loadCameraList, parseCameraList } from '../../src';
import { EXAMPLE_CAMERAS_YAML } from '../../../test-support/cameras';

const opts = { validate: keysOnly(), reservedPorts: { HTTP_PORT: 8081, METRICS_PORT: 9100 } };
const parse = (text: string) => parseCameraList(text, 'cameras.yml', opts);
function err(text: string): string {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no error');
}

const ISSUE_EXAMPLE = EXAMPLE_CAMERAS_YAML;

describe('camera list', () => {
  test('the example from the issue parses in file order, with derived tunnel ports', () => {
    const cams = parse(ISSUE_EXAMPLE);
    expect(cams.map((c) => c.name)).toEqual(['front', 'garden', 'printer', 'bench']);
    expect(cams[0]).toMatchObject({ mode: 'pull', lan: { host: '192.168.1.100', port: 1234 }, rawPort: 8080, tunnelPort: 18080, public: false });
    expect(cams[1]).toMatchObject({ tunnelPort: 18082, public: true, settings: { max_fps: 10, raw_port: 8082 } });
    expect(cams[2]).toMatchObject({ mode: 'push', ingestPort: 1236, rawPort: 8083, tunnelPort: undefined, lan: undefined });
    expect(cams[3]).toMatchObject({ mode: 'pull', lan: undefined, tunnelPort: undefined, settings: { host: '127.0.0.1', port: 5001 } });
  });

  test('reordering or removing entries changes no other camera port', () => {
    const a = parse('cameras:\n  a: { lan: "h:1", raw_port: 8080 }\n  b: { lan: "h:1", raw_port: 8082 }\n');
    const b = parse('cameras:\n  b: { lan: "h:1", raw_port: 8082 }\n');
    expect(a.find((c) => c.name === 'b')?.tunnelPort).toBe(b[0].tunnelPort);
  });

  test('explicit tunnel_port and IPv6 lan addresses', () => {
    const [c] = parse('cameras:\n  x: { lan: "[fd00::1]:1234", raw_port: 60000, tunnel_port: 20001 }\n');
    expect(c).toMatchObject({ lan: { host: 'fd00::1', port: 1234 }, tunnelPort: 20001 });
  });

  test.each([
    ['cameras:\n  Garden: { lan: "h:1", raw_port: 8080 }\n', /^cameras\.Garden: "Garden" is not a camera name/],
    ['cameras:\n  garden: { lan: "h:1", raw_port: 80808 }\n', /^cameras\.garden\.raw_port: 80808 is not a port \(1-65535\)$/],
    ['cameras:\n  garden: { lan: "h:1" }\n', /^cameras\.garden\.raw_port: missing/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 8080 }\n  b: { lan: "h:1", raw_port: 8080 }\n', /^cameras\.b\.raw_port: 8080 is already used by cameras\.a\.raw_port$/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 8081 }\n', /^cameras\.a\.raw_port: 8081 is already used by HTTP_PORT$/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 8080, tunnel_port: 9100 }\n', /^cameras\.a\.tunnel_port: 9100 is already used by METRICS_PORT$/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 8080, bogus: 1 }\n', /^cameras\.a\.bogus: unknown key \(allowed: lan, tunnel_port, public, mode/],
    ['cameras:\n  a: { lan: "nocolon", raw_port: 8080 }\n', /^cameras\.a\.lan: "nocolon" is not host:port/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 60000 }\n', /^cameras\.a\.tunnel_port: raw_port \+ 10000 = 70000 is not a port: set tunnel_port/],
    ['cameras:\n  a: { mode: push, raw_port: 8080 }\n', /^cameras\.a\.ingest_port: missing/],
    ['cameras:\n  a: { mode: push, raw_port: 8080, ingest_port: 1236, lan: "h:1" }\n', /^cameras\.a\.lan: not used by a push camera/],
    ['cameras:\n  a: { raw_port: 8080 }\n', /^cameras\.a\.lan: missing/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 8080, public: "yes" }\n', /^cameras\.a\.public: "yes" is not true or false$/],
    ['cameras: {}\n', /^cameras: \{\} is not a non-empty mapping/],
    ['cams:\n  a: {}\n', /^cameras: missing/],
    ['cameras:\n  a: { lan: "h:1", raw_port: 8080 }\n  a: { lan: "h:1", raw_port: 8082 }\n', /CAMERAS_FILE="cameras\.yml": expected valid YAML \(line 3: .*unique/],
  ])('%j is refused naming the key path', (text, re) => {
    expect(err(text)).toMatch(re);
  });

  test('per-camera settings go to the caller for validation, with their path', () => {
    const seen: [string, Record<string, unknown>][] = [];
    parseCameraList('cameras:\n  a: { lan: "h:1", raw_port: 8080, max_fps: 3, public: true }\n', 'f', { validate: (s, p) => void seen.push([p, s]) });
    expect(seen).toEqual([['cameras.a', { raw_port: 8080, max_fps: 3 }]]);
  });

  test('loadCameraList names an unreadable file', () => {
    expect(() => loadCameraList('/nonexistent/cameras.yml', opts)).toThrow(/CAMERAS_FILE="\/nonexistent\/cameras.yml": expected a readable file \(ENOENT\)/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cams-'));
    const f = path.join(dir, 'c.yml');
    fs.writeFileSync(f, ISSUE_EXAMPLE);
    expect(loadCameraList(f, opts)).toHaveLength(4);
    fs.rmSync(dir, { recursive: true });
  });

  test('keysOnly knows every relay per-camera key', () => {
    expect(CAMERA_SETTING_KEYS).toContain('max_fps');
  });
});
