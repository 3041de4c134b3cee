import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '@camrelay/common';
import { FakeCamera } from '../../src/camera';
import { FAKE_CAMERA_SETTINGS, loadConfig, parseArgs, USAGE } from '../../src/config';

describe('fake-camera config', () => {
  test('defaults', () => {
    expect(loadConfig({})).toMatchObject({ host: '0.0.0.0', port: 1234, mode: 'ok', captureMs: 40, linkKbps: 0, width: 640, height: 480, controlPort: undefined });
  });

  test('env vars are read and flags override them', () => {
    const env = { FAKE_CAMERA_PORT: '5000', FAKE_CAMERA_MODE: 'truncated', FAKE_CAMERA_CAPTURE_MS: '10', FAKE_CAMERA_CONTROL_PORT: '0' };
    expect(loadConfig(env)).toMatchObject({ port: 5000, mode: 'truncated', captureMs: 10, controlPort: 0 });
    const args = parseArgs(['--port', '0', '--mode=flaky', '--fault-rate', '0.5']);
    if (args.help) throw new Error('unexpected help');
    expect(loadConfig(env, args.flags)).toMatchObject({ port: 0, mode: 'flaky', faultRate: 0.5, captureMs: 10 });
  });

  test('bad values name the flag or the variable', () => {
    const args = parseArgs(['--port', '70000']);
    if (args.help) throw new Error('unexpected help');
    expect(() => loadConfig({}, args.flags)).toThrow('invalid --port="70000": expected an integer from 0 to 65535');
    expect(() => loadConfig({ FAKE_CAMERA_MODE: 'weird' })).toThrow(/FAKE_CAMERA_MODE="weird".*hang-accept/);
    expect(() => loadConfig({ FAKE_CAMERA_FAULT_RATE: '2' })).toThrow(ConfigError);
  });

  test('unknown flags and missing values are config errors; --help is recognised', () => {
    expect(() => parseArgs(['--prot', '1'])).toThrow(/unknown argument "--prot": allowed flags are --port, --host, /);
    expect(() => parseArgs(['--port'])).toThrow(/--port/);
    expect(parseArgs(['--port', '1', '--help'])).toEqual({ help: true });
  });

  test('--help lists every flag and variable with its default', () => {
    for (const v of FAKE_CAMERA_SETTINGS.variables()) expect(USAGE).toContain(v.name);
    expect(USAGE).toContain('FAKE_CAMERA_FAULT_RATE (--fault-rate F) [0.3]');
  });

  test('the FakeCamera constructor takes its defaults from the declaration', () => {
    const cam = new FakeCamera();
    expect(cam.port).toBe(FAKE_CAMERA_SETTINGS.defaults().port);
    expect(cam.mode).toBe('ok');
    expect(cam.stats.mode).toBe(loadConfig({}).mode);
  });

  test('.env.example lists every variable with its default, and docs/configuration.md the generated table', () => {
    const root = path.resolve(__dirname, '../../..');
    expect(FAKE_CAMERA_SETTINGS.checkEnvExample(fs.readFileSync(path.join(root, '.env.example'), 'utf8'))).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'docs/configuration.md'), 'utf8')).toContain(FAKE_CAMERA_SETTINGS.markdown());
  });
});
