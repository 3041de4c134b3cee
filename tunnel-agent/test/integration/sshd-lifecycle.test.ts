/**
 * The tunnel-server's life cycle with the real sshd: the host key (hence the agent's pin) survives a
 * restart, a crash frees the forwarded ports, and `make keys` output is what the server accepts.
 * Also checks the test fixture (test-support/sshd.ts) that the tunnel-agent tests rely on.
 */
import fs from 'node:fs';
import net from 'node:net';
import { describeWith, killAllChildren, rawFetch, waitFor, waitForPort } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, freePort, killAll, openssh, spawnOpenssh, sshdAvailable, startSshd } from '../../../test-support/sshd';

jest.setTimeout(60_000);

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-server life cycle (real sshd)', () => {
  let target: net.Server;
  let targetPort: number;

  beforeAll(async () => {
    target = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end('frame');
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    targetPort = (target.address() as net.AddressInfo).port;
  });

  afterEach(async () => {
    await killAllChildren();
    await killAll();
  });

  afterAll(async () => {
    await new Promise<void>((r) => target.close(() => r()));
  });

  async function forward(sshd: Sshd, spec: string): Promise<void> {
    spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
    await waitForPort(sshd.permitListenPorts[0], '127.0.0.1', 15_000);
    const r = await rawFetch(sshd.permitListenPorts[0]);
    expect(r.data.toString()).toBe('frame');
  }

  test('a generated host key is kept across restarts (same port, same pin); the old session ends', async () => {
    const sshd = await startSshd({ hostKey: 'generated' });
    const fp = sshd.hostFingerprint;
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(sshd.logs()).toContain(`host key fingerprint: ${fp}`);
    expect(sshd.logs()).toContain('generated a new host key');
    const port = sshd.permitListenPorts[0];
    await forward(sshd, `127.0.0.1:${port}:127.0.0.1:${targetPort}`);

    const firstPid = sshd.pid();
    await sshd.restart();
    expect(sshd.pid()).not.toBe(firstPid);
    // stop() ends the sessions with the listener (as stopping the container does), freeing the port
    await waitFor(async () => !(await listening(port)), 10_000, 'port freed by the restart');
    expect(sshd.logs().split('host key fingerprint: ').length - 1).toBe(2);
    expect(sshd.logs().split('generated a new host key').length - 1).toBe(1);
    // the known_hosts file written at the first start still verifies the server (StrictHostKeyChecking=yes)
    await forward(sshd, `127.0.0.1:${port}:127.0.0.1:${targetPort}`);
  });

  test('kill() is a crash: every session dies with the listener and the forwarded port is freed', async () => {
    const sshd = await startSshd();
    const port = sshd.permitListenPorts[0];
    const client = spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${port}:127.0.0.1:${targetPort}`]);
    await waitForPort(port, '127.0.0.1', 15_000);
    await sshd.kill();
    expect(sshd.pid()).toBeUndefined();
    const exit = await client.exited;
    expect(exit.code).toBe(255);
    expect(await listening(port)).toBe(false);
    expect(await listening(sshd.port)).toBe(false);
    await sshd.kill(); // idempotent
    await sshd.stop();
    await sshd.restart();
    expect(await listening(sshd.port)).toBe(true);
  });

  test('the mounted host key from `make keys` is the one served, and the plain `-R port:host:port` form (bind "localhost") is allowed', async () => {
    const sshd = await startSshd();
    expect(sshd.logs()).toContain('using the mounted host key');
    const pub = fs.readFileSync(`${sshd.dir}/secrets/tunnel_host_key.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    expect(sshd.hostPublicKey.startsWith(pub)).toBe(true);
    expect(sshd.logs()).toContain(`SSH_HOST_KEY=${sshd.hostFingerprint}`);
    // make keys' authorized_keys line carries `restrict,port-forwarding`; -R must still work
    expect(fs.readFileSync(`${sshd.dir}/secrets/tunnel_authorized_keys`, 'utf8')).toMatch(/^restrict,port-forwarding ssh-ed25519 /);
    await forward(sshd, `${sshd.permitListenPorts[0]}:127.0.0.1:${targetPort}`);
  });

  test('a host key that does not match the pin is refused by the client', async () => {
    const a = await startSshd();
    const b = await startSshd();
    // b's known_hosts file pinned to a's key
    fs.writeFileSync(b.knownHostsFile, `[127.0.0.1]:${b.port} ${a.hostPublicKey.split(' ').slice(0, 2).join(' ')}\n`);
    const r = await openssh(b, ['-N', '-R', `127.0.0.1:${b.permitListenPorts[0]}:127.0.0.1:${targetPort}`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect(await listening(b.permitListenPorts[0])).toBe(false);
  });

  test('several -R ports in one session, each limited to the list', async () => {
    const ports = [await freePort(), await freePort()];
    const sshd = await startSshd({ permitListenPorts: ports });
    spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', ...ports.flatMap((p) => ['-R', `127.0.0.1:${p}:127.0.0.1:${targetPort}`])]);
    for (const p of ports) {
      await waitForPort(p, '127.0.0.1', 15_000);
      expect((await rawFetch(p)).data.toString()).toBe('frame');
    }
  });
});
