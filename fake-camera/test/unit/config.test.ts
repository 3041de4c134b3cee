import { ConfigError } from '@camrelay/common';
import { loadConfig, parseArgs } from '../../src/config';

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
    expect(() => parseArgs(['--prot', '1'])).toThrow(/--prot/);
    expect(() => parseArgs(['--port'])).toThrow(/--port/);
    expect(parseArgs(['--port', '1', '--help'])).toEqual({ help: true });
  });
});
