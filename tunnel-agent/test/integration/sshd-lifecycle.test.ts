/**
 * The tunnel-server's life cycle with the real sshd: the host key (hence the agent's pin) survives a
 * restart, a crash frees the forwarded ports, and `make keys` output is what the server accepts.
 * Also checks the test fixture (test-support/sshd.ts) that the tunnel-agent tests rely on.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client } from 'ssh2';
import { ROOT, describeWith, isListening, killAllChildren, rawFetch, waitFor, waitForPort } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, freePort, killAll, openssh, spawnOpenssh, sshdAvailable, startSshd } from '../../../test-support/sshd';

jest.setTimeout(60_000);

const listening = (port: number) => isListening(port);

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
    expect(sshd.sessionPids().length).toBeGreaterThan(0);
    await sshd.kill();
    expect(sshd.pid()).toBeUndefined();
    expect(sshd.sessionPids()).toEqual([]);
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

  test('the image healthcheck (tunnel-server/healthcheck.sh) is healthy while sshd listens, unhealthy after', async () => {
    const sshd = await startSshd();
    const check = () =>
      spawnSync('bash', [path.join(ROOT, 'tunnel-server', 'healthcheck.sh')], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, SSHD_PORT: String(sshd.port), TUNNEL_SERVER_RUN_DIR: path.join(sshd.dir, 'run') },
      });
    const ok = check();
    expect(ok.stdout).toBe('');
    expect(ok.status).toBe(0);
    // it never connects: no new connection shows up in sshd's log
    expect(sshd.logs()).not.toMatch(/Connection (closed|reset) by 127\.0\.0\.1/);
    await sshd.stop();
    const down = check();
    expect(down.status).toBe(1);
    expect(down.stdout).toMatch(/no pid file|is not running|nothing listens/);
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

  test('a frozen server-side session holds its port until it is killed (the fixture shape for "port still held")', async () => {
    const sshd = await startSshd();
    const port = sshd.permitListenPorts[0];
    const spec = `127.0.0.1:${port}:127.0.0.1:${targetPort}`;
    spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
    await waitForPort(port, '127.0.0.1', 15_000);
    const before = sshd.sessionPids();
    expect(before.length).toBeGreaterThan(0);
    for (const p of before) process.kill(p, 'SIGSTOP');
    const second = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
    expect(second.code).toBe(255);
    expect(second.stderr).toContain(`remote port forwarding failed for listen port ${port}`);
    for (const p of before) process.kill(p, 'SIGKILL');
    await waitFor(async () => !(await listening(port)), 10_000, 'port freed');
    spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
    await waitForPort(port, '127.0.0.1', 15_000);
    expect((await rawFetch(port)).data.toString()).toBe('frame');
  });

  test('ClientAlive reaps a session whose client went silent, freeing its port for the next one', async () => {
    // 1 s x 2: a client that stops answering is dropped within ~3 s (production: 10 s x 3)
    const sshd = await startSshd({ clientAliveIntervalS: 1, clientAliveCountMax: 2 });
    const port = sshd.permitListenPorts[0];
    const spec = `127.0.0.1:${port}:127.0.0.1:${targetPort}`;
    const first = spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
    await waitForPort(port, '127.0.0.1', 15_000);
    // A frozen client: its kernel still ACKs TCP, but nothing answers at the SSH level — the shape
    // of a home router that lost its state. The port stays held until sshd gives up on it.
    process.kill(first.proc.pid as number, 'SIGSTOP');
    try {
      const second = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
      expect(second.stderr).toContain(`remote port forwarding failed for listen port ${port}`);
      const t0 = Date.now();
      await sshd.waitForLog(/Timeout, client not responding/, 15_000);
      await waitFor(async () => !(await listening(port)), 5_000, 'port freed');
      expect(Date.now() - t0).toBeLessThan(10_000);
      spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec]);
      await waitForPort(port, '127.0.0.1', 15_000);
      expect((await rawFetch(port)).data.toString()).toBe('frame');
    } finally {
      process.kill(first.proc.pid as number, 'SIGCONT');
    }
  });

  test("ssh2 (the tunnel-agent's library) negotiates with this config and gets -R on allowed ports only", async () => {
    const sshd = await startSshd();
    const allowed = sshd.permitListenPorts[0];
    const other = await freePort();
    const client = new Client();
    const negotiated: string[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        client.on('ready', () => resolve());
        client.on('error', reject);
        client.on('handshake', (n) => negotiated.push(n.kex, n.serverHostKey, n.cs.cipher));
        client.connect({
          host: '127.0.0.1',
          port: sshd.port,
          username: sshd.user,
          privateKey: fs.readFileSync(sshd.clientKeyFile),
          hostVerifier: (key: Buffer) => key.equals(Buffer.from(sshd.hostPublicKey.split(' ')[1], 'base64')),
          readyTimeout: 15_000,
        });
      });
      expect(negotiated[0]).toMatch(/^curve25519-sha256/);
      expect(negotiated[1]).toBe('ssh-ed25519');
      const forwardIn = (port: number) =>
        new Promise<Error | undefined>((resolve) => client.forwardIn('127.0.0.1', port, (err) => resolve(err ?? undefined)));
      expect(await forwardIn(allowed)).toBeUndefined();
      expect(await forwardIn(other)).toBeInstanceOf(Error);
      expect(await listening(other)).toBe(false);
      // a session channel (exec) is refused outright
      const execErr = await new Promise<Error | undefined>((resolve) => client.exec('id', (err) => resolve(err ?? undefined)));
      expect(execErr).toBeInstanceOf(Error);
      // and the allowed forward carries traffic
      client.on('tcp connection', (_info, accept) => {
        const ch = accept();
        const up = net.connect(targetPort, '127.0.0.1');
        up.on('error', () => ch.close());
        ch.on('error', () => up.destroy());
        up.pipe(ch).pipe(up);
      });
      expect((await rawFetch(allowed)).data.toString()).toBe('frame');
    } finally {
      client.end();
    }
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
