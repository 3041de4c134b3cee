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
