/** CAMERAS_FILE into RelayConfig.cameras: overrides of the global values, relay-side host/port, key-path errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@camrelay/common';
import { loadCameras, loadConfig, RelayConfig } from '../../src/config';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-cams-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string): string {
  const f = path.join(dir, `cameras-${n++}.yml`);
  fs.writeFileSync(f, text);
  return f;
}

function cfg(env: Record<string, string>): RelayConfig {
  const r = loadConfig([], env);
  if (r.help) throw new Error('unexpected help');
  return r.config;
}

function error(env: Record<string, string>): string {
  try {
    loadConfig([], env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const LIST = `
cameras:
  front:
    lan: 192.168.1.100:1234
    raw_port: 8080
  garden:
    lan: 192.168.1.101:1234
    raw_port: 8082
    max_fps: 10
    public: true
    snapshot_keep: 5
  printer:
    mode: push
    ingest_port: 1236
    raw_port: 8083
  bench:
    host: 127.0.0.1
    port: 5001
    raw_port: 8084
    frozen_after_ms: 0
`;

describe('relay config: camera list', () => {
  test('without CAMERAS_FILE: one camera named CAMERA_NAME from the env, exactly the relay-wide settings', () => {
    const c = cfg({ CAMERA_HOST: 'cam.lan', CAMERA_PORT: '81', CLIENT_PORT: '9000', SNAPSHOT_DIR: '/snap' });
    expect(c.camerasFile).toBeUndefined();
    expect(c.cameras).toHaveLength(1);
    const [cam] = c.cameras;
    expect(cam.name).toBe('default');
    expect(cam.public).toBe(false);
    expect(cam.source).toEqual(c.source);
    expect(cam.ingest).toEqual(c.ingest);
    expect(cam.rawPort).toBe(9000);
    expect(cam.archive.dir).toBe('/snap'); // single-camera mode keeps SNAPSHOT_DIR as it is
    expect(cfg({ CAMERA_NAME: 'porch' }).cameras[0].name).toBe('porch');
    expect(error({ CAMERA_NAME: 'Porch!' })).toMatch(/CAMERA_NAME.*Porch!/);
  });

  test('entries in file order; per-camera keys override the global values; relay-side host/port', () => {
    const c = cfg({ CAMERAS_FILE: file(LIST), CAMERA_HOST: 'tunnel-server', MAX_FPS: '20', SNAPSHOT_DIR: '/snap/', SNAPSHOT_KEEP: '100', HTTP_PORT: '8081', CAMERA_FROZEN_AFTER_MS: '30000' });
    expect(c.cameras.map((x) => x.name)).toEqual(['front', 'garden', 'printer', 'bench']);
    const [front, garden, printer, bench] = c.cameras;
    // behind the tunnel: CAMERA_HOST and the tunnel port (raw_port + 10000)
    expect(front.source).toMatchObject({ mode: 'pull', host: 'tunnel-server', port: 18080, maxFps: 20 });
    expect(front.rawPort).toBe(8080);
    expect(front.public).toBe(false);
    expect(garden.source).toMatchObject({ host: 'tunnel-server', port: 18082, maxFps: 10 });
    expect(garden.public).toBe(true);
    expect(garden.archive).toMatchObject({ dir: '/snap/garden', keep: 5 });
    expect(front.archive).toMatchObject({ dir: '/snap/front', keep: 100 });
    expect(printer.source.mode).toBe('push');
    expect(printer.ingest.port).toBe(1236);
    expect(bench.source).toMatchObject({ host: '127.0.0.1', port: 5001 });
    // frozen_after_ms per camera; the others keep CAMERA_FROZEN_AFTER_MS
    expect(bench.frozenAfterMs).toBe(0);
    expect(front.frozenAfterMs).toBe(30_000);
    // the relay-wide fields describe the first camera
    expect(c.source).toEqual(front.source);
    expect(c.clients.rawPort).toBe(8080);
    expect(Object.isFrozen(c.cameras[1].source)).toBe(true);
  });

  test('an explicit port wins over the tunnel port', () => {
    const c = cfg({ CAMERAS_FILE: file('cameras:\n  a:\n    lan: 10.0.0.2:80\n    port: 7000\n    raw_port: 8090\n') });
    expect(c.cameras[0].source.port).toBe(7000);
  });

  test('bad values name the key path, the value and what is allowed', () => {
    const f = (t: string) => error({ CAMERAS_FILE: file(t) });
    expect(f('cameras:\n  garden:\n    lan: 10.0.0.2:80\n    raw_port: 80808\n')).toBe('cameras.garden.raw_port: 80808 is not a port (1-65535)');
    expect(f('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 8080\n    max_fps: fast\n')).toMatch(/^cameras\.a\.max_fps: .*fast/);
    expect(f('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 8080\n    colour: red\n')).toMatch(/^cameras\.a\.colour: unknown key \(allowed: .*max_fps/);
    expect(f('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 8080\n    frozen_after_ms: soon\n')).toBe('cameras.a.frozen_after_ms: "soon" is not a duration in ms (0-86400000)');
    expect(f('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 8081\n')).toMatch(/^cameras\.a\.raw_port: 8081 is already used by HTTP_PORT/);
    expect(f('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 9100\n')).toMatch(/already used by METRICS_PORT/);
    expect(f('cameras:\n  Bad_Name:\n    raw_port: 8080\n')).toMatch(/^cameras\.Bad_Name: /);
    expect(error({ CAMERAS_FILE: path.join(dir, 'missing.yml') })).toMatch(/CAMERAS_FILE.*missing\.yml/);
  });

  test('cross-field checks per camera, with the key path', () => {
    // the override breaks the rule against the global value
    expect(error({ CAMERAS_FILE: file('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 8080\n    idle_fps: 30\n'), MAX_FPS: '25' }))
      .toBe('cameras.a.idle_fps: 30 is not a number from 0 to MAX_FPS (25)');
    expect(error({ CAMERAS_FILE: file('cameras:\n  a:\n    lan: 10.0.0.2:80\n    raw_port: 8080\n    max_fps: 2\n'), IDLE_FPS: '5' }))
      .toBe('cameras.a.idle_fps: 5 is not a number from 0 to max_fps (2)');
    expect(error({ CAMERAS_FILE: file('cameras:\n  b:\n    lan: 10.0.0.2:80\n    raw_port: 8080\n    retry_base_ms: 5000\n    retry_max_ms: 1000\n') }))
      .toBe('cameras.b.retry_max_ms: 1000 is not an integer >= retry_base_ms (5000)');
  });

  test('loadCameras re-reads the file against the same global values (reload)', () => {
    const f = file(LIST);
    const c = cfg({ CAMERAS_FILE: f, MAX_FPS: '20' });
    fs.writeFileSync(f, 'cameras:\n  only:\n    host: 127.0.0.1\n    raw_port: 8099\n');
    const again = loadCameras(f, c.settings);
    expect(again.map((x) => x.name)).toEqual(['only']);
    expect(again[0].source.maxFps).toBe(20);
  });
});
