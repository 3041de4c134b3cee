import { Writable } from 'node:stream';
import { CidrList, createLogger } from '@camrelay/common';
import { RelayMetrics } from '../../src/metrics';
import { ClientLimiter, type Lease } from '../../src/outlets/limits';

function setup(maxClients: number, maxClientsPerIp: number, allow: string[] = []) {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(c: Buffer, _e, cb) {
      for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  let now = 0;
  // eslint-disable-next-line prefer-const
  let limiter: ClientLimiter;
  const metrics = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: (p) => limiter.clients(p) });
  limiter = new ClientLimiter({ maxClients, maxClientsPerIp, allow: new CidrList(allow) }, { metrics, log: createLogger({ name: 't', destination: dest }), now: () => now });
  const rejected = async (reason: string) => (await metrics.clientsRejected.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { limiter, metrics, lines, rejected, advance: (ms: number) => (now += ms) };
}

function lease(r: ReturnType<ClientLimiter['admit']>): Lease {
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.lease;
}

describe('ClientLimiter', () => {
  test('take()/give() (raw hot path) share the slots and limits of admit(), mapped addresses included', () => {
    const { limiter } = setup(3, 2, ['192.0.2.0/24']);
    const a = limiter.take('::ffff:192.0.2.7');
    expect(a).toEqual({ ok: true, ip: '192.0.2.7' });
    lease(limiter.admit('192.0.2.7'));
    expect(limiter.take('192.0.2.7')).toEqual({ ok: false, reason: 'max_clients_per_ip' });
    expect(limiter.take('198.51.100.1')).toEqual({ ok: false, reason: 'not_allowed' });
    expect(limiter.take(undefined)).toEqual({ ok: false, reason: 'not_allowed' });
    expect(limiter.take('192.0.2.8').ok).toBe(true);
    expect(limiter.take('192.0.2.9')).toEqual({ ok: false, reason: 'max_clients' });
    expect(limiter.connections).toBe(3);
    limiter.give('192.0.2.7');
    expect(limiter.connectionsFrom('192.0.2.7')).toBe(1);
    expect(limiter.connections).toBe(2);
    expect(limiter.take('192.0.2.7').ok).toBe(true);
  });

  test('enter()/leave() move the same live counts as track()', () => {
    const { limiter } = setup(10, 10);
    const untrack = limiter.track('raw');
    limiter.enter('raw');
    limiter.enter('raw');
    expect(limiter.clients('raw')).toBe(3);
    limiter.leave('raw');
    untrack();
    untrack();
    expect(limiter.clients('raw')).toBe(1);
  });

  test('global limit across all addresses', () => {
    const { limiter } = setup(3, 10);
    const a = lease(limiter.admit('10.0.0.1'));
    lease(limiter.admit('10.0.0.2'));
    lease(limiter.admit('10.0.0.3'));
    expect(limiter.admit('10.0.0.4')).toEqual({ ok: false, reason: 'max_clients' });
    a.release();
    expect(limiter.admit('10.0.0.4').ok).toBe(true);
    expect(limiter.connections).toBe(3);
  });

  test('per-IP limit, with IPv4-mapped IPv6 addresses counted as the same client', () => {
    const { limiter } = setup(100, 2);
    lease(limiter.admit('192.0.2.7'));
    lease(limiter.admit('::ffff:192.0.2.7'));
    expect(limiter.connectionsFrom('192.0.2.7')).toBe(2);
    expect(limiter.admit('::FFFF:192.0.2.7')).toEqual({ ok: false, reason: 'max_clients_per_ip' });
    expect(limiter.admit('192.0.2.7')).toEqual({ ok: false, reason: 'max_clients_per_ip' });
    expect(limiter.admit('192.0.2.8').ok).toBe(true);
    expect(limiter.admit('2001:db8::1').ok).toBe(true);
  });

  test('release is idempotent: a slot is freed exactly once', () => {
    const { limiter } = setup(3, 2);
    const a = lease(limiter.admit('10.0.0.1'));
    const b = lease(limiter.admit('10.0.0.1'));
    a.release();
    a.release();
    a.release();
    expect(limiter.connections).toBe(1);
    expect(limiter.connectionsFrom('10.0.0.1')).toBe(1);
    lease(limiter.admit('10.0.0.1'));
    expect(limiter.admit('10.0.0.1')).toEqual({ ok: false, reason: 'max_clients_per_ip' });
    b.release();
    expect(limiter.connections).toBe(1);
  });

  test('the per-IP table forgets addresses with no connections (no unbounded growth)', () => {
    const { limiter } = setup(10, 10);
    for (let i = 0; i < 1000; i++) lease(limiter.admit(`10.1.${i >> 8}.${i & 255}`)).release();
    expect(limiter.connections).toBe(0);
    expect((limiter as unknown as { perIp: Map<string, number> }).perIp.size).toBe(0);
  });

  test('ALLOW_CIDRS: outside addresses and unknown addresses are not_allowed; mapped addresses match IPv4 rules', () => {
    const { limiter } = setup(10, 10, ['192.168.1.0/24', '::1']);
    expect(limiter.admit('192.168.1.20').ok).toBe(true);
    expect(limiter.admit('::ffff:192.168.1.21').ok).toBe(true);
    expect(limiter.admit('::1').ok).toBe(true);
    expect(limiter.admit('127.0.0.1')).toEqual({ ok: false, reason: 'not_allowed' });
    expect(limiter.admit('10.0.0.1')).toEqual({ ok: false, reason: 'not_allowed' });
    expect(limiter.admit(undefined)).toEqual({ ok: false, reason: 'not_allowed' });
    expect(limiter.connections).toBe(3);
  });

  test('reject() counts every refusal but logs at most once per interval per reason, with the suppressed count', async () => {
    const { limiter, lines, rejected, advance } = setup(1, 1);
    for (let i = 0; i < 5; i++) limiter.reject('max_clients', '::ffff:10.0.0.9', 'raw');
    limiter.reject('not_allowed', '10.0.0.8', 'http');
    expect(await rejected('max_clients')).toBe(5);
    expect(await rejected('not_allowed')).toBe(1);
    expect(lines.filter((l) => l.msg === 'client refused')).toHaveLength(2);
    expect(lines[0]).toMatchObject({ reason: 'max_clients', outlet: 'raw', ip: '10.0.0.9' });
    advance(10_001);
    limiter.reject('max_clients', '10.0.0.9', 'raw');
    expect(lines.filter((l) => l.msg === 'client refused')).toHaveLength(3);
    expect(lines[2]).toMatchObject({ reason: 'max_clients', suppressed: 4 });
  });

  test('track() feeds the per-protocol relay_clients gauge and releases once', async () => {
    const { limiter, metrics } = setup(10, 10);
    const r1 = limiter.track('mjpeg');
    limiter.track('mjpeg');
    limiter.track('raw');
    r1();
    r1();
    expect(limiter.clientCounts()).toEqual({ raw: 1, snapshot: 0, mjpeg: 1 });
    const g = await metrics.clients.get();
    expect(g.values.find((v) => v.labels.protocol === 'mjpeg')?.value).toBe(1);
    expect(g.values.find((v) => v.labels.protocol === 'raw')?.value).toBe(1);
    expect(g.values.find((v) => v.labels.protocol === 'snapshot')?.value).toBe(0);
  });

  test('limits below 1 are a programming error', () => {
    expect(() => setup(0, 1)).toThrow(RangeError);
  });
});
