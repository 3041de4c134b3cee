/**
 * What the real tunnel-agent does when a REAL OpenSSH sshd says no: a host key that does not match
 * the pin (never forwards, stays alive, counted, long backoff) and a client key that is not
 * authorized (exponential backoff, so a broken key does not hammer the server).
 */
import fs from 'node:fs';
import { ed25519KeyPair } from '../../../test-support/ssh-keys';
import { describeWith, isListening, killAllChildren, waitFor } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, killAll, makeKeyPair, sshdAvailable, startSshd } from '../../../test-support/sshd';
import { fingerprintSha256 } from '../../src/host-key';
import { RunningAgent, agentEnv, startAgent } from '../../../test-support/tunnel/agent-process';

jest.setTimeout(90_000);

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-agent through a real sshd: refusals', () => {
  let sshd: Sshd;
  let agent: RunningAgent | undefined;

  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterEach(async () => {
    await agent?.child.kill('SIGKILL');
    agent = undefined;
  });
  afterAll(async () => {
    await killAllChildren();
    await killAll();
  });

  test('wrong host key: no forward ever, process alive, mismatch counted and logged with both fingerprints', async () => {
    const other = ed25519KeyPair().public;
    const pinned = fingerprintSha256(Buffer.from(other.split(' ')[1], 'base64'));
    agent = await startAgent(
      agentEnv(sshd, 9, { SSH_KNOWN_HOSTS_FILE: '', SSH_HOST_KEY: pinned, RECONNECT_MIN_S: '0.1', RECONNECT_MAX_S: '1' }),
      sshd.permitListenPorts[0],
    );
    await waitFor(async () => (await agent!.metric('tunnel_agent_host_key_mismatches_total')) >= 2, 10_000, 'two mismatches');
    // through one more refused attempt (at least RECONNECT_MAX_S later) the port is never opened
    const checks: boolean[] = [];
    await waitFor(async () => {
      checks.push(await isListening(sshd.permitListenPorts[0]));
      return (await agent!.metric('tunnel_agent_host_key_mismatches_total')) >= 3;
    }, 10_000, 'a third mismatch');
    expect(checks.length).toBeGreaterThan(1);
    expect(checks.every((x) => !x)).toBe(true);
    expect(agent.child.proc.exitCode).toBeNull();
    expect(await agent.ready()).toBe(false);
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'host_key_mismatch' })).toBeGreaterThanOrEqual(2);
    expect(await agent.metric('tunnel_agent_connect_attempts_total', { result: 'success' })).toBe(0);
    const line = agent.child.logs().find((l) => /HOST KEY MISMATCH/.test(String(l.msg)));
    expect(line).toMatchObject({ got: sshd.hostFingerprint, expected: [pinned], level: 50 });
    // Long backoff: host-key failures wait at least RECONNECT_MAX_S between attempts.
    const waits = agent.child.logs().filter((l) => l.msg === 'backing off before reconnecting').map((l) => Number(l.delayMs));
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(1000);
    // The agent never authenticated, so sshd never accepted a key.
    expect(sshd.logs()).not.toMatch(/Accepted publickey/);
  });

  test('unauthorized client key: authentication fails, the backoff ceiling doubles each time, never ready', async () => {
    const stranger = makeKeyPair(sshd.dir, `stranger-${Date.now()}`);
    agent = await startAgent(
      agentEnv(sshd, 9, { SSH_PRIVATE_KEY_FILE: stranger.privateKeyFile, RECONNECT_MIN_S: '0.1', RECONNECT_MAX_S: '5' }),
      sshd.permitListenPorts[0],
    );
    await waitFor(async () => (await agent!.metric('tunnel_agent_connect_attempts_total', { result: 'auth_failed' })) >= 4, 20_000, 'four auth failures');
    const ceilings = agent.child
      .logs()
      .filter((l) => l.msg === 'backing off before reconnecting')
      .map((l) => Number(l.maxDelayMs));
    expect(ceilings.slice(0, 4)).toEqual([100, 200, 400, 800]);
    expect(agent.child.logs().filter((l) => /authentication failed/.test(String(l.msg))).length).toBeGreaterThanOrEqual(4);
    expect(agent.child.proc.exitCode).toBeNull();
    expect(await agent.ready()).toBe(false);
    expect(await isListening(sshd.permitListenPorts[0])).toBe(false);
    // key material never logged
    const keyBody = fs.readFileSync(stranger.privateKeyFile, 'utf8').split('\n')[1];
    expect(agent.child.stdout()).not.toContain(keyBody);
  });
});
