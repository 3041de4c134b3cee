import { RelayMetrics } from '../../src/metrics';
import { parseMetric } from '../../../test-support';

const make = () => new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0, defaultCamera: 'front' });

describe('RelayMetrics per camera', () => {
  test('camera(name) binds every per-camera family to camera="<name>"; relay-wide families have no camera label', async () => {
    const m = make();
    const a = m.camera('a', () => 1.5);
    const b = m.camera('b');
    a.frames.inc();
    a.frames.inc();
    b.fetchErrors.inc({ reason: 'refused' });
    a.pending.served.raw += 3;
    b.pending.connections.raw += 2;
    a.pending.connections.mjpeg += 1;
    a.deliveryLatency.child('raw').observe(0.003);
    b.deliveryLatency.observe({ protocol: 'snapshot' }, 0.2);
    const text = await m.registry.metrics();
    expect(parseMetric(text, 'relay_frames_total', { camera: 'a' })).toBe(2);
    expect(parseMetric(text, 'relay_frames_total', { camera: 'b' })).toBe(0);
    expect(parseMetric(text, 'relay_fetch_errors_total', { camera: 'b', reason: 'refused' })).toBe(1);
    expect(parseMetric(text, 'relay_fetch_errors_total', { camera: 'a', reason: 'refused' })).toBe(0);
    expect(parseMetric(text, 'relay_frames_served_total', { camera: 'a', protocol: 'raw' })).toBe(3);
    expect(parseMetric(text, 'relay_client_connections_total', { protocol: 'raw' })).toBe(2);
    expect(parseMetric(text, 'relay_client_connections_total', { protocol: 'mjpeg' })).toBe(1);
    expect(text).not.toMatch(/relay_client_connections_total\{[^}]*camera=/);
    expect(parseMetric(text, 'relay_frame_age_seconds', { camera: 'a' })).toBe(1.5);
    expect(parseMetric(text, 'relay_frame_age_seconds', { camera: 'b' })).toBe(Infinity);
    expect(parseMetric(text, 'relay_delivery_latency_seconds_count', { camera: 'a', protocol: 'raw' })).toBe(1);
    expect(parseMetric(text, 'relay_delivery_latency_seconds_count', { camera: 'b', protocol: 'snapshot' })).toBe(1);
    // a bound view's get() shows only its own series
    expect((await a.frames.get()).values.map((v) => v.labels.camera)).toEqual(['a']);
  });

  test('relay_camera_frozen exists at 0 for every camera from the start, and is set per camera', async () => {
    const m = make();
    const a = m.camera('a');
    m.camera('b');
    let text = await m.registry.metrics();
    expect(parseMetric(text, 'relay_camera_frozen', { camera: 'a' })).toBe(0);
    expect(parseMetric(text, 'relay_camera_frozen', { camera: 'b' })).toBe(0);
    a.cameraFrozen.set(1);
    text = await m.registry.metrics();
    expect(parseMetric(text, 'relay_camera_frozen', { camera: 'a' })).toBe(1);
    expect(parseMetric(text, 'relay_camera_frozen', { camera: 'b' })).toBe(0);
  });

  test('removeCamera drops every series of that camera and keeps its connections in the relay-wide total', async () => {
    const m = make();
    const a = m.camera('a');
    m.camera('b').frames.inc();
    a.frames.inc();
    a.cameraFrozen.set(1);
    a.archiveErrors.inc({ reason: 'write' });
    a.deliveryLatency.child('mjpeg').observe(0.01);
    a.pending.connections.raw += 4;
    m.removeCamera('a');
    const text = await m.registry.metrics();
    expect(text).not.toMatch(/camera="a"/);
    expect(parseMetric(text, 'relay_frames_total', { camera: 'b' })).toBe(1);
    expect(parseMetric(text, 'relay_camera_frozen', { camera: 'b' })).toBe(0);
    expect(parseMetric(text, 'relay_client_connections_total', { protocol: 'raw' })).toBe(4);
    expect(m.cameraNames()).toEqual(['b']);
  });

  test('the getters on RelayMetrics are the default camera, created on first use', async () => {
    const m = make();
    expect(m.cameraNames()).toEqual([]);
    m.frames.inc();
    expect(m.cameraNames()).toEqual(['front']);
    expect(parseMetric(await m.registry.metrics(), 'relay_frames_total', { camera: 'front' })).toBe(1);
  });
});
