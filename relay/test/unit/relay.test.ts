import net from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { loadConfig, RelayConfig } from '../../src/config';
import { readinessMaxAgeMs, Relay } from '../../src/relay';
import { rawFetch } from '../../../test-support';
import { captureLog, closedPort, frameNo, TestCamera, until } from './support';

function config(env: Record<string, string>): RelayConfig {
  const r = loadConfig([], { BIND_HOST: '127.0.0.1', METRICS_HOST: '127.0.0.1', CLIENT_PORT: '0', HTTP_PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'silent', ...env });
  if (r.help) throw new Error('help');
  return r.config;
}

let cam: TestCamera;
beforeEach(async () => {
  cam = new TestCamera();
  await cam.start();
});
afterEach(() => cam.stop());

describe('Relay (in-process)', () => {
  test('starts every part on real ports, serves frames, reports readiness and status, stops idempotently', async () => {
    const { log } = captureLog();
    const relay = new Relay({ config: config({ CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), STALE_AFTER_IDLE_MS: '0' }), log, metricsWithDefaults: false });
    expect(relay.readiness().ready).toBe(false);
    const ports = await relay.start();
    try {
      expect(ports.clientPort).toBeGreaterThan(0);
      expect(ports.httpPort).toBeGreaterThan(0);
      expect(ports.metricsPort).toBeGreaterThan(0);
      expect(ports.ingestPort).toBeUndefined();
      const r = await rawFetch(ports.clientPort);
      expect(checkJpeg(r.data).ok).toBe(true);
      expect(frameNo(r.data)).toBeGreaterThanOrEqual(1);
      await until(() => relay.readiness().ready, 3000, 'ready');
      const readyz = await fetch(`http://127.0.0.1:${ports.metricsPort}/readyz`);
      expect(readyz.status).toBe(200);
      const status = await (await fetch(`http://127.0.0.1:${ports.httpPort}/status.json`)).json() as Record<string, unknown>;
      expect(status).toMatchObject({ cameraUp: true, mode: 'pull' });
      expect(relay.status().source.cameraUp).toBe(true);
    } finally {
      await relay.stop();
      await relay.stop();
    }
    const refused = await rawFetch(ports.clientPort);
    expect(refused.error).toBeDefined();
  });

  test('/status.json says why the camera is down without naming its (internal) address', async () => {
    const { log } = captureLog();
    const camPort = await closedPort();
    const relay = new Relay({ config: config({ CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(camPort), RETRY_MAX_MS: '500' }), log, metricsWithDefaults: false });
    const ports = await relay.start();
    try {
      await until(() => relay.status().source.lastError !== null, 5000, 'a failed fetch');
      const text = await (await fetch(`http://127.0.0.1:${ports.httpPort}/status.json`)).text();
      const status = JSON.parse(text) as Record<string, unknown>;
      expect(status.cameraUp).toBe(false);
      expect(status.lastErrorReason).toBe('refused');
      expect(status.lastError).toMatch(/^refused: connect ECONNREFUSED$/);
      expect(text).not.toContain('127.0.0.1');
      expect(text).not.toContain(String(camPort));
    } finally {
      await relay.stop();
    }
  });

  test('a port in use fails start() and leaves nothing listening', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const busy = (blocker.address() as net.AddressInfo).port;
    const rawPort = await closedPort();
    const { log } = captureLog();
    const relay = new Relay({ config: config({ CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), CLIENT_PORT: String(rawPort), HTTP_PORT: String(busy) }), log, metricsWithDefaults: false });
    try {
      await expect(relay.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
      const r = await rawFetch(rawPort);
      expect((r.error as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNREFUSED');
    } finally {
      await relay.stop();
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  test('push mode reports the ingest port', async () => {
    const { log } = captureLog();
    const relay = new Relay({ config: config({ CAMERA_MODE: 'push', INGEST_HOST: '127.0.0.1', INGEST_PORT: '0' }), log, metricsWithDefaults: false });
    const ports = await relay.start();
    try {
      expect(ports.ingestPort).toBeGreaterThan(0);
    } finally {
      await relay.stop();
    }
  });

  test('readiness age bound follows MAX_FRAME_AGE_MS and IDLE_FPS', () => {
    expect(readinessMaxAgeMs(config({}))).toBe(2000);
    expect(readinessMaxAgeMs(config({ IDLE_FPS: '0.2' }))).toBe(6000);
    expect(readinessMaxAgeMs(config({ MAX_FRAME_AGE_MS: '3000' }))).toBe(4000);
    expect(readinessMaxAgeMs(config({ IDLE_FPS: '0' }))).toBe(Infinity);
  });
});
