/**
 * ForwardHandler on its own, with stand-in accept/reject, for the settle-exactly-once guarantees
 * under races (timeouts, session loss, accept throwing).
 */
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { waitFor } from '../../../test-support';
import { parseForwards } from '../../src/config';
import { ForwardHandler } from '../../src/forward';
import { AgentMetrics } from '../../src/metrics';
import { captureLog } from '../../../test-support/tunnel/agent';

const spec = parseForwards('1234:cam:1234')[0];

function setup(connect: () => net.Socket, opts: { timeoutMs?: number; max?: number } = {}) {
  const metrics = new AgentMetrics({ forwards: [spec.spec], version: 't', sessionUptime: () => 0, withDefaults: false });
  const h = new ForwardHandler({
    spec, connectTimeoutMs: opts.timeoutMs ?? 50, maxConnections: opts.max ?? 4, metrics, log: captureLog().log, connect,
  });
  const calls: string[] = [];
  const channels: PassThrough[] = [];
  const accept = () => {
    calls.push('accept');
    const c = new PassThrough();
    channels.push(c);
    return c;
  };
  const reject = () => {
    calls.push('reject');
  };
  const result = (r: string) => metrics.value('tunnel_agent_forwarded_connections_total', { forward: spec.spec, result: r });
  return { h, calls, channels, accept, reject, result, metrics };
}

/** A socket that never connects (like a SYN into a black hole). */
const never = () => new net.Socket();

test('target connect timeout rejects exactly once; later session loss does not settle again', async () => {
  const t = setup(never);
  t.h.handle(t.accept, t.reject);
  expect(t.h.activeCount).toBe(1);
  await waitFor(() => t.calls.length === 1, 2000, 'timeout');
  t.h.closeAll();
  await new Promise((r) => setTimeout(r, 100));
  expect(t.calls).toEqual(['reject']);
  expect(await t.result('target_timeout')).toBe(1);
  expect(await t.result('session_closed')).toBe(0);
  expect(t.h.activeCount).toBe(0);
});

test('session lost while connecting to the target: rejected once as session_closed, target destroyed', async () => {
  const sockets: net.Socket[] = [];
  const t = setup(() => {
    const s = never();
    sockets.push(s);
    return s;
  }, { timeoutMs: 5000 });
  t.h.handle(t.accept, t.reject);
  t.h.handle(t.accept, t.reject);
  t.h.closeAll();
  expect(t.calls).toEqual(['reject', 'reject']);
  expect(sockets.every((s) => s.destroyed)).toBe(true);
  expect(await t.result('session_closed')).toBe(2);
  expect(t.h.activeCount).toBe(0);
});

test('accept() throwing (session died under us) is counted, not thrown, and never followed by reject', async () => {
  const srv = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const t = setup(() => net.connect({ port, host: '127.0.0.1' }), { timeoutMs: 5000 });
  const calls: string[] = [];
  t.h.handle(
    () => {
      calls.push('accept');
      throw new Error('Not connected');
    },
    () => calls.push('reject'),
  );
  await waitFor(() => calls.length > 0 && t.h.activeCount === 0, 2000, 'settled');
  expect(calls).toEqual(['accept']);
  expect(await t.result('session_closed')).toBe(1);
  await new Promise<void>((r) => srv.close(() => r()));
});

test('concurrency cap: the excess is rejected at once without touching the target', async () => {
  let connects = 0;
  const t = setup(() => {
    connects++;
    return never();
  }, { timeoutMs: 5000, max: 2 });
  for (let i = 0; i < 3; i++) t.h.handle(t.accept, t.reject);
  expect(connects).toBe(2);
  expect(t.calls).toEqual(['reject']);
  expect(await t.result('rejected_limit')).toBe(1);
  expect(await t.metrics.value('tunnel_agent_active_connections', { forward: spec.spec })).toBe(2);
  t.h.closeAll();
  expect(t.calls).toEqual(['reject', 'reject', 'reject']);
});
