import { RelayMetrics } from '../../src/metrics';

const value = async (m: RelayMetrics, name: string, protocol: string): Promise<number | undefined> => {
  const text = await m.registry.metrics();
  // per-camera families carry camera="default" (the default camera's view) before the protocol
  const line = text.split('\n').find((l) => l.startsWith(`${name}{protocol="${protocol}"}`) || l.startsWith(`${name}{camera="default",protocol="${protocol}"}`));
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

describe('RelayMetrics deliveryLatency (plain-number histogram on the public metric contract)', () => {
  test('gives exactly what prom-client observe() gives (buckets, sum, count); reads change nothing', async () => {
    const { Histogram, Registry } = await import('prom-client');
    const m = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0 });
    const refRegistry = new Registry();
    const ref = new Histogram({
      name: 'relay_delivery_latency_seconds', help: 'Time from frame published to fully written to a client socket', labelNames: ['camera', 'protocol'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [refRegistry],
    });
    const values = [0, 0.0005, 0.001, 0.0010001, 0.003, 0.05, 0.7, 2.5, 3, 100];
    m.deliveryLatency.observe({ protocol: 'raw' }, 0.02); // the labelled API beside the hot-path child
    ref.observe({ camera: 'default', protocol: 'raw' }, 0.02);
    const raw = m.deliveryLatency.child('raw');
    for (const v of values) {
      raw.observe(v);
      ref.observe({ camera: 'default', protocol: 'raw' }, v);
    }
    m.deliveryLatency.observe({ protocol: 'mjpeg' }, 0.004);
    ref.observe({ camera: 'default', protocol: 'mjpeg' }, 0.004);
    const norm = async (h: { get(): Promise<{ values: { metricName?: string; labels: object; value: number }[] }> }) =>
      (await h.get()).values
        .map((v) => ({ metricName: v.metricName, labels: { ...v.labels }, value: Math.round(v.value * 1e9) / 1e9 }))
        .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    const expected = await norm(ref);
    expect(expected.length).toBe(2 * 14); // 11 bounds + +Inf + sum + count, per protocol
    expect(await norm(m.deliveryLatency)).toEqual(expected);
    // read again: nothing added twice; later observations show on the next read
    expect(await norm(m.deliveryLatency)).toEqual(expected);
    raw.observe(0.2);
    ref.observe({ camera: 'default', protocol: 'raw' }, 0.2);
    expect(await norm(m.deliveryLatency)).toEqual(await norm(ref));
    // the registry's exposition text is prom-client's own, line for line
    const lines = (text: string) => text.split('\n').filter((l) => l.startsWith('relay_delivery_latency_seconds') || l.includes(' relay_delivery_latency_seconds ')).sort();
    const round = (l: string) => l.replace(/ ([0-9.e+-]+)$/, (_, n: string) => ` ${Math.round(Number(n) * 1e9) / 1e9}`);
    expect(lines(await m.registry.metrics()).map(round)).toEqual(lines(await refRegistry.metrics()).map(round));
  });

  test('rejects a value that is not a finite number; reset() forgets every label set', async () => {
    const m = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0 });
    expect(() => m.deliveryLatency.observe({ protocol: 'mjpeg' }, Number.NaN)).toThrow(/finite/);
    m.deliveryLatency.observe({ protocol: 'mjpeg' }, 0.5);
    expect((await m.deliveryLatency.get()).values.find((v) => v.metricName === 'relay_delivery_latency_seconds_count')?.value).toBe(1);
    m.registry.resetMetrics();
    expect((await m.deliveryLatency.get()).values).toEqual([]);
  });
});
