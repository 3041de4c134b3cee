import { RelayMetrics } from '../../src/metrics';

const value = async (m: RelayMetrics, name: string, protocol: string): Promise<number | undefined> => {
  const text = await m.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{protocol="${protocol}"}`));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

describe('RelayMetrics pending (plain-number) counts', () => {
  test('are added into the counters at every read, exactly once', async () => {
    const m = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0 });
    m.framesServed.inc({ protocol: 'raw' }, 2); // the prom-client API still works beside them
    m.pending.served.raw += 3;
    m.pending.bytes.raw += 1000;
    m.pending.connections.raw += 5;
    m.pending.served.mjpeg += 1;
    expect(await value(m, 'relay_frames_served_total', 'raw')).toBe(5);
    expect(await value(m, 'relay_bytes_sent_total', 'raw')).toBe(1000);
    expect(await value(m, 'relay_client_connections_total', 'raw')).toBe(5);
    expect(await value(m, 'relay_frames_served_total', 'mjpeg')).toBe(1);
    // a second read does not add them again; later counts are added on the next read
    expect(await value(m, 'relay_frames_served_total', 'raw')).toBe(5);
    m.pending.served.raw += 1;
    const got = await m.framesServed.get();
    expect(got.values.find((v) => v.labels.protocol === 'raw')?.value).toBe(6);
    expect(m.pending.served.raw).toBe(0);
  });
});

describe('RelayMetrics pendingLatency', () => {
  test('gives exactly what prom-client observe() gives (buckets, sum, count), merged at every read', async () => {
    const { Histogram, Registry } = await import('prom-client');
    const m = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0 });
    const ref = new Histogram({
      name: 'relay_delivery_latency_seconds', help: 'x', labelNames: ['protocol'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [new Registry()],
    });
    const values = [0, 0.0005, 0.001, 0.0010001, 0.003, 0.05, 0.7, 2.5, 3, 100];
    m.deliveryLatency.observe({ protocol: 'raw' }, 0.02); // the prom-client API still works beside it
    ref.observe({ protocol: 'raw' }, 0.02);
    for (const v of values) {
      m.pendingLatency.raw.observe(v);
      ref.observe({ protocol: 'raw' }, v);
    }
    m.pendingLatency.mjpeg.observe(0.004);
    ref.observe({ protocol: 'mjpeg' }, 0.004);
    const norm = async (h: typeof ref) => (await h.get()).values.map((v) => ({ ...v, value: Math.round(v.value * 1e9) / 1e9 }))
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(await norm(m.deliveryLatency)).toEqual(await norm(ref));
    // read again: nothing added twice; later observations are added on the next read
    expect(await norm(m.deliveryLatency)).toEqual(await norm(ref));
    m.pendingLatency.raw.observe(0.2);
    ref.observe({ protocol: 'raw' }, 0.2);
    expect(await norm(m.deliveryLatency)).toEqual(await norm(ref));
    expect(m.pendingLatency.raw.count).toBe(0);
  });
});
