/**
 * Half-close through a REAL OpenSSH sshd: a client on the server side sends a request and shuts down
 * its write side (like `nc -N`), sshd turns that into CHANNEL_EOF, and the agent must pass the EOF on
 * to the target and still deliver the target's whole reply. The target answers only after it has seen
 * the end of the request, so a forward that tears the connection down on the remote's EOF (or on the
 * channel closing before the target has answered) loses the reply.
 */
import net from 'node:net';
import { describeWith, killAllChildren } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, killAll, sshdAvailable, startSshd } from '../../../test-support/sshd';
import { RunningAgent, agentEnv, startAgent } from '../../../test-support/tunnel/agent-process';

jest.setTimeout(90_000);

interface Target {
  port: number;
  /** What each connection received before its EOF. */
  requests: Buffer[];
  close(): Promise<void>;
}

/**
 * A target that reads the request to its end (the remote's half-close), then replies
 * `reply(request)` after `delayMs`, and closes.
 */
async function replyAfterEof(reply: (req: Buffer) => Buffer, delayMs: number): Promise<Target> {
  const requests: Buffer[] = [];
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      const req = Buffer.concat(chunks);
      requests.push(req);
      setTimeout(() => s.end(reply(req)), delayMs);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    requests,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

/** Connects, writes `request`, half-closes (shutdown write, like `nc -N`), reads to the end. */
function requestHalfClose(port: number, request: Buffer, timeoutMs = 15_000): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), error: 'timeout' });
    }, timeoutMs);
    s.on('connect', () => s.end(request));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      clearTimeout(timer);
      s.end();
      resolve({ data: Buffer.concat(chunks) });
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), error: err.message });
    });
  });
}

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-agent through a real sshd: remote half-close', () => {
  let sshd: Sshd;
  let agent: RunningAgent | undefined;
  let target: Target | undefined;

  beforeAll(async () => {
    sshd = await startSshd({ clientAliveIntervalS: 1, clientAliveCountMax: 2 });
  });
  afterEach(async () => {
    await agent?.child.kill('SIGKILL');
    agent = undefined;
    await target?.close();
    target = undefined;
  });
  afterAll(async () => {
    await killAllChildren();
    await killAll();
  });

  async function up(t: Target): Promise<RunningAgent> {
    target = t;
    agent = await startAgent(agentEnv(sshd, t.port), sshd.permitListenPorts[0]);
    await agent.waitReady();
    return agent;
  }

  test('request, shutdown write, the whole reply still arrives (at once and after a pause)', async () => {
    const a = await up(await replyAfterEof((req) => Buffer.concat([Buffer.from('echo:'), req]), 0));
    const spec = `127.0.0.1:${sshd.permitListenPorts[0]}:127.0.0.1:${target!.port}`;
    for (let i = 0; i < 5; i++) {
      const r = await requestHalfClose(a.tunnelPort, Buffer.from(`ping${i}`));
      expect(r.error).toBeUndefined();
      expect(r.data.toString()).toBe(`echo:ping${i}`);
    }
    expect(target!.requests.map(String)).toEqual(['ping0', 'ping1', 'ping2', 'ping3', 'ping4']);
    expect(await a.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'accepted' })).toBe(5);
    expect(await a.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'from_target' })).toBe(5 * 'echo:pingN'.length);
  });

  test('a target that answers 500 ms after the EOF is still heard', async () => {
    const a = await up(await replyAfterEof((req) => Buffer.concat([Buffer.from('late:'), req]), 500));
    const r = await requestHalfClose(a.tunnelPort, Buffer.from('ping'));
    expect(r.error).toBeUndefined();
    expect(r.data.toString()).toBe('late:ping');
  });

  test('a 4 MiB reply after the half-close arrives complete (flow control on a half-closed channel)', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const a = await up(await replyAfterEof(() => big, 0));
    const r = await requestHalfClose(a.tunnelPort, Buffer.from('GET'));
    expect(r.error).toBeUndefined();
    expect(r.data.length).toBe(big.length);
    expect(r.data.equals(big)).toBe(true);
  });
});
