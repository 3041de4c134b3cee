/**
 * The real tunnel-agent with a camera list (CAMERAS_FILE) through a REAL OpenSSH sshd (the project's
 * sshd_config): one forward per camera on ONE session, each camera's frames on its own tunnel port,
 * the camera label on its series; SIGHUP re-reads the list on the live session; a port sshd does not
 * permit (tunnel-server not updated yet) is retried without disturbing the others.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkJpeg } from '@camrelay/common';
import { closedPort, describeWith, isListening, killAllChildren, rawFetch, waitFor } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, killAll, sshdAvailable, startSshd } from '../../../test-support/sshd';
import { FakeCamera } from '../../../fake-camera/src/camera';
import { RunningAgent, agentEnv, startAgent } from '../../../test-support/tunnel/agent-process';

jest.setTimeout(90_000);

/** A camera's ring tells its frames apart: each camera has its own image size. */
async function camera(width: number): Promise<FakeCamera> {
  const c = new FakeCamera({ host: '127.0.0.1', port: 0, captureMs: 0, width, height: 96, ringSize: 2 });
  await c.start();
  return c;
}

/** Width of a JPEG (SOF0/SOF2 segment). */
function widthOf(jpeg: Buffer): number {
  for (let i = 2; i + 8 < jpeg.length;) {
    const marker = jpeg[i + 1];
    const len = jpeg.readUInt16BE(i + 2);
    if (marker === 0xc0 || marker === 0xc2) return jpeg.readUInt16BE(i + 7);
    i += 2 + len;
  }
  return -1;
}

async function frameWidth(port: number): Promise<number> {
  const r = await rawFetch(port);
  const c = checkJpeg(r.data);
  if (r.error || !c.ok) throw new Error(`no whole frame on ${port}: ${r.error ?? (c.ok ? '' : c.reason)}`);
  return widthOf(r.data);
}

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-agent with CAMERAS_FILE through a real sshd', () => {
  let sshd: Sshd;
  let cams: FakeCamera[];
  let agent: RunningAgent | undefined;
  let dir: string;
  let ports: number[];
  let unpermitted: number;

  beforeAll(async () => {
    ports = [await closedPort(), await closedPort(), await closedPort()];
    unpermitted = await closedPort();
    sshd = await startSshd({ permitListenPorts: ports, clientAliveIntervalS: 1, clientAliveCountMax: 2 });
    cams = await Promise.all([camera(160), camera(176), camera(192)]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-cameras-'));
  });
  afterEach(async () => {
    await agent?.child.kill('SIGKILL');
    agent = undefined;
  });
  afterAll(async () => {
    await Promise.all(cams.map((c) => c.stop()));
    await killAllChildren();
    await killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const entry = (name: string, cam: FakeCamera, tunnelPort: number, rawPort: number) =>
    `  ${name}:\n    lan: 127.0.0.1:${cam.port}\n    tunnel_port: ${tunnelPort}\n    raw_port: ${rawPort}\n`;

  test('one session, one forward per camera, each camera on its own tunnel port, labelled; SIGHUP adds, removes and refuses', async () => {
    const file = path.join(dir, 'cameras.yml');
    fs.writeFileSync(file, `cameras:\n${entry('front', cams[0], ports[0], 8080)}${entry('garden', cams[1], ports[1], 8082)}  printer:\n    mode: push\n    ingest_port: 1236\n    raw_port: 8083\n`);
    const env = agentEnv(sshd, 1, { CAMERAS_FILE: file });
    delete (env as Record<string, string | undefined>).TUNNEL_FORWARDS; // the list alone
    agent = await startAgent(env, ports[0]);
    await agent.waitReady();
    expect(await frameWidth(ports[0])).toBe(160);
    expect(await frameWidth(ports[1])).toBe(176);
    expect(await agent.metric('tunnel_agent_forward_bound', { camera: 'front' })).toBe(1);
    expect(await agent.metric('tunnel_agent_forwarded_connections_total', { camera: 'garden', result: 'accepted' })).toBe(1);
    const m = await agent.metrics();
    expect([...m.keys()].filter((k) => k.startsWith('tunnel_agent_forward_bound{')).length).toBe(2); // the push camera has no forward

    // garden removed, porch added: on the same session
    fs.writeFileSync(file, `cameras:\n${entry('front', cams[0], ports[0], 8080)}${entry('porch', cams[2], ports[2], 8084)}`);
    agent.child.proc.kill('SIGHUP');
    await agent.child.waitForLog((l) => l.msg === 'camera list reloaded', 10_000);
    await waitFor(async () => (await agent!.metric('tunnel_agent_forward_bound', { camera: 'porch' })) === 1, 10_000, 'porch bound');
    expect(await frameWidth(ports[2])).toBe(192);
    await waitFor(async () => !(await isListening(ports[1])), 10_000, 'garden\'s tunnel port released by sshd');
    expect(await frameWidth(ports[0])).toBe(160);
    expect(Number.isNaN(await agent.metric('tunnel_agent_forward_bound', { camera: 'garden' }))).toBe(true);
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'success' })).toBe(1);
    expect(await agent.metric('tunnel_agent_config_reloads_total', { result: 'ok' })).toBe(1);

    // an invalid list: refused, counted, the running forwards kept
    fs.writeFileSync(file, 'cameras:\n  porch:\n    lan: 127.0.0.1:1\n    raw_port: 80808\n');
    agent.child.proc.kill('SIGHUP');
    const refused = await agent.child.waitForLog((l) => l.msg === 'reload: invalid camera list, running forwards kept', 10_000);
    expect(String(refused.err)).toMatch(/cameras\.porch\.raw_port: 80808 is not a port \(1-65535\)/);
    expect(await agent.metric('tunnel_agent_config_reloads_total', { result: 'error' })).toBe(1);
    expect(await frameWidth(ports[2])).toBe(192);
    expect(await agent.ready()).toBe(true);
  });

  test('a camera whose tunnel port sshd does not permit: retried, agent not ready, the others forward', async () => {
    const file = path.join(dir, 'cameras-unpermitted.yml');
    fs.writeFileSync(file, `cameras:\n${entry('front', cams[0], ports[0], 8080)}${entry('shed', cams[1], unpermitted, 8085)}`);
    const env = agentEnv(sshd, 1, { CAMERAS_FILE: file });
    delete (env as Record<string, string | undefined>).TUNNEL_FORWARDS;
    agent = await startAgent(env, ports[0]);
    await waitFor(async () => (await agent!.metric('tunnel_agent_forward_bind_failures_total', { camera: 'shed' })) >= 2, 15_000, 'shed refused and retried');
    expect(await frameWidth(ports[0])).toBe(160);
    expect(await agent.ready()).toBe(false);
    expect(await agent.metric('tunnel_agent_up')).toBe(0);
    expect(await isListening(unpermitted)).toBe(false);
  });
});
