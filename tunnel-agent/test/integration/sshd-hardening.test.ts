/**
 * The tunnel-only account, tried with the real OpenSSH client against a real sshd running the
 * project's tunnel-server/sshd_config through tunnel-server/entrypoint.sh (test-support/sshd.ts).
 * It may do exactly one thing: `ssh -N -R <allowed port>:...`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describeWith, isListening, killAllChildren, rawFetch, waitFor, waitForPort } from '../../../test-support';
import {
  ENTRYPOINT,
  SSHD_BIN,
  SSHD_COMPONENT,
  Sshd,
  TUNNEL_TEST_USER,
  freePort,
  killAll,
  makeKeyPair,
  openssh,
  renderSshdConfig,
  spawnOpenssh,
  sshdAvailable,
  startSshd,
} from '../../../test-support/sshd';

jest.setTimeout(60_000);

const PAYLOAD = Buffer.from('camrelay-through-the-tunnel\n');

/** A one-shot TCP server like the camera: writes PAYLOAD and closes. */
async function oneShotServer(): Promise<{ port: number; close: () => Promise<void>; connections: () => number }> {
  let n = 0;
  const srv = net.createServer((s) => {
    n++;
    s.on('error', () => undefined);
    s.end(PAYLOAD);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    connections: () => n,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

const listening = (port: number) => isListening(port);

/** `sshd -T` (effective configuration) as the tunnel user, the way the entrypoint runs sshd. */
function effectiveConfig(configFile: string): Map<string, string> {
  const out = execFileSync(
    'setpriv',
    ['--reuid', TUNNEL_TEST_USER, '--regid', TUNNEL_TEST_USER, '--init-groups', SSHD_BIN, '-T', '-f', configFile],
    { encoding: 'utf8' },
  );
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

describeWith(SSHD_COMPONENT, sshdAvailable(), 'tunnel-server hardening (real sshd, project sshd_config)', () => {
  let sshd: Sshd;
  let target: Awaited<ReturnType<typeof oneShotServer>>;
  let allowedPort: number;

  beforeAll(async () => {
    allowedPort = await freePort();
    target = await oneShotServer();
    sshd = await startSshd({ permitListenPorts: [allowedPort] });
  });

  afterAll(async () => {
    await killAllChildren();
    await killAll();
    await target?.close();
  });

  test('the rendered config passes `sshd -t` and has the hardening in effect (`sshd -T`)', () => {
    const t = spawnSync('setpriv', ['--reuid', TUNNEL_TEST_USER, '--regid', TUNNEL_TEST_USER, '--init-groups', SSHD_BIN, '-t', '-f', sshd.configFile], { encoding: 'utf8' });
    expect(t.stderr).toBe('');
    expect(t.status).toBe(0);

    const c = effectiveConfig(sshd.configFile);
    expect(Object.fromEntries(
      [
        'port', 'listenaddress', 'allowusers', 'permitrootlogin', 'pubkeyauthentication', 'authenticationmethods',
        'passwordauthentication', 'kbdinteractiveauthentication', 'hostbasedauthentication', 'allowtcpforwarding',
        'permitlisten', 'permitopen', 'gatewayports', 'allowagentforwarding', 'allowstreamlocalforwarding',
        'x11forwarding', 'permittunnel', 'permittty', 'forcecommand', 'maxsessions', 'clientaliveinterval',
        'clientalivecountmax', 'strictmodes', 'hostkeyalgorithms', 'permituserenvironment',
      ].map((k) => [k, c.get(k)]),
    )).toEqual({
      port: String(sshd.port),
      listenaddress: `127.0.0.1:${sshd.port}`,
      allowusers: TUNNEL_TEST_USER,
      permitrootlogin: 'no',
      pubkeyauthentication: 'yes',
      authenticationmethods: 'publickey',
      passwordauthentication: 'no',
      kbdinteractiveauthentication: 'no',
      hostbasedauthentication: 'no',
      allowtcpforwarding: 'remote',
      permitlisten: `*:${allowedPort}`,
      permitopen: 'none',
      gatewayports: 'clientspecified',
      allowagentforwarding: 'no',
      allowstreamlocalforwarding: 'no',
      x11forwarding: 'no',
      permittunnel: 'no',
      permittty: 'no',
      forcecommand: '/bin/false',
      maxsessions: '0',
      clientaliveinterval: '10',
      clientalivecountmax: '3',
      strictmodes: 'yes',
      hostkeyalgorithms: 'ssh-ed25519',
      permituserenvironment: 'no',
    });
    // Every algorithm offered is one ssh2 (the tunnel-agent) implements.
    expect(c.get('kexalgorithms')?.split(',')).toContain('curve25519-sha256');
    for (const k of c.get('ciphers')?.split(',') ?? []) expect(k).toMatch(/^(chacha20-poly1305@openssh\.com|aes(128|256)-gcm@openssh\.com|aes(128|192|256)-ctr)$/);
  });

  test('sshd runs as the unprivileged tunnel user, not root', () => {
    const pid = sshd.pid();
    expect(pid).toBeDefined();
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    expect(uid).toBe(Number(execFileSync('id', ['-u', TUNNEL_TEST_USER], { encoding: 'utf8' }).trim()));
    expect(/^CapEff:\s+(\w+)/m.exec(status)?.[1]).toMatch(/^0+$/);
  });

  test('ssh -N -R onto the allowed port works: the port is bound on the server and forwards', async () => {
    expect(await listening(allowedPort)).toBe(false);
    const start = target.connections();
    const ssh = spawnOpenssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${allowedPort}:127.0.0.1:${target.port}`]);
    await waitForPort(allowedPort, '127.0.0.1', 15_000);
    // the readiness probe is forwarded too: let it reach the target before counting
    await waitFor(() => target.connections() === start + 1, 10_000, 'probe to reach the target');
    const before = target.connections();
    const r = await rawFetch(allowedPort);
    expect(r.error).toBeUndefined();
    expect(r.data.equals(PAYLOAD)).toBe(true);
    expect(target.connections()).toBe(before + 1);
    await ssh.kill();
    // the session's port is released when the session ends
    await waitFor(async () => !(await listening(allowedPort)), 10_000, 'forwarded port to be released');
  });

  test('cannot run a command', async () => {
    const r = await openssh(sshd, [], ['echo', 'camrelay-marker-$((6*7))']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('camrelay-marker');
    expect(r.stdout).not.toContain('42');
  });

  test('cannot open a shell (with or without a tty)', async () => {
    for (const tty of [['-tt'], ['-T']]) {
      const r = await openssh(sshd, tty, []);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
    }
  });

  test('cannot use the sftp subsystem', async () => {
    const r = await openssh(sshd, ['-s'], ['sftp']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
  });

  test('cannot -L forward (PermitOpen none, AllowTcpForwarding remote)', async () => {
    const localPort = await freePort();
    const before = target.connections();
    const ssh = spawnOpenssh(sshd, ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${target.port}`]);
    // the client binds the local port itself; the server must refuse each channel
    await waitForPort(localPort, '127.0.0.1', 15_000);
    const r = await rawFetch(localPort, '127.0.0.1', 5_000);
    expect(r.data.length).toBe(0);
    expect(target.connections()).toBe(before);
    await sshd.waitForLog(/refused local port forward/);
    await ssh.kill();
  });

  test('cannot -R bind any other port', async () => {
    const other = await freePort();
    const r = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${other}:127.0.0.1:${target.port}`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain(`remote port forwarding failed for listen port ${other}`);
    expect(await listening(other)).toBe(false);
    await sshd.waitForLog(new RegExp(`remote forward to host 127\\.0\\.0\\.1 port ${other}, but the request was denied`));
  });

  test('cannot -R forward a unix socket (AllowStreamLocalForwarding no)', async () => {
    const sock = path.join(sshd.dir, 'run', 'forwarded.sock');
    const r = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${sock}:127.0.0.1:${target.port}`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/remote port forwarding failed/);
    expect(fs.existsSync(sock)).toBe(false);
  });

  test('agent and X11 forwarding requests get nothing (no session can be opened at all)', async () => {
    const r = await openssh(sshd, ['-A', '-X', '-o', 'ForwardX11Trusted=no'], ['echo', 'camrelay-marker']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('camrelay-marker');
  });

  test('password and keyboard-interactive auth are not offered', async () => {
    const r = await openssh(sshd, ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive'], ['true']);
    expect(r.code).toBe(255);
    // the server's list of methods that can continue is publickey alone
    expect(r.stderr).toContain('Permission denied (publickey)');
  });

  test('an unauthorized key is refused', async () => {
    const stranger = makeKeyPair(sshd.dir, 'stranger');
    const r = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${allowedPort}:127.0.0.1:${target.port}`], [], { keyFile: stranger.privateKeyFile });
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('Permission denied (publickey)');
  });

  test('root and any other account are refused, even with the authorized key', async () => {
    // AuthorizedKeysFile is one file for every account, so only AllowUsers / PermitRootLogin and
    // sshd running as the tunnel user stand between this key and root.
    for (const user of ['root', 'nobody']) {
      const r = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${allowedPort}:127.0.0.1:${target.port}`], [], { user });
      expect(r.code).toBe(255);
      expect(r.stderr).toContain('Permission denied');
    }
    await sshd.waitForLog(/User root not allowed/);
  });
});

describe('tunnel-server entrypoint validation', () => {
  const base = {
    SSHD_HOST_KEY_FILE: '/var/lib/tunnel-server/hostkeys/ssh_host_ed25519_key',
    SSHD_AUTHORIZED_KEYS_FILE: '/etc/tunnel-server/authorized_keys',
    SSHD_PID_FILE: '/run/tunnel-server/sshd.pid',
  };

  test('renders the defaults: port 2222, -R allowed on 1234 and 9101 only', () => {
    const conf = renderSshdConfig(base);
    expect(conf).toMatch(/^Port 2222$/m);
    expect(conf).toMatch(/^PermitListen 1234 9101$/m);
    expect(conf).toMatch(/^AllowUsers tunnel$/m);
    expect(conf).not.toMatch(/@[A-Z_]+@/);
  });

  test.each([
    ['TUNNEL_PERMIT_LISTEN_PORTS', '1234,abc'],
    ['TUNNEL_PERMIT_LISTEN_PORTS', '70000'],
    ['SSHD_PORT', '0'],
    ['TUNNEL_USER', 'root'],
    ['SSHD_CLIENT_ALIVE_INTERVAL', '0'],
    ['SSHD_LOG_LEVEL', 'LOUD'],
    ['SSHD_LISTEN_ADDRESS', '0.0.0.0\nPermitOpen any'],
  ])('%s=%j exits 2 naming the variable and the bad value', (name, value) => {
    const r = spawnSync('bash', [ENTRYPOINT, 'render'], { encoding: 'utf8', env: { PATH: process.env.PATH, ...base, [name]: value } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`config error: ${name}=`);
    expect(r.stderr).toContain('allowed:');
    expect(r.stdout).toBe('');
  });
});
