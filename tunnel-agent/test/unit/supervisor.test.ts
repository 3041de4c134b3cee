/**
 * Supervisor against ssh2's in-process Server: the state machine, backoff decisions (with an
 * injected clock), bind retries and timeouts, host-key refusal, keepalive detection, forwarding.
 */
import net from 'node:net';
import { Client, type ConnectConfig } from 'ssh2';
import { FakeClock, closedPort, waitFor } from '../../../test-support';
import { makeAgent, is, TestAgent } from '../../../test-support/tunnel/agent';
import { BlackholeProxy } from '../../../test-support/tunnel/blackhole-proxy';
import { readAll, TestSshServer } from '../../../test-support/tunnel/ssh2-server';
import { END_GRACE_MS } from '../../src/session';
import { connectTcp, SocketFactory } from '../../src/supervisor';

/** Resolves once the clock has a pending timer of `ms` (the code under test is waiting on it). */
const waitingOn = (clock: FakeClock, ms: number, what = `a ${ms} ms timer`) => waitFor(() => clock.pending().includes(ms), 10_000, what);

jest.setTimeout(30_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A fresh Client that records the config it is connected with. */
function spyClient(configs: ConnectConfig[]): Client {
  const c = new Client();
  const connect = c.connect.bind(c);
  c.connect = (cfg: ConnectConfig) => {
    configs.push(cfg);
    return connect(cfg);
  };
  return c;
}

async function server(opts: ConstructorParameters<typeof TestSshServer>[0] = {}, port = 0): Promise<TestSshServer> {
  const s = await new TestSshServer(opts).start(port);
  cleanups.push(() => s.close());
  return s;
}

function agent(a: TestAgent): TestAgent {
  cleanups.push(() => a.stop());
  return a;
}

async function listen(handler: (s: net.Socket) => void): Promise<{ port: number; server: net.Server }> {
  const srv = net.createServer(handler);
  srv.on('error', () => {});
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, server: srv };
}

describe('forwarding through an in-process ssh2 server', () => {
  test('channel piped both ways to the target, bytes and results counted', async () => {
    const target = await listen((s) => {
      s.on('error', () => {});
      s.once('data', (d) => s.end(Buffer.concat([Buffer.from('echo:'), d])));
    });
    const srv = await server();
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, forwards: `127.0.0.1:4000:127.0.0.1:${target.port}` }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    expect(a.sup.ready).toBe(true);
    expect(await a.metric('tunnel_agent_up')).toBe(1);
    expect(srv.forwards.map((f) => [f.bindAddr, f.bindPort])).toEqual([['127.0.0.1', 4000]]);

    const ch = await srv.openForwarded(4000);
    const got = readAll(ch);
    // Half-close as sshd does for `nc -N`: EOF only. (ssh2's ServerChannel.end() also sends CLOSE, after
    // which RFC 4254 allows no more data, so the reply would race the CLOSE; a real sshd never does that.)
    ch.write('ping');
    ch.eof();
    expect((await got).toString()).toBe('echo:ping');
    ch.end();
    const spec = `127.0.0.1:4000:127.0.0.1:${target.port}`;
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'accepted' })).toBe(1);
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'to_target' })).toBe(4);
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'from_target' })).toBe(9);
    await waitFor(() => a.sup.activeConnections === 0, 5000, 'connection to close');
    expect(await a.metric('tunnel_agent_active_connections', { forward: spec })).toBe(0);
  });

  // A slow side must stall the other one through the tunnel (SSH window / paused target), never make
  // the agent buffer what the fast side offers. 32 MiB is well above what the socket buffers, the
  // channel's buffers and the 2 MiB SSH window can hold between them.
  const TOTAL = 32 * 1024 * 1024;
  const CHUNK = Buffer.alloc(64 * 1024, 0x61);
  /** Writes TOTAL bytes honouring backpressure; `sent()` is what the stream has taken so far. */
  function writeAll(w: NodeJS.WritableStream): { sent: () => number } {
    let sent = 0;
    const more = (): void => {
      while (sent < TOTAL) {
        sent += CHUNK.length;
        const ok = w.write(CHUNK);
        if (sent >= TOTAL) {
          w.end();
          return;
        }
        if (!ok) {
          w.once('drain', more);
          return;
        }
      }
    };
    more();
    return { sent: () => sent };
  }
  async function stalled(sent: () => number): Promise<number> {
    let last = -1;
    for (let i = 0; i < 100 && sent() !== last; i++) {
      last = sent();
      await new Promise((r) => setTimeout(r, 300));
    }
    return sent();
  }

  test('backpressure: a target that does not read stalls the remote sender; nothing lost once it reads', async () => {
    let targetSock: net.Socket | undefined;
    let received = 0;
    const target = await listen((s) => {
      s.on('error', () => {});
      s.pause();
      targetSock = s;
    });
    const srv = await server();
    const spec = `127.0.0.1:4000:127.0.0.1:${target.port}`;
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, forwards: spec }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    const ch = await srv.openForwarded(4000);
    ch.on('error', () => {});
    const w = writeAll(ch);
    const atStall = await stalled(w.sent);
    expect(atStall).toBeLessThan(TOTAL);
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'to_target' })).toBeLessThan(TOTAL / 2);
    targetSock!.on('data', (c: Buffer) => (received += c.length));
    targetSock!.resume();
    await waitFor(() => received === TOTAL, 20_000, 'all bytes at the target');
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'to_target' })).toBe(TOTAL);
  });

  test('backpressure: a remote that does not read stalls the target; nothing lost once it reads', async () => {
    let w: { sent: () => number } | undefined;
    const target = await listen((s) => {
      s.on('error', () => {});
      w = writeAll(s);
    });
    const srv = await server();
    const spec = `127.0.0.1:4000:127.0.0.1:${target.port}`;
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, forwards: spec }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    const ch = await srv.openForwarded(4000);
    ch.on('error', () => {});
    ch.pause();
    await waitFor(() => w !== undefined, 5000, 'target connection');
    const atStall = await stalled(w!.sent);
    expect(atStall).toBeLessThan(TOTAL);
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'from_target' })).toBeLessThan(TOTAL / 2);
    const got = await new Promise<number>((resolve) => {
      let n = 0;
      ch.on('data', (c: Buffer) => (n += c.length));
      ch.on('end', () => resolve(n));
      ch.resume();
    });
    expect(got).toBe(TOTAL);
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'from_target' })).toBe(TOTAL);
  });

  test('a connection for a port the agent did not ask for (or has not bound) is rejected, never left pending', async () => {
    const srv = await server();
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    const conn = srv.forwards[0].conn;
    const err = await new Promise<Error | undefined>((resolve) => conn.forwardOut('127.0.0.1', 4999, '127.0.0.1', 40000, (e) => resolve(e)));
    expect(err?.message).toMatch(/reject|prohibit|fail/i);
    expect(a.sup.activeConnections).toBe(0);
    expect(a.sup.ready).toBe(true);
  });

  test('target refused: the channel is rejected and counted, the session stays up', async () => {
    const dead = await closedPort();
    const srv = await server();
    const spec = `127.0.0.1:4000:127.0.0.1:${dead}`;
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, forwards: spec }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    await expect(srv.openForwarded(4000)).rejects.toThrow();
    await expect(srv.openForwarded(4000)).rejects.toThrow();
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'target_refused' })).toBe(2);
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'accepted' })).toBe(0);
    expect(a.sup.state).toBe('forwarding');
    expect(srv.conns).toHaveLength(1);
  });

  test('per-forward concurrency cap rejects the excess, frees slots as connections end', async () => {
    const held: net.Socket[] = [];
    const target = await listen((s) => {
      s.on('error', () => {});
      held.push(s);
    });
    const srv = await server();
    const spec = `127.0.0.1:4000:127.0.0.1:${target.port}`;
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, forwards: spec, config: { forwardMaxConnections: 2 } }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    const c1 = await srv.openForwarded(4000);
    await srv.openForwarded(4000);
    await expect(srv.openForwarded(4000)).rejects.toThrow();
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'rejected_limit' })).toBe(1);
    expect(await a.metric('tunnel_agent_active_connections', { forward: spec })).toBe(2);
    // Like a relay client: read to EOF, then close our side.
    c1.on('end', () => c1.end());
    c1.resume();
    const closed = new Promise((r) => c1.on('close', r));
    held[0].destroy();
    await closed;
    await waitFor(() => a.sup.activeConnections === 1, 5000, 'one slot free');
    await srv.openForwarded(4000);
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'accepted' })).toBe(3);
  });

  test('a refused forward is retried on the same session until it binds; not ready meanwhile', async () => {
    const srv = await server({ forwardReply: (n) => (n < 3 ? 'reject' : 'accept') });
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint }));
    await a.sup.start();
    await a.waitState(is('binding'));
    expect(a.sup.ready).toBe(false);
    await a.waitState(is('forwarding'));
    expect(srv.conns).toHaveLength(1);
    expect(srv.forwardRequests).toBe(4);
    expect(await a.metric('tunnel_agent_forward_bind_failures_total', { forward: '127.0.0.1:4000:127.0.0.1:1' })).toBe(3);
    expect(await a.metric('tunnel_agent_forward_bound', { forward: '127.0.0.1:4000:127.0.0.1:1' })).toBe(1);
    // the first refusal is logged, the repeats within a minute are not
    expect(a.lines.filter((l) => /forward bind refused/.test(String(l.msg)))).toHaveLength(1);
  });

  test('a forward request that is never answered times out, drops the session and reconnects', async () => {
    const srv = await server({ forwardReply: (n) => (n === 0 ? 'ignore' : 'accept') });
    const clock = new FakeClock();
    const a = agent(
      makeAgent({
        sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
        config: { connectTimeoutMs: 300, reconnectMinMs: 50, reconnectMaxMs: 100 }, clock,
      }),
    );
    await a.sup.start();
    await a.waitState(is('binding'), 10_000, 0);
    await waitFor(() => srv.forwardRequests === 1, 5000, 'the forward request at the server');
    const from = a.states.length;
    clock.advance(299);
    expect(a.sup.state).toBe('binding');
    await clock.advanceAsync(1);
    const st = await a.waitState((s) => s.state === 'backoff' && s.reason === 'bind_timeout', 10_000, from);
    clock.advance(st.delayMs as number);
    await a.waitState(is('forwarding'));
    expect(srv.conns).toHaveLength(2);
    expect(await a.metric('tunnel_agent_disconnects_total', { reason: 'bind_timeout' })).toBe(1);
    expect(await a.metric('tunnel_agent_reconnects_total')).toBe(1);
  });

  test('wrong host key: refused before authentication, counted, logged with both fingerprints, long backoff', async () => {
    const srv = await server();
    const wrong = new TestSshServer().hostFingerprint;
    const a = agent(
      makeAgent({
        sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: wrong,
        config: { reconnectMinMs: 100, reconnectMaxMs: 5000 }, supervisor: { random: () => 0 },
      }),
    );
    await a.sup.start();
    const st = await a.waitState(is('backoff'));
    expect(st).toMatchObject({ result: 'host_key_mismatch', delayMs: 5000 });
    expect(srv.authAttempts).toBe(0);
    expect(srv.forwards).toHaveLength(0);
    expect(await a.metric('tunnel_agent_host_key_mismatches_total')).toBe(1);
    expect(await a.metric('tunnel_agent_connect_attempts_total', { result: 'host_key_mismatch' })).toBe(1);
    const line = a.lines.find((l) => /HOST KEY MISMATCH/.test(String(l.msg)));
    expect(line).toMatchObject({ got: srv.hostFingerprint, expected: [wrong] });
  });

  // ssh2's keepalive runs on ssh2's own (real) timers: the unit test checks that the agent hands it the
  // interval and count and reacts to its verdict; the detection time against a real sshd is pinned in
  // the integration tier (agent-recovery).
  test('a dead link (blackholed) is detected by keepalive within interval x (count+1), then recovered', async () => {
    const srv = await server();
    const proxy = await new BlackholeProxy(srv.port).start();
    cleanups.push(() => proxy.stop());
    const connectConfigs: ConnectConfig[] = [];
    const a = agent(
      makeAgent({
        sshPort: proxy.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
        config: { keepaliveIntervalMs: 200, keepaliveCountMax: 2, reconnectMinMs: 50 },
        supervisor: { createClient: () => spyClient(connectConfigs) },
      }),
    );
    await a.sup.start();
    await a.waitState(is('forwarding'));
    expect(connectConfigs[0]).toMatchObject({ keepaliveInterval: 200, keepaliveCountMax: 2 });
    const from = a.states.length;
    expect(proxy.blackholeExisting()).toBe(1);
    const t0 = Date.now();
    await a.waitState((s) => s.state === 'backoff', 5000, from);
    // not before the count of unanswered keepalives has run out
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(a.states[a.states.length - 1].reason).toBe('keepalive_timeout');
    expect(await a.metric('tunnel_agent_keepalive_timeouts_total')).toBe(1);
    await a.waitState(is('forwarding'), 5000, from);
    expect(proxy.connections).toBe(2);
    proxy.destroyDead();
  });

  test('SSH_INSECURE_ACCEPT_ANY_HOST_KEY: connects to any key and warns at every connect', async () => {
    const srv = await server();
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, config: { hostKey: { kind: 'insecure' }, reconnectMinMs: 50 } }));
    await a.sup.start();
    await a.waitState(is('forwarding'));
    srv.cutAll();
    await a.waitState(is('forwarding'), 5000, a.states.length);
    const warns = a.lines.filter((l) => /NOT verified/.test(String(l.msg)));
    expect(warns).toHaveLength(2);
    expect(warns[0]).toMatchObject({ got: srv.hostFingerprint, level: 40 });
  });

  test('20 reconnect cycles: no growth in active handles or in listeners on the supervisor', async () => {
    const srv = await server();
    const clock = new FakeClock();
    const a = agent(makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, config: { reconnectMinMs: 10, stableAfterMs: 0 }, clock }));
    await a.sup.start();
    const handles: number[] = [];
    for (let i = 0; i < 20; i++) {
      await a.waitState(is('forwarding'), 5000, a.states.length - 1);
      handles.push(process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length);
      // STABLE_AFTER_S=0 still means "one timer tick": let it pass, so every cut starts from a reset backoff.
      clock.advance(0);
      expect(a.sup.backoffFailures).toBe(0);
      srv.cutAll();
      const st = await a.waitState(is('backoff'), 5000, a.states.length - 1);
      clock.advance(st.delayMs as number);
    }
    await a.waitState(is('forwarding'), 5000, a.states.length - 1);
    expect(await a.metric('tunnel_agent_reconnects_total')).toBe(20);
    expect(Math.max(...handles.slice(5))).toBeLessThanOrEqual(Math.max(...handles.slice(0, 5)) + 2);
    expect(a.sup.listenerCount('state')).toBe(1);
  });

  test('stop() cancels the forwards on the server, closes the session and settles in the stopped state', async () => {
    const srv = await server();
    const clock = new FakeClock();
    const a = makeAgent({ sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint, clock });
    await a.sup.start();
    await a.waitState(is('forwarding'));
    // The clock does not move: with a server that answers the cancel and closes on our DISCONNECT,
    // stopping waits for no timer (the bounded waits for a deaf server are in session.test.ts).
    await a.sup.stop();
    expect(srv.cancels).toEqual([{ bindAddr: '127.0.0.1', bindPort: 4000 }]);
    expect(a.sup.state).toBe('stopped');
    expect(await a.metric('tunnel_agent_up')).toBe(0);
    await waitFor(() => srv.rawSockets.size === 0, 5000, 'server side closed');
    await a.sup.stop(); // idempotent
  });

});

describe('one fresh client and one own socket per attempt', () => {
  /**
   * A proxy in front of the ssh2 server that never closes the agent's side: it ignores the agent's
   * FIN and the server's close, like a peer (or middlebox) that has gone deaf. Only a socket the agent
   * destroys itself ever goes away here.
   */
  async function stickyProxy(upstreamPort: number): Promise<{ port: number; sides: net.Socket[] }> {
    const sides: net.Socket[] = [];
    const ups: net.Socket[] = [];
    const srv = net.createServer({ allowHalfOpen: true }, (client) => {
      sides.push(client);
      client.on('error', () => {});
      const up = net.connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
      ups.push(up);
      up.on('error', () => {});
      client.on('data', (d) => up.writable && up.write(d));
      up.on('data', (d) => client.writable && client.write(d));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      for (const x of [...sides, ...ups]) x.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    });
    return { port: (srv.address() as net.AddressInfo).port, sides };
  }

  test.each([
    ['host key mismatch', 'host_key_mismatch'],
    ['authentication failure', 'auth_failed'],
  ])('%s: the next attempt gets a new Client, and the old socket is destroyed by the agent even if the peer never closes', async (_name, result) => {
    const srv = await server({ authOk: () => result !== 'auth_failed' });
    const proxy = await stickyProxy(srv.port);
    const clock = new FakeClock();
    const clients: Client[] = [];
    const socks: net.Socket[] = [];
    const a = agent(
      makeAgent({
        sshPort: proxy.port, privateKey: srv.clientPrivateKey,
        hostKey: result === 'host_key_mismatch' ? new TestSshServer().hostFingerprint : srv.hostFingerprint,
        config: { reconnectMinMs: 10, reconnectMaxMs: 20, connectTimeoutMs: 2000 },
        clock,
        supervisor: {
          createClient: () => {
            const c = new Client();
            clients.push(c);
            return c;
          },
          connectSocket: async (req) => {
            const sock = await connectTcp(req);
            socks.push(sock);
            return sock;
          },
        },
      }),
    );
    await a.sup.start();
    for (let i = 0; i < 3; i++) {
      // ssh2 has given up on the session and waits for a close that never comes: only our grace ends it.
      await waitingOn(clock, Math.min(END_GRACE_MS, 2000), `the end grace of attempt ${i + 1}`);
      expect(socks[i].destroyed).toBe(false);
      const from = a.states.length;
      clock.advance(Math.min(END_GRACE_MS, 2000));
      const st = await a.waitState(is('backoff'), 10_000, from);
      expect(st.result).toBe(result);
      expect(socks[i].destroyed).toBe(true);
      clock.advance(st.delayMs as number);
    }
    expect(await a.metric('tunnel_agent_connect_attempts_total', { result })).toBe(3);
    await a.stop();
    expect(clients.length).toBeGreaterThanOrEqual(3);
    expect(new Set(clients).size).toBe(clients.length);
    expect(socks).toHaveLength(clients.length);
    expect(socks.every((x) => x.destroyed)).toBe(true);
    // ...and the far side saw each of them close: nothing left half-open on the server.
    await waitFor(() => proxy.sides.length === socks.length && proxy.sides.every((x) => x.destroyed || x.readableEnded), 5000, 'proxy sides to see the close');
    expect(a.sup.listenerCount('state')).toBe(1);
  });
});

describe('backoff decisions (injected clock)', () => {
  test('auth failures back off exponentially; a stable session resets it; an unstable one does not', async () => {
    let authOk = false;
    const srv = await server({ authOk: () => authOk });
    const clock = new FakeClock();
    const a = agent(
      makeAgent({
        sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
        config: { reconnectMinMs: 1000, reconnectMaxMs: 8000, stableAfterMs: 30_000 },
        clock, supervisor: { random: () => 1 },
      }),
    );
    await a.sup.start();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const st = await a.waitState(is('backoff'));
      expect(st.result).toBe('auth_failed');
      delays.push(st.delayMs as number);
      clock.advance(st.delayMs as number);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 8000]);
    expect(await a.metric('tunnel_agent_connect_attempts_total', { result: 'auth_failed' })).toBe(5);
    expect(a.lines.filter((l) => /authentication failed/.test(String(l.msg)))).toHaveLength(5);
    await a.sup.stop();

    // A fresh agent: two failures, then a session that dies before it is stable -> no reset.
    authOk = false;
    const b = agent(
      makeAgent({
        sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
        config: { reconnectMinMs: 1000, reconnectMaxMs: 60_000, stableAfterMs: 30_000 },
        clock, supervisor: { random: () => 1 },
      }),
    );
    await b.sup.start();
    for (const expected of [1000, 2000]) {
      const st = await b.waitState(is('backoff'));
      expect(st.delayMs).toBe(expected);
      if (expected === 2000) authOk = true;
      clock.advance(expected);
    }
    await b.waitState(is('forwarding'));
    clock.advance(10_000);
    srv.cutAll();
    let st = await b.waitState(is('backoff'));
    expect(st).toMatchObject({ reason: 'server_closed', delayMs: 4000 });
    clock.advance(4000);
    await b.waitState(is('forwarding'));
    // stable for STABLE_AFTER_S: the backoff starts over at RECONNECT_MIN_S
    clock.advance(30_000);
    expect(b.sup.backoffFailures).toBe(0);
    expect(b.sup.sessionUptimeSeconds()).toBe(30);
    srv.cutAll();
    st = await b.waitState(is('backoff'));
    expect(st.delayMs).toBe(1000);
  });

  test('full jitter: the wait is the random fraction of the ceiling (never a fixed schedule)', async () => {
    const srv = await server({ authOk: () => false });
    const clock = new FakeClock();
    const draws = [0.25, 0.5, 0, 0.75];
    const a = agent(
      makeAgent({
        sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
        config: { reconnectMinMs: 1000, reconnectMaxMs: 60_000 },
        clock, supervisor: { random: () => draws.shift() ?? 1 },
      }),
    );
    await a.sup.start();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const st = await a.waitState(is('backoff'));
      delays.push(st.delayMs as number);
      clock.advance(st.delayMs as number);
    }
    // ceilings 1000, 2000, 4000, 8000; the floor is 100 ms (min(100, RECONNECT_MIN_S)) so a zero draw
    // never turns into a tight loop.
    expect(delays).toEqual([100 + 0.25 * 900, 100 + 0.5 * 1900, 100, 100 + 0.75 * 7900]);
  });

  test('blackholed server (connects hang): a new probe starts every UNREACHABLE_PROBE_MS next to the hanging ones, so a returning route is used at once', async () => {
    const srv = await server();
    const clock = new FakeClock();
    let blackholed = true;
    let pending = 0;
    let maxPending = 0;
    // A route that drops SYNs: the connect neither succeeds nor fails until its timeout.
    const blackhole: SocketFactory = (req) => {
      if (!blackholed) return connectTcp(req);
      pending++;
      maxPending = Math.max(maxPending, pending);
      return new Promise((_resolve, reject) => {
        let done = false;
        const fail = (code: string) => {
          if (done) return;
          done = true;
          pending--;
          clock.clearTimeout(t);
          reject(Object.assign(new Error(code), { code }));
        };
        const t = clock.setTimeout(() => fail('ETIMEDOUT'), req.timeoutMs);
        req.signal.addEventListener('abort', () => fail('ABORT_ERR'), { once: true });
      });
    };
    const a = agent(
      makeAgent({
        sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
        config: { unreachableProbeMs: 100, connectTimeoutMs: 3000 }, clock,
        supervisor: { connectSocket: blackhole },
      }),
    );
    await a.sup.start();
    // One window: connects every 100 ms, all ending by the 2 s budget; counted once.
    const from = a.states.length;
    await clock.advanceAsync(1999);
    expect(a.sup.state).toBe('connecting');
    await clock.advanceAsync(1);
    const st = await a.waitState(is('unreachable'), 5000, from);
    expect(st.delayMs).toBe(100);
    expect(await a.metric('tunnel_agent_connect_attempts_total', { result: 'connect_timeout' })).toBe(1);
    expect(maxPending).toBeGreaterThanOrEqual(10);
    expect(pending).toBe(0);
    // The route comes back shortly after the next window began: without the overlapping probes the
    // agent would sit out that window's ~2 s connect timeout first.
    await clock.advanceAsync(100);
    expect(a.sup.state).toBe('connecting');
    expect(pending).toBe(1);
    await clock.advanceAsync(50);
    blackholed = false;
    await clock.advanceAsync(50);
    // No more fake time passes: the probe started 100 ms into the window gets through.
    await a.waitState(is('forwarding'), 5000);
    expect(pending).toBe(0); // the hanging probe was aborted
  });

  test('server unreachable: cheap probes at UNREACHABLE_PROBE_MS without growth, connects as soon as it answers', async () => {
    const port = await closedPort();
    const clock = new FakeClock();
    let probes = 0;
    const counting: SocketFactory = (req) => {
      probes++;
      return connectTcp(req);
    };
    // The key/host key come from the server started later on the same port.
    const srvLater = new TestSshServer();
    cleanups.push(() => srvLater.close());
    const a = agent(
      makeAgent({
        sshPort: port, privateKey: srvLater.clientPrivateKey, hostKey: srvLater.hostFingerprint,
        config: { unreachableProbeMs: 500, reconnectMinMs: 1000 },
        clock, supervisor: { random: () => 1, connectSocket: counting },
      }),
    );
    await a.sup.start();
    for (let i = 0; i < 6; i++) {
      const st = await a.waitState(is('unreachable'));
      expect(st.delayMs).toBe(500);
      clock.advance(500);
    }
    expect(a.sup.backoffFailures).toBe(0);
    expect(await a.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })).toBe(6);
    expect(a.lines.filter((l) => /unreachable/.test(String(l.msg)))).toHaveLength(1);
    await a.waitState(is('unreachable'));
    await srvLater.start(port);
    clock.advance(500);
    await a.waitState(is('forwarding'));
    expect(probes).toBe(8);
  });
});
