/**
 * Recovery of the real tunnel-agent against a REAL OpenSSH sshd: sshd crash and restart, a dead
 * link caught by keepalive while the old session still holds the port, server down at start, and
 * many reconnect cycles without leaking file descriptors.
 */
import { checkJpeg } from '@camrelay/common';
import { describeWith, killAllChildren, rawFetch, waitFor } from '../../../test-support';
import { SSHD_COMPONENT, killAll, sshdAvailable, startSshd } from '../../../test-support/sshd';
import { FakeCamera } from '../../../fake-camera/src/camera';
import { BlackholeProxy } from '../../../test-support/tunnel/blackhole-proxy';
import { RunningAgent, agentEnv, startAgent } from '../../../test-support/tunnel/agent-process';

jest.setTimeout(120_000);

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-agent through a real sshd: recovery', () => {
  let camera: FakeCamera;
  let agent: RunningAgent | undefined;
  let proxy: BlackholeProxy | undefined;

  beforeAll(async () => {
    camera = new FakeCamera({ host: '127.0.0.1', port: 0, captureMs: 0 });
    await camera.start();
  });
  afterEach(async () => {
    await agent?.child.kill('SIGKILL');
    agent = undefined;
    await proxy?.stop();
    proxy = undefined;
    await killAll();
  });
  afterAll(async () => {
    await camera.stop();
    await killAllChildren();
  });

  async function frameFlows(a: RunningAgent): Promise<void> {
    const r = await rawFetch(a.tunnelPort);
    expect(r.error).toBeUndefined();
    expect(checkJpeg(r.data).ok).toBe(true);
  }

  test('sshd killed (SIGKILL) and restarted: the tunnel is back within ~1 s of sshd listening', async () => {
    const sshd = await startSshd();
    agent = await startAgent(agentEnv(sshd, camera.port), sshd.permitListenPorts[0]);
    await agent.waitReady();
    await frameFlows(agent);
    await sshd.kill();
    await waitFor(async () => !(await agent!.ready()), 5000, 'agent to notice');
    await agent.child.waitForLog((l) => l.msg === 'SSH server unreachable; probing until it answers', 5000);
    // several probes refused while sshd is down, and the agent still alive
    await waitFor(async () => (await agent!.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })) >= 3, 10_000, 'three refused probes');
    expect(agent.child.proc.exitCode).toBeNull();
    await sshd.restart();
    const t0 = Date.now();
    await agent.waitReady(10_000);
    expect(Date.now() - t0).toBeLessThan(1500);
    await frameFlows(agent);
    expect(await agent.metric('tunnel_agent_reconnects_total')).toBe(1);
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })).toBeGreaterThanOrEqual(3);
    const ended = (await agent.metric('tunnel_agent_disconnects_total', { reason: 'server_closed' })) + (await agent.metric('tunnel_agent_disconnects_total', { reason: 'socket_error' }));
    expect(ended).toBe(1);
  });

  test('a long outage (sshd gone 12 s, far past the first backoff steps): still back within ~1 s of sshd listening', async () => {
    const sshd = await startSshd();
    // Production reconnect timings: were refused connects treated like failures that reach the server,
    // the wait after 12 s of them would be a random draw up to 16 s, not one probe interval.
    const env = agentEnv(sshd, camera.port, { RECONNECT_MIN_S: '1', RECONNECT_MAX_S: '60', UNREACHABLE_PROBE_MS: '500', LOG_LEVEL: 'info' });
    agent = await startAgent(env, sshd.permitListenPorts[0]);
    await agent.waitReady();
    await sshd.kill();
    await agent.child.waitForLog((l) => l.msg === 'SSH server unreachable; probing until it answers', 10_000);
    const logsAtOutage = agent.child.logs().length;
    // about 12 s of outage: 24 refused probes, one every 0.5 s
    await waitFor(async () => (await agent!.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })) >= 24, 30_000, '24 refused probes');
    expect(agent.child.proc.exitCode).toBeNull();
    expect(await agent.ready()).toBe(false);
    expect(await agent.metric('tunnel_agent_backoff_seconds')).toBeLessThanOrEqual(0.5);
    // 12 s at one probe per 0.5 s (plus connect time): many cheap probes, no backoff growth, one log line.
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })).toBeGreaterThanOrEqual(12);
    expect(agent.child.logs().slice(logsAtOutage).filter((l) => /backing off|unreachable/.test(String(l.msg)))).toHaveLength(0);
    await sshd.restart();
    const t0 = Date.now();
    await agent.waitReady(20_000);
    expect(Date.now() - t0).toBeLessThan(2000);
    await frameFlows(agent);
    expect(await agent.metric('tunnel_agent_reconnects_total')).toBe(1);
  });

  test('dead link: keepalive detects it within interval x (count+1); the old session holds the port, bind retried until sshd reaps it', async () => {
    // sshd reaps a silent client after 1 s x 2; the agent declares the link dead after 0.5 s x 3.
    const sshd = await startSshd({ clientAliveIntervalS: 1, clientAliveCountMax: 2 });
    proxy = await new BlackholeProxy(sshd.port).start();
    agent = await startAgent(
      agentEnv(sshd, camera.port, { SSH_PORT: String(proxy.port), SSH_KNOWN_HOSTS_FILE: '', SSH_HOST_KEY: sshd.hostFingerprint }),
      sshd.permitListenPorts[0],
    );
    await agent.waitReady();
    await frameFlows(agent);
    const logsBefore = agent.child.logs().length;
    expect(proxy.blackholeExisting()).toBe(1);
    const t0 = Date.now();
    const line = await agent.child.waitForLog((l) => l.msg === 'disconnected' && l.reason === 'keepalive_timeout', 10_000);
    const detectedMs = Date.now() - t0;
    expect(line.reason).toBe('keepalive_timeout');
    expect(detectedMs).toBeLessThanOrEqual(500 * 3 + 1000);
    // Reconnected through the proxy while sshd still holds the port for the dead session.
    await agent.child.waitForLog((l) => /forward bind refused/.test(String(l.msg)), 10_000);
    expect(await agent.ready()).toBe(false);
    await agent.waitReady(15_000);
    await frameFlows(agent);
    const spec = `127.0.0.1:${sshd.permitListenPorts[0]}:127.0.0.1:${camera.port}`;
    expect(await agent.metric('tunnel_agent_forward_bind_failures_total', { forward: spec })).toBeGreaterThanOrEqual(1);
    expect(await agent.metric('tunnel_agent_keepalive_timeouts_total')).toBe(1);
    expect(await agent.metric('tunnel_agent_disconnects_total', { reason: 'keepalive_timeout' })).toBe(1);
    expect(await agent.metric('tunnel_agent_reconnects_total')).toBe(1);
    // state changes are logged, not every retry
    const bindLines = agent.child.logs().slice(logsBefore).filter((l) => /forward (bind refused|still not bound)/.test(String(l.msg)));
    expect(bindLines.length).toBeLessThanOrEqual(2);
    proxy.destroyDead();
  });

  test('server down at start: keeps probing, never exits, comes up within ~1 s of the server starting', async () => {
    const sshd = await startSshd();
    await sshd.stop();
    agent = await startAgent(agentEnv(sshd, camera.port), sshd.permitListenPorts[0]);
    await agent.child.waitForLog((l) => l.msg === 'SSH server unreachable; probing until it answers', 5000);
    await waitFor(async () => (await agent!.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })) >= 5, 10_000, 'five refused probes');
    expect(agent.child.proc.exitCode).toBeNull();
    expect(await agent.ready()).toBe(false);
    expect(await agent.metric('tunnel_agent_up')).toBe(0);
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'unreachable' })).toBeGreaterThanOrEqual(5);
    // one log line for the whole outage, not one per probe
    expect(agent.child.logs().filter((l) => /unreachable/.test(String(l.msg)))).toHaveLength(1);
    await sshd.restart();
    const t0 = Date.now();
    await agent.waitReady(10_000);
    expect(Date.now() - t0).toBeLessThan(1500);
    await frameFlows(agent);
  });

  test('20 reconnect cycles leave no growing file descriptors or listener warnings', async () => {
    const sshd = await startSshd();
    proxy = await new BlackholeProxy(sshd.port).start();
    agent = await startAgent(
      agentEnv(sshd, camera.port, {
        SSH_PORT: String(proxy.port), SSH_KNOWN_HOSTS_FILE: '', SSH_HOST_KEY: sshd.hostFingerprint, STABLE_AFTER_S: '0', LOG_LEVEL: 'info',
      }),
      sshd.permitListenPorts[0],
    );
    const fds: number[] = [];
    for (let i = 0; i < 20; i++) {
      await agent.waitReady(15_000);
      await frameFlows(agent);
      fds.push(agent.openFds());
      expect(proxy.cutAll()).toBe(1);
      await waitFor(async () => !(await agent!.ready()), 5000, `cycle ${i} to drop`);
    }
    await agent.waitReady(15_000);
    expect(await agent.metric('tunnel_agent_reconnects_total')).toBe(20);
    // settle on the first few cycles, then no growth
    expect(Math.max(...fds.slice(5))).toBeLessThanOrEqual(Math.max(...fds.slice(0, 5)) + 2);
    expect(agent.child.stderr()).not.toMatch(/MaxListenersExceeded|leak/i);
  });
});
