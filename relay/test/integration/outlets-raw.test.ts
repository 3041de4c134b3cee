/** Raw TCP outlet over real sockets with a real FrameStore (no camera needed). */
import { rawFetch, waitFor } from '../../../test-support';
import { Rig, closed, connect, fakeJpeg, startRig } from '../../../test-support';

describe('raw TCP outlet', () => {
  let rig: Rig;
  afterEach(async () => {
    await rig?.stop();
  });

  test('a fresh frame is sent at once, whole, then EOF; metrics count it', async () => {
    rig = await startRig();
    const img = fakeJpeg(1, 100_000);
    rig.store.publish(img);
    let nudges = 0;
    rig.store.on('nudge', () => nudges++);
    const r = await rawFetch(rig.raw.port);
    expect(r.error).toBeUndefined();
    expect(r.data.equals(img)).toBe(true);
    expect(nudges).toBe(1); // served from cache: asks the source for a newer frame
    expect(r.ms).toBeLessThan(1000);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'raw' })).toBe(1);
    expect(await rig.metric('relay_bytes_sent_total', { protocol: 'raw' })).toBe(100_000);
    expect(await rig.metric('relay_client_connections_total', { protocol: 'raw' })).toBe(1);
    const lat = await rig.metrics.deliveryLatency.get();
    expect(lat.values.find((v) => v.metricName === 'relay_delivery_latency_seconds_count' && v.labels.protocol === 'raw')?.value).toBe(1);
    await waitFor(() => rig.limiter.clients('raw') === 0 && rig.limiter.connections === 0, 2000, 'the client released');
  });

  test('clients waiting together all get the same next frame; a stale frame is never sent', async () => {
    rig = await startRig({ maxFrameAgeMs: 100, waitTimeoutMs: 5000 });
    rig.store.publish(fakeJpeg(1), Date.now() - 10_000); // stale
    const fetches = Array.from({ length: 20 }, () => rawFetch(rig.raw.port));
    await new Promise<void>((r) => {
      const check = () => (rig.store.demand >= 20 ? r() : setTimeout(check, 10));
      check();
    });
    expect(rig.limiter.clients('raw')).toBe(20);
    const next = fakeJpeg(2, 50_000);
    rig.store.publish(next);
    rig.store.publish(fakeJpeg(3, 50_000));
    const results = await Promise.all(fetches);
    for (const r of results) expect(r.data.equals(next)).toBe(true);
  });

  test('the very Buffer published is what every waiting client is written (shared, not copied)', async () => {
    rig = await startRig({ waitTimeoutMs: 5000 });
    const sockets = await Promise.all([connect(rig.raw.port), connect(rig.raw.port), connect(rig.raw.port)]);
    await new Promise<void>((r) => {
      const check = () => (rig.store.demand >= 3 ? r() : setTimeout(check, 10));
      check();
    });
    // Watch the server-side sockets' writes.
    const net = await import('node:net');
    const written: Buffer[] = [];
    const orig = net.Socket.prototype.write;
    const spy = jest.spyOn(net.Socket.prototype, 'write').mockImplementation(function (this: import('node:net').Socket, ...args: unknown[]) {
      if (Buffer.isBuffer(args[0])) written.push(args[0]);
      return (orig as (...a: unknown[]) => boolean).apply(this, args);
    });
    try {
      const img = fakeJpeg(5, 10_000);
      rig.store.publish(img);
      await Promise.all(sockets.map((s) => { s.resume(); return closed(s); }));
      const frames = written.filter((b) => b.length === img.length);
      expect(frames).toHaveLength(3);
      for (const b of frames) expect(b).toBe(img);
    } finally {
      spy.mockRestore();
    }
  });

  test('a client that half-closes at once (nc -N, ncat) still gets its frame, also after waiting', async () => {
    rig = await startRig({ maxFrameAgeMs: 100, waitTimeoutMs: 5000 });
    rig.store.publish(fakeJpeg(1, 20_000));
    const get = async () => {
      const s = await connect(rig.raw.port);
      const chunks: Buffer[] = [];
      s.on('data', (c) => chunks.push(c));
      s.end();
      await closed(s);
      return Buffer.concat(chunks);
    };
    expect((await get()).equals(fakeJpeg(1, 20_000))).toBe(true);
    await waitFor(() => rig.store.fresh(100) === undefined, 2000, 'the frame stale'); // the next client waits
    const waiting = get();
    await waitFor(() => rig.store.demand === 1, 2000, 'the client waiting');
    rig.store.publish(fakeJpeg(2, 30_000));
    expect((await waiting).equals(fakeJpeg(2, 30_000))).toBe(true);
    await waitFor(() => rig.raw.connections === 0, 2000, 'sockets closed');
  });

  test('no frame within CLIENT_WAIT_TIMEOUT_MS: the connection closes with nothing', async () => {
    rig = await startRig({ waitTimeoutMs: 300 });
    const r = await rawFetch(rig.raw.port);
    expect(r.error).toBeUndefined();
    expect(r.data.length).toBe(0);
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(3000);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'raw' })).toBe(0);
  });

  test('a client may send a little (ignored) but one that floods is cut', async () => {
    rig = await startRig({ waitTimeoutMs: 5000 });
    const img = fakeJpeg(1);
    rig.store.publish(img);
    const s = await connect(rig.raw.port);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.write('GET / HTTP/1.0\r\n\r\n');
    await closed(s);
    expect(Buffer.concat(chunks).equals(img)).toBe(true);

    // no fresh frame: the client would wait 5 s; flooding input gets it cut at once
    rig.store.publish(fakeJpeg(2), Date.now() - 60_000);
    const f = await connect(rig.raw.port);
    f.on('error', () => undefined);
    f.resume();
    f.write(Buffer.alloc(64 * 1024));
    const ms = await closed(f);
    expect(ms).toBeLessThan(2000);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'raw' })).toBe(1);
  });

  test('over MAX_CLIENTS and MAX_CLIENTS_PER_IP a raw client is closed at once and counted', async () => {
    rig = await startRig({ maxClients: 2, maxClientsPerIp: 100, waitTimeoutMs: 5000 });
    const holders = [await connect(rig.raw.port), await connect(rig.raw.port)];
    await waitFor(() => rig.limiter.connections === 2, 2000, 'two clients admitted');
    const r = await rawFetch(rig.raw.port);
    expect(r.data.length).toBe(0);
    expect(r.ms).toBeLessThan(500);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'max_clients' })).toBe(1);
    expect(rig.logs.some((l) => l.msg === 'client refused' && l.reason === 'max_clients')).toBe(true);
    holders.forEach((h) => h.destroy());
    await rig.stop();

    rig = await startRig({ maxClients: 100, maxClientsPerIp: 1, waitTimeoutMs: 5000 });
    const h = await connect(rig.raw.port);
    await waitFor(() => rig.limiter.connections === 1, 2000, 'one client admitted');
    const r2 = await rawFetch(rig.raw.port);
    expect(r2.data.length).toBe(0);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'max_clients_per_ip' })).toBe(1);
    // the slot comes back when the holder's connection is over
    h.resume();
    rig.store.publish(fakeJpeg(9));
    await closed(h);
    await waitFor(() => rig.limiter.connections === 0, 2000, 'slot released');
    expect((await rawFetch(rig.raw.port)).data.equals(fakeJpeg(9))).toBe(true);
  });

  test('ALLOW_CIDRS that excludes 127.0.0.1 closes raw clients at once, even with a frame ready', async () => {
    rig = await startRig({ allowCidrs: ['10.0.0.0/8', '::2'] });
    rig.store.publish(fakeJpeg(1));
    const r = await rawFetch(rig.raw.port);
    expect(r.data.length).toBe(0);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'not_allowed' })).toBe(1);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'raw' })).toBe(0);
  });

  /** Publishes a 48 MiB frame and connects a client that never reads, so its write stays in flight. */
  async function stalledClientOnHugeFrame(): Promise<import('node:net').Socket> {
    const big = Buffer.alloc(48 * 1024 * 1024, 0x55);
    big[0] = 0xff;
    big[1] = 0xd8;
    rig.store.publish(big);
    const s = await connect(rig.raw.port);
    s.pause();
    s.on('error', () => undefined);
    await waitFor(() => rig.raw.connections === 1, 2000, 'the stalled client connected');
    return s;
  }

  test('a client that stops reading is destroyed after CLIENT_WRITE_TIMEOUT_MS', async () => {
    rig = await startRig({ writeTimeoutMs: 400 });
    const s = await stalledClientOnHugeFrame();
    const t0 = Date.now();
    await waitFor(() => rig.raw.connections === 0, 5000, 'the stalled client destroyed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(rig.limiter.connections).toBe(0);
    expect(await rig.metric('relay_frames_served_total', { protocol: 'raw' })).toBe(0);
    s.destroy();
  });

  test('stop() cuts a client still being written after SHUTDOWN_GRACE_MS (SIGTERM bound)', async () => {
    rig = await startRig({ writeTimeoutMs: 60_000, shutdownGraceMs: 300 });
    const s = await stalledClientOnHugeFrame();
    const t0 = Date.now();
    await rig.raw.stop();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250); // it got its grace ...
    expect(took).toBeLessThan(2000); // ... and not the 60 s write timeout
    await waitFor(() => rig.raw.connections === 0, 1000, 'close events after the cut');
    s.destroy();
  });

  test('stop() ends waiting clients promptly and is idempotent', async () => {
    rig = await startRig({ waitTimeoutMs: 10_000 });
    const pending = rawFetch(rig.raw.port);
    await waitFor(() => rig.store.demand === 1, 2000, 'the client waiting');
    const t0 = Date.now();
    await Promise.all([rig.raw.stop(), rig.raw.stop()]);
    const r = await pending;
    expect(r.data.length).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1500);
    await rig.raw.stop();
  });
});
