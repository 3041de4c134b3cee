/**
 * The real tunnel-agent through a REAL OpenSSH sshd (the project's sshd_config via
 * test-support/sshd.ts) to the fake camera: byte-identical frames, no Nagle stalls, refused camera,
 * SIGTERM.
 */
import net from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { describeWith, isListening, killAllChildren, rawFetch, waitFor } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, killAll, sshdAvailable, startSshd } from '../../../test-support/sshd';
import { FakeCamera } from '../../../fake-camera/src/camera';
import { frameSeqOf } from '../../../fake-camera/src/frames';
import { RunningAgent, agentEnv, startAgent } from '../../../test-support/tunnel/agent-process';

jest.setTimeout(90_000);

/** A pass-through on the agent's side of the tunnel that records what the camera sent on each connection. */
async function recordingTap(targetPort: number): Promise<{ port: number; sent: Buffer[]; close: () => Promise<void> }> {
  const sent: Buffer[] = [];
  const srv = net.createServer((client) => {
    const chunks: Buffer[] = [];
    const idx = sent.push(Buffer.alloc(0)) - 1;
    const up = net.connect({ port: targetPort, host: '127.0.0.1', noDelay: true });
    client.setNoDelay(true);
    up.on('data', (d) => chunks.push(d));
    up.on('end', () => (sent[idx] = Buffer.concat(chunks)));
    up.pipe(client);
    client.pipe(up);
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, sent, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-agent through a real sshd: forwarding', () => {
  let sshd: Sshd;
  let camera: FakeCamera;
  let agent: RunningAgent | undefined;

  beforeAll(async () => {
    sshd = await startSshd({ clientAliveIntervalS: 1, clientAliveCountMax: 2 });
    camera = new FakeCamera({ host: '127.0.0.1', port: 0, captureMs: 0 });
    await camera.start();
  });
  afterEach(async () => {
    await agent?.child.kill('SIGKILL');
    agent = undefined;
  });
  afterAll(async () => {
    await camera.stop();
    await killAllChildren();
    await killAll();
  });

  test('frames fetched through the tunnel are byte-identical to what the camera sent; metrics count them', async () => {
    const tap = await recordingTap(camera.port);
    try {
      agent = await startAgent(agentEnv(sshd, tap.port), sshd.permitListenPorts[0]);
      await agent.waitReady();
      expect(await agent.metric('tunnel_agent_up')).toBe(1);
      const seqs: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await rawFetch(agent.tunnelPort);
        expect(r.error).toBeUndefined();
        expect(checkJpeg(r.data).ok).toBe(true);
        await waitFor(() => tap.sent[i]?.length > 0, 2000, 'tap to record the frame');
        expect(r.data.equals(tap.sent[i])).toBe(true);
        seqs.push(frameSeqOf(r.data) as number);
      }
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
      const spec = `127.0.0.1:${sshd.permitListenPorts[0]}:127.0.0.1:${tap.port}`;
      expect(await agent.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'accepted' })).toBe(10);
      const bytes = tap.sent.reduce((n, b) => n + b.length, 0);
      expect(await agent.metric('tunnel_agent_bytes_total', { forward: spec, direction: 'from_target' })).toBe(bytes);
      expect(await agent.metric('tunnel_agent_forward_bound', { forward: spec })).toBe(1);
      expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'success' })).toBe(1);
      expect(await agent.metric('tunnel_agent_session_uptime_seconds')).toBeGreaterThan(0);
    } finally {
      await tap.close();
    }
  });

  test('one frame at a time is not Nagle-bound: median well under 40 ms', async () => {
    agent = await startAgent(agentEnv(sshd, camera.port), sshd.permitListenPorts[0]);
    await agent.waitReady();
    await rawFetch(agent.tunnelPort); // warm-up
    const ms: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = process.hrtime.bigint();
      const r = await rawFetch(agent.tunnelPort);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      expect(checkJpeg(r.data).ok).toBe(true);
    }
    ms.sort((a, b) => a - b);
    const median = ms[15];
    // A Nagle-bound forward takes >= 40 ms per frame (delayed ACK); ours takes a few ms.
    expect(median).toBeLessThan(20);
  });

  test('camera refused while the tunnel is up: the channel is rejected, the tunnel stays up, frames resume', async () => {
    agent = await startAgent(agentEnv(sshd, camera.port), sshd.permitListenPorts[0]);
    await agent.waitReady();
    const spec = `127.0.0.1:${sshd.permitListenPorts[0]}:127.0.0.1:${camera.port}`;
    await camera.setMode('refused');
    try {
      const r = await rawFetch(agent.tunnelPort);
      expect(r.data.length).toBe(0);
      expect(r.ms).toBeLessThan(2000);
      await waitFor(async () => (await agent!.metric('tunnel_agent_forwarded_connections_total', { forward: spec, result: 'target_refused' })) === 1, 5000, 'refusal counted');
      expect(await agent.ready()).toBe(true);
      expect(await agent.metric('tunnel_agent_up')).toBe(1);
    } finally {
      await camera.setMode('ok');
    }
    const r = await rawFetch(agent.tunnelPort);
    expect(checkJpeg(r.data).ok).toBe(true);
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'success' })).toBe(1);
  });

  test.each([
    ['none (sshd: loopback)', ''],
    ['localhost', 'localhost:'],
    ['0.0.0.0', '0.0.0.0:'],
    ['* (all)', '*:'],
  ])('bind address %s: sshd binds and the forwarded connections reach the camera', async (_name, prefix) => {
    const port = sshd.permitListenPorts[0];
    agent = await startAgent(agentEnv(sshd, camera.port, { TUNNEL_FORWARDS: `${prefix}${port}:127.0.0.1:${camera.port}` }), port);
    await agent.waitReady();
    const r = await rawFetch(port);
    expect(checkJpeg(r.data).ok).toBe(true);
    await agent.child.kill('SIGTERM');
    await waitFor(async () => !(await isListening(port)), 5000, 'port released');
  });

  test('SIGTERM cancels the forward and exits 0 promptly', async () => {
    agent = await startAgent(agentEnv(sshd, camera.port), sshd.permitListenPorts[0]);
    await agent.waitReady();
    expect(await isListening(agent.tunnelPort)).toBe(true);
    const t0 = Date.now();
    const r = await agent.child.kill('SIGTERM');
    expect(r).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(3000);
    await waitFor(async () => !(await isListening(sshd.permitListenPorts[0])), 5000, 'forwarded port released');
  });
});
