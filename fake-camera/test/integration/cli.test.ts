import { checkJpeg } from '@camrelay/common';
import { httpGet, killAllChildren, rawFetch, spawnPackage } from '../../../test-support';
import { frameSeqOf } from '../../src/frames';

afterAll(killAllChildren);

describe('fake-camera CLI', () => {
  test('starts on a free port, logs it, serves frames, switches mode via control, exits 0 on SIGTERM', async () => {
    const cam = spawnPackage('fake-camera', ['--port', '0', '--host', '127.0.0.1', '--control-port', '0', '--capture-ms', '5', '--width', '320', '--height', '240']);
    const line = await cam.waitForLog((l) => l.msg === 'listening', 20_000);
    const port = line.port as number;
    const controlPort = line.controlPort as number;
    expect(port).toBeGreaterThan(0);
    expect(controlPort).toBeGreaterThan(0);

    const a = await rawFetch(port);
    const b = await rawFetch(port);
    expect(checkJpeg(a.data).ok).toBe(true);
    expect(checkJpeg(b.data).ok).toBe(true);
    expect(frameSeqOf(b.data)).toBe(frameSeqOf(a.data)! + 1);

    const sw = await fetch(`http://127.0.0.1:${controlPort}/mode?m=not-jpeg`, { method: 'POST' });
    expect(sw.status).toBe(200);
    expect(checkJpeg((await rawFetch(port)).data).ok).toBe(false);
    const stats = JSON.parse((await httpGet(`http://127.0.0.1:${controlPort}/stats`)).body.toString());
    expect(stats).toMatchObject({ connections: 3, framesSent: 2, faultsInjected: 1, mode: 'not-jpeg' });

    expect(await cam.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 30_000);

  test('env vars configure it (Docker style)', async () => {
    const cam = spawnPackage('fake-camera', [], { FAKE_CAMERA_PORT: '0', FAKE_CAMERA_HOST: '127.0.0.1', FAKE_CAMERA_MODE: 'empty', FAKE_CAMERA_WIDTH: '64', FAKE_CAMERA_HEIGHT: '48' });
    const line = await cam.waitForLog((l) => l.msg === 'listening', 20_000);
    expect(line.mode).toBe('empty');
    expect(line.controlPort).toBeUndefined();
    expect((await rawFetch(line.port as number)).data.length).toBe(0);
    expect((await cam.kill('SIGTERM')).code).toBe(0);
  }, 30_000);

  test('a bad flag exits 2 naming the flag, the value and what is allowed', async () => {
    const cam = spawnPackage('fake-camera', ['--capture-ms', 'soon']);
    expect((await cam.exited).code).toBe(2);
    expect(cam.stderr()).toContain('invalid --capture-ms="soon": expected an integer');
    const env = spawnPackage('fake-camera', [], { FAKE_CAMERA_LINK_KBPS: '-5' });
    expect((await env.exited).code).toBe(2);
    expect(env.stderr()).toContain('FAKE_CAMERA_LINK_KBPS="-5"');
  }, 30_000);

  test('--help prints usage and exits 0', async () => {
    const cam = spawnPackage('fake-camera', ['--help']);
    expect((await cam.exited).code).toBe(0);
    expect(cam.stdout()).toContain('--fault-rate');
  }, 30_000);
});
