/** MJPEG streaming over real sockets: framing, latest-frame delivery, slow and stalled viewers. */
import net from 'node:net';
import { waitFor } from '../../../test-support';
import { DEFAULT_SLICE, PART_TRAILER, partHeader } from '../../src/outlets/mjpeg';
import { Rig, closed, fakeJpeg, openStream, sleep, startRig } from './outlets-fixture';

/** A viewer that requests the stream and then never reads a byte. */
async function stalledViewer(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise((r) => s.once('connect', r));
  s.write('GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n');
  s.pause();
  return s;
}

/** Publishes `n` frames every `everyMs`, alternating between two shared buffers of `size` bytes. */
async function publishFrames(rig: Rig, n: number, everyMs: number, size: number, onTick?: () => void): Promise<number> {
  const bufs = [fakeJpeg(1, size), fakeJpeg(2, size)];
  let last = 0;
  for (let i = 0; i < n; i++) {
    last = rig.store.publish(bufs[i % 2]).seq;
    onTick?.();
    await sleep(everyMs);
  }
  return last;
}

describe('MJPEG outlet', () => {
  let rig: Rig;
  afterEach(async () => {
    await rig?.stop();
  });

  test('a viewer gets the fresh latest frame at once, then every new frame, correctly framed; metrics add up', async () => {
    rig = await startRig();
    const first = rig.store.publish(fakeJpeg(100, 3000));
    const v = await openStream(`${rig.base}/stream.mjpg`);
    expect(v.status).toBe(200);
    expect(v.headers['content-type']).toBe('multipart/x-mixed-replace; boundary=camrelay');
    expect(v.headers['cache-control']).toContain('no-store');
    await waitFor(() => v.reader.parts.length === 1, 3000, 'first part');
    expect(rig.store.demand).toBe(1);
    expect(rig.limiter.clients('mjpeg')).toBe(1);
    const sent = [first];
    for (let i = 1; i <= 5; i++) {
      sent.push(rig.store.publish(fakeJpeg(100 + i, 1000 * i)));
      await waitFor(() => v.reader.parts.length === i + 1, 3000, `part ${i + 1}`);
    }
    v.reader.parts.forEach((p, i) => {
      expect(p.body.equals(sent[i].data)).toBe(true);
      expect(Number(p.headers['x-frame-seq'])).toBe(sent[i].seq);
    });
    const bytes = sent.reduce((n, f) => n + partHeader(f).length + f.data.length + PART_TRAILER.length, 0);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'mjpeg' })).toBe(6);
    expect(await rig.metric('relay_bytes_sent_total', { protocol: 'mjpeg' })).toBe(bytes);
    expect(await rig.metric('relay_client_connections_total', { protocol: 'mjpeg' })).toBe(1);
    expect(await rig.metric('relay_frames_dropped_total')).toBe(0);
    expect(await rig.metric('relay_clients', { protocol: 'mjpeg' })).toBe(1);
    const lat = (await rig.metrics.deliveryLatency.get()).values.find((x) => x.metricName === 'relay_delivery_latency_seconds_count' && x.labels.protocol === 'mjpeg');
    expect(lat?.value).toBe(6);
    v.close();
    await waitFor(() => rig.limiter.clients('mjpeg') === 0 && rig.store.demand === 0, 3000, 'viewer gone');
    expect(rig.limiter.connections).toBe(0);
  });

  test('a fan-out in slices (more viewers than one slice) still gives every viewer every frame, in order, none dropped', async () => {
    rig = await startRig({ maxClients: 300, maxClientsPerIp: 300 });
    const n = 3 * DEFAULT_SLICE + 7;
    const vs = await Promise.all(Array.from({ length: n }, () => openStream(`${rig.base}/stream.mjpg`)));
    await waitFor(() => rig.limiter.clients('mjpeg') === n, 5000, 'all viewers admitted');
    const sent = [];
    for (let i = 1; i <= 5; i++) {
      sent.push(rig.store.publish(fakeJpeg(200 + i, 20_000)));
      await waitFor(() => vs.every((v) => v.reader.parts.length === i), 5000, `frame ${i} at every viewer`);
    }
    for (const v of vs) {
      expect(v.reader.parts.map((p) => Number(p.headers['x-frame-seq']))).toEqual(sent.map((f) => f.seq));
      expect(v.reader.parts[4].body.equals(sent[4].data)).toBe(true);
      v.close();
    }
    expect(await rig.metric('relay_frames_dropped_total')).toBe(0);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'mjpeg' })).toBe(5 * n);
  });

  test('a stream outlives HTTP_HEADERS_TIMEOUT_MS and the request timeout (they only bound the request)', async () => {
    rig = await startRig({ headersTimeoutMs: 300, keepAliveTimeoutMs: 300 });
    const v = await openStream(`${rig.base}/stream.mjpg`);
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < 1500) {
      rig.store.publish(fakeJpeg(++sent, 500));
      await sleep(100);
    }
    await waitFor(() => v.reader.parts.length === sent, 3000, 'all parts');
    expect(rig.http.mjpeg.size).toBe(1);
    v.close();
  });

  test('a stale latest frame is not sent to a new viewer; it waits for the next', async () => {
    rig = await startRig({ maxFrameAgeMs: 100 });
    rig.store.publish(fakeJpeg(1), Date.now() - 10_000);
    const v = await openStream(`${rig.base}/stream.mjpg`);
    await sleep(150);
    expect(v.reader.parts).toHaveLength(0);
    rig.store.publish(fakeJpeg(2));
    await waitFor(() => v.reader.parts.length === 1, 3000, 'part');
    expect(v.reader.parts[0].body.equals(fakeJpeg(2))).toBe(true);
    v.close();
  });

  test('a viewer that stops reading does not slow the others, holds at most ~one frame, and its skipped frames are counted', async () => {
    const size = 512 * 1024;
    rig = await startRig({ writeTimeoutMs: 60_000 });
    const fast = await openStream(`${rig.base}/stream.mjpg`);
    const slow = await stalledViewer(rig.http.port);
    await waitFor(() => rig.http.mjpeg.size === 2, 3000, 'two viewers');
    let maxBacklog = 0;
    const n = 100;
    const t0 = Date.now();
    const last = await publishFrames(rig, n, 20, size, () => {
      for (const b of rig.http.mjpeg.backlogs()) maxBacklog = Math.max(maxBacklog, b);
    });
    await waitFor(() => fast.reader.parts.length > 0 && Number(fast.reader.parts[fast.reader.parts.length - 1].headers['x-frame-seq']) === last, 5000, 'fast viewer has the last frame');
    const elapsed = Date.now() - t0;
    // the fast viewer kept up with the publish rate
    expect(fast.reader.parts.length).toBeGreaterThanOrEqual(n * 0.7);
    expect(elapsed).toBeLessThan(n * 20 + 3000);
    // the stalled one is still connected, but never had more than one frame queued in user space
    expect(rig.http.mjpeg.size).toBe(2);
    expect(maxBacklog).toBeGreaterThan(size / 2); // it really is stuck mid-frame
    expect(maxBacklog).toBeLessThanOrEqual(size + 4096);
    const dropped = await rig.metric('relay_frames_dropped_total');
    expect(dropped).toBeGreaterThanOrEqual(n / 2);
    slow.destroy();
    fast.close();
  }, 30_000);

  test('a stalled viewer is disconnected after CLIENT_WRITE_TIMEOUT_MS while the others keep streaming', async () => {
    rig = await startRig({ writeTimeoutMs: 500 });
    const fast = await openStream(`${rig.base}/stream.mjpg`);
    const slow = await stalledViewer(rig.http.port);
    await waitFor(() => rig.http.mjpeg.size === 2, 3000, 'two viewers');
    const last = await publishFrames(rig, 60, 25, 512 * 1024);
    await waitFor(() => rig.http.mjpeg.size === 1, 3000, 'stalled viewer cut');
    expect(rig.limiter.clients('mjpeg')).toBe(1);
    expect(rig.limiter.connections).toBe(1);
    await waitFor(() => Number(fast.reader.parts[fast.reader.parts.length - 1]?.headers['x-frame-seq']) === last, 5000, 'fast viewer up to date');
    const more = rig.store.publish(fakeJpeg(7, 1000));
    await waitFor(() => Number(fast.reader.parts[fast.reader.parts.length - 1]?.headers['x-frame-seq']) === more.seq, 3000, 'fast viewer still live');
    slow.destroy();
    fast.close();
  }, 30_000);

  test('stop() ends every stream (even a stalled one) within the grace and is idempotent', async () => {
    rig = await startRig({ shutdownGraceMs: 300, writeTimeoutMs: 60_000 });
    const a = await openStream(`${rig.base}/stream.mjpg`);
    const slow = await stalledViewer(rig.http.port);
    await waitFor(() => rig.http.mjpeg.size === 2, 3000, 'two viewers');
    await publishFrames(rig, 20, 5, 512 * 1024);
    const t0 = Date.now();
    await Promise.all([rig.http.stop(), rig.http.stop()]);
    expect(Date.now() - t0).toBeLessThan(2000);
    await a.ended;
    expect(rig.http.mjpeg.size).toBe(0);
    expect(rig.store.demand).toBe(0);
    slow.resume();
    await closed(slow);
  });
});
