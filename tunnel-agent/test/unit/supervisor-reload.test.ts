/**
 * A re-read camera list applied to a live session (SIGHUP): forwards added, removed and changed
 * without dropping the session; unchanged forwards and their connections untouched; series follow.
 */
import net from 'node:net';
import { waitFor } from '../../../test-support';
import { is, makeAgent, TestAgent } from '../../../test-support/tunnel/agent';
import { readAll, TestSshServer } from '../../../test-support/tunnel/ssh2-server';
import { Client } from 'ssh2';
import { ForwardSpec, parseForwards } from '../../src/config';

jest.setTimeout(30_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A target that answers every connection with its own name, and holds it open until told. */
async function target(name: string): Promise<{ port: number; open: Set<net.Socket> }> {
  const open = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.write(name);
    s.on('data', () => s.end());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of open) s.destroy();
    srv.close(() => r());
  }));
  return { port: (srv.address() as net.AddressInfo).port, open };
}

const cam = (camera: string, bindPort: number, port: number): ForwardSpec => ({ ...parseForwards(`127.0.0.1:${bindPort}:127.0.0.1:${port}`)[0], camera });

async function firstBytes(srv: TestSshServer, bindPort: number): Promise<string> {
  const ch = await srv.openForwarded(bindPort);
  const got = readAll(ch);
  ch.write('x');
  ch.eof();
  const s = (await got).toString();
  ch.end();
  return s;
}

describe('updateForwards on a live session', () => {
  let srv: TestSshServer;
  let a: TestAgent;
  let front: { port: number; open: Set<net.Socket> };
  let garden: { port: number; open: Set<net.Socket> };
  let printer: { port: number; open: Set<net.Socket> };
  /** the server's answer to the n-th tcpip-forward request */
  let reply: (n: number) => 'accept' | 'reject';

  beforeEach(async () => {
    [front, garden, printer] = await Promise.all([target('front'), target('garden'), target('printer')]);
    reply = () => 'accept';
    srv = await new TestSshServer({ forwardReply: (n) => reply(n) }).start();
    cleanups.push(() => srv.close());
    a = makeAgent({
      sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
      config: { forwards: [cam('front', 4000, front.port), cam('garden', 4002, garden.port)] },
    });
    cleanups.push(() => a.stop());
    await a.sup.start();
    await a.waitState(is('forwarding'));
  });

  test('added camera bound, removed one cancelled, unchanged one untouched with its connection open', async () => {
    // a viewer's connection through the front forward stays open across the reload; one through the
    // garden forward is closed by it, and its closing late must not bring garden's series back
    const held = await srv.openForwarded(4000);
    await waitFor(() => front.open.size === 1, 5000, 'front connection');
    const heldGarden = await srv.openForwarded(4002);
    heldGarden.on('error', () => {});
    await waitFor(() => garden.open.size === 1, 5000, 'garden connection');
    const requestsBefore = srv.forwards.length;
    expect(requestsBefore).toBe(2);
    expect(await a.metric('tunnel_agent_forward_bound', { camera: 'garden' })).toBe(1);

    const changes = a.sup.updateForwards([cam('front', 4000, front.port), cam('printer', 4003, printer.port)]);
    expect(changes.added).toEqual([`127.0.0.1:4003:127.0.0.1:${printer.port}`]);
    expect(changes.removed).toEqual([`127.0.0.1:4002:127.0.0.1:${garden.port}`]);
    expect(changes.unchanged).toEqual([`127.0.0.1:4000:127.0.0.1:${front.port}`]);
    await a.waitState(is('forwarding'));
    await waitFor(() => srv.forwards.map((f) => f.bindPort).sort().join() === '4000,4003', 5000, 'server forwards 4000 and 4003');
    expect(srv.cancels.map((c) => c.bindPort)).toEqual([4002]);

    // the same session (no reconnect), the front connection still open, the new camera reachable
    expect(a.states.filter((s) => s.state === 'connecting')).toHaveLength(1);
    expect(front.open.size).toBe(1);
    expect(held.destroyed).toBe(false);
    expect(await firstBytes(srv, 4003)).toBe('printer');
    expect(await firstBytes(srv, 4000)).toBe('front');
    await expect(srv.openForwarded(4002)).rejects.toThrow(/no bound forward/);

    // series: the printer's exist and count, the garden's are gone (also after its connection closed)
    await waitFor(() => garden.open.size === 0, 5000, 'garden connection closed by the reload');
    await new Promise((r) => setTimeout(r, 100));
    expect(await a.metric('tunnel_agent_forward_bound', { camera: 'printer' })).toBe(1);
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { camera: 'printer', result: 'accepted' })).toBe(1);
    const text = await a.metrics.registry.metrics();
    expect(text).not.toMatch(/camera="garden"/);
    expect(text).toMatch(/tunnel_agent_forward_bound\{forward="127\.0\.0\.1:4000:[^"]+",camera="front"\} 1/);
    expect(a.sup.forwardStatus()).toEqual({ [`127.0.0.1:4000:127.0.0.1:${front.port}`]: true, [`127.0.0.1:4003:127.0.0.1:${printer.port}`]: true });
    held.end();
  });

  test('a camera whose LAN address changed is re-bound on the same port to the new target', async () => {
    a.sup.updateForwards([cam('front', 4000, front.port), cam('garden', 4002, printer.port)]);
    await waitFor(async () => (await firstBytes(srv, 4002).catch(() => '')) === 'printer', 5000, 'garden port now reaching the new target');
    expect(srv.cancels.map((c) => c.bindPort)).toEqual([4002]);
    expect(a.sup.ready).toBe(true);
  });

  test('a forward the server refuses: binding (not ready) and retried; the others keep forwarding', async () => {
    // sshd refuses a port that is not in PermitListen (tunnel-server not updated yet)
    const refused: number[] = [];
    reply = (n) => {
      if (n < 2) return 'accept';
      refused.push(n);
      return 'reject';
    };
    const from = a.states.length;
    a.sup.updateForwards([cam('front', 4000, front.port), cam('garden', 4002, garden.port), cam('new', 4009, printer.port)]);
    await a.waitState(is('binding'), 5000, from);
    expect(a.sup.ready).toBe(false);
    expect(await a.metric('tunnel_agent_up')).toBe(0);
    await waitFor(() => refused.length >= 3, 5000, 'bind retried');
    // the server counts a refusal when it sends it; the agent counts it when the reply arrives
    await waitFor(async () => (await a.metric('tunnel_agent_forward_bind_failures_total', { camera: 'new' })) >= 3, 5000, 'refusals counted');
    expect(await firstBytes(srv, 4000)).toBe('front'); // the others still forward
    reply = () => 'accept'; // the server now permits it
    await a.waitState(is('forwarding'), 5000, from);
    expect(await firstBytes(srv, 4009)).toBe('printer');
  });

  test('a camera removed and added again while its port is refused: one request chain, not two', async () => {
    const asked: number[] = [];
    let refuse = true;
    reply = (n) => {
      if (n < 2) return 'accept';
      asked.push(n);
      return refuse ? 'reject' : 'accept';
    };
    const both = [cam('front', 4000, front.port), cam('garden', 4002, garden.port)];
    a.sup.updateForwards([...both, cam('new', 4009, printer.port)]);
    await waitFor(() => asked.length >= 2, 5000, 'refused and retried');
    a.sup.updateForwards(both);
    a.sup.updateForwards([...both, cam('new', 4009, printer.port)]);
    a.sup.updateForwards(both);
    a.sup.updateForwards([...both, cam('new', 4009, printer.port)]);
    refuse = false;
    await waitFor(async () => (await a.metric('tunnel_agent_forward_bound', { camera: 'new' })) === 1, 5000, 'new bound');
    expect(a.sup.ready).toBe(true);
    expect(await firstBytes(srv, 4009)).toBe('printer');
    // once bound, nothing asks for the port again (a second chain would be refused and retry forever)
    const n = asked.length;
    await new Promise((r) => setTimeout(r, 500)); // 10 retry intervals
    expect(asked.length).toBe(n);
    expect(srv.forwards.filter((f) => f.bindPort === 4009)).toHaveLength(1);
  });
});

describe('a reload during the SSH handshake', () => {
  test('the session binds the new set once it is ready, not the old one', async () => {
    const [front, garden, printer] = await Promise.all([target('front'), target('garden'), target('printer')]);
    const srv = await new TestSshServer({}).start();
    cleanups.push(() => srv.close());
    const next = [cam('front', 4000, front.port), cam('printer', 4003, printer.port)];
    let reloaded = false;
    const holder: { a?: TestAgent } = {};
    const a = makeAgent({
      sshPort: srv.port, privateKey: srv.clientPrivateKey, hostKey: srv.hostFingerprint,
      config: { forwards: [cam('front', 4000, front.port), cam('garden', 4002, garden.port)] },
      supervisor: {
        // the reload lands while the session exists but the handshake has not finished
        createClient: () => {
          const c = new Client();
          setImmediate(() => {
            if (reloaded) return;
            reloaded = true;
            expect(holder.a?.sup.state).toBe('connecting');
            holder.a?.sup.updateForwards(next);
          });
          return c;
        },
      },
    });
    holder.a = a;
    cleanups.push(() => a.stop());
    await a.sup.start();
    await a.waitState(is('forwarding'));
    expect(reloaded).toBe(true);
    expect(srv.forwards.map((f) => f.bindPort).sort()).toEqual([4000, 4003]);
    expect(await firstBytes(srv, 4003)).toBe('printer');
    expect((await a.metrics.registry.metrics())).not.toMatch(/camera="garden"/);
  });
});
