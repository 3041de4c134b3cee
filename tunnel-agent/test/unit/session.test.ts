/**
 * One SSH session on its own (SshSession) against ssh2's in-process server, its timers on fake time:
 * bind retries, the hooks, uptime, the bounded waits of a deliberate stop on a dead link, teardown.
 */
import net from 'node:net';
import { Client } from 'ssh2';
import { FakeClock, waitFor } from '../../../test-support';
import { captureLog, testAgentConfig } from '../../../test-support/tunnel/agent';
import { BlackholeProxy } from '../../../test-support/tunnel/blackhole-proxy';
import { TestSshServer } from '../../../test-support/tunnel/ssh2-server';
import { AgentMetrics } from '../../src/metrics';
import { SessionConfig, SshSession, STOP_CLOSE_WAIT_MS, UNFORWARD_WAIT_MS } from '../../src/session';
import { connectTcp } from '../../src/tcp-probe';

jest.setTimeout(20_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(srv: TestSshServer, port: number, config: Partial<SessionConfig> = {}) {
  const clock = new FakeClock();
  const c = testAgentConfig({ sshPort: port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, config });
  const metrics = new AgentMetrics({ forwards: c.forwards.map((f) => f.spec), version: 't', sessionUptime: () => 0, withDefaults: false });
  const { log, lines } = captureLog();
  const sock = await connectTcp({ host: '127.0.0.1', port, timeoutMs: 5000, signal: new AbortController().signal });
  const events: string[] = [];
  const session = new SshSession({
    config: c, sock, client: new Client(), metrics, log, clock, handlers: [],
    onReady: () => events.push('ready'),
    onForwarding: () => events.push('forwarding'),
  });
  const done = session.run();
  cleanups.push(async () => {
    const closing = session.close('stopped');
    await clock.advanceAsync(UNFORWARD_WAIT_MS + STOP_CLOSE_WAIT_MS);
    await closing;
    await done;
  });
  return { clock, session, done, sock, events, metrics, lines, spec: c.forwards[0].spec };
}

async function server(opts: ConstructorParameters<typeof TestSshServer>[0] = {}): Promise<TestSshServer> {
  const s = await new TestSshServer(opts).start();
  cleanups.push(() => s.close());
  return s;
}

test('a refused bind is retried after FORWARD_BIND_RETRY_MS on the clock, on the same session; hooks in order', async () => {
  const srv = await server({ forwardReply: (n) => (n < 2 ? 'reject' : 'accept') });
  const t = await start(srv, srv.port, { forwardBindRetryMs: 700 });
  expect(t.session.run()).toBe(t.done); // one run per session
  await waitFor(() => t.events.length === 1, 5000, 'ready');
  expect(t.session.ready).toBe(true);
  for (const n of [1, 2]) {
    // the refusal is in; the retry waits for the clock
    await waitFor(() => t.clock.pending().includes(700), 5000, `retry ${n} scheduled`);
    expect(srv.forwardRequests).toBe(n);
    expect(t.session.isBound(t.spec)).toBe(false);
    t.clock.advance(699);
    expect(srv.forwardRequests).toBe(n);
    t.clock.advance(1);
  }
  await waitFor(() => t.session.isBound(t.spec), 5000, 'bound');
  expect(srv.forwardRequests).toBe(3);
  expect(srv.conns).toHaveLength(1);
  expect(t.events).toEqual(['ready', 'forwarding']);
  expect(await t.metrics.value('tunnel_agent_forward_bind_failures_total', { forward: t.spec })).toBe(2);
  expect(await t.metrics.value('tunnel_agent_forward_bound', { forward: t.spec })).toBe(1);
  expect(t.lines.filter((l) => /forward bind refused/.test(String(l.msg)))).toHaveLength(1);
});

test('uptime counts on the clock from authentication; after the end nothing is bound and timers are gone', async () => {
  const srv = await server();
  const t = await start(srv, srv.port);
  await waitFor(() => t.events.includes('forwarding'), 5000, 'forwarding');
  expect(t.session.uptimeSeconds()).toBe(0);
  t.clock.advance(12_500);
  expect(t.session.uptimeSeconds()).toBe(12.5);
  let fired = false;
  t.session.after(1000, () => (fired = true));
  srv.cutAll();
  expect(await t.done).toEqual({ kind: 'ended', reason: 'server_closed' });
  expect(t.session.closed).toBe(true);
  expect(t.session.isBound(t.spec)).toBe(false);
  expect(t.session.uptimeSeconds()).toBe(0);
  expect(t.sock.destroyed).toBe(true);
  // every session timer was cleared with the session (the bind reply timeout included)
  expect(t.clock.pending()).toEqual([]);
  t.clock.advance(1000);
  expect(fired).toBe(false);
  expect(await t.metrics.value('tunnel_agent_forward_bound', { forward: t.spec })).toBe(0);
  expect(await t.metrics.value('tunnel_agent_disconnects_total', { reason: 'server_closed' })).toBe(1);
});

test('stop on a dead link: waits UNFORWARD_WAIT_MS for the cancel, then STOP_CLOSE_WAIT_MS for the close, then destroys our socket', async () => {
  const srv = await server();
  const proxy = await new BlackholeProxy(srv.port).start();
  cleanups.push(() => proxy.stop());
  const t = await start(srv, proxy.port);
  await waitFor(() => t.events.includes('forwarding'), 5000, 'forwarding');
  expect(proxy.blackholeExisting()).toBe(1);
  let closed = false;
  const closing = t.session.close('stopped').then(() => (closed = true));
  await t.clock.advanceAsync(UNFORWARD_WAIT_MS - 1);
  expect(t.sock.destroyed).toBe(false);
  await t.clock.advanceAsync(1); // no reply to cancel-tcpip-forward: give up on it, say goodbye
  await t.clock.advanceAsync(STOP_CLOSE_WAIT_MS - 1);
  expect(t.sock.destroyed).toBe(false);
  expect(closed).toBe(false);
  await t.clock.advanceAsync(1); // the peer never closed: destroy our socket ourselves
  expect(t.sock.destroyed).toBe(true);
  await closing;
  expect(await t.done).toEqual({ kind: 'ended', reason: 'stopped' });
  expect(t.lines.find((l) => l.msg === 'disconnected (stopping)')).toBeDefined();
  proxy.destroyDead();
});

test('host key mismatch: refused before authentication, classified, our socket destroyed', async () => {
  const srv = await server();
  const wrong = new TestSshServer().hostFingerprint;
  const clock = new FakeClock();
  const c = testAgentConfig({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: wrong });
  const metrics = new AgentMetrics({ forwards: c.forwards.map((f) => f.spec), version: 't', sessionUptime: () => 0, withDefaults: false });
  const sock: net.Socket = await connectTcp({ host: '127.0.0.1', port: srv.port, timeoutMs: 5000, signal: new AbortController().signal });
  const session = new SshSession({ config: c, sock, client: new Client(), metrics, log: captureLog().log, clock, handlers: [] });
  const done = session.run();
  // ssh2 ends the socket; the in-process server closes at once, so no grace is needed here
  const outcome = await Promise.race([done, waitFor(() => clock.pending().length > 0, 5000, 'grace').then(async () => {
    clock.advance(Math.max(...clock.pending()));
    return done;
  })]);
  expect(outcome).toEqual({ kind: 'failed', result: 'host_key_mismatch' });
  expect(srv.authAttempts).toBe(0);
  expect(sock.destroyed).toBe(true);
  expect(await metrics.value('tunnel_agent_host_key_mismatches_total')).toBe(1);
  expect(await metrics.value('tunnel_agent_connect_attempts_total', { result: 'host_key_mismatch' })).toBe(1);
});
