/**
 * A REAL OpenSSH sshd (Debian `/usr/sbin/sshd`) on loopback, configured by the project's own
 * tunnel-server/sshd_config and started by the project's own tunnel-server/entrypoint.sh — the same
 * script the container runs, so the tests exercise the rendered config, the key handling and the
 * drop to the unprivileged tunnel user exactly as deployed. Only the paths, the port and the allowed
 * -R ports differ (all via the entrypoint's environment variables).
 *
 * Keys come from the project's scripts/keys.sh (`make keys`) run into the fixture's directory.
 *
 * Needs root (CI runs as root): the tunnel-only account `camrelay-tun` is created with useradd if
 * missing (no password, shell /usr/sbin/nologin), and the entrypoint copies the keys into place with
 * the ownership StrictModes requires. Gate tests with
 *     describeWith(SSHD_COMPONENT, sshdAvailable(), 'name', () => { ... })
 *
 * API
 *   startSshd(opts?) -> Promise<Sshd>
 *     opts.permitListenPorts  ports the tunnel user may bind with -R (default: one free port, see
 *                             sshd.permitListenPorts)
 *     opts.clientAliveIntervalS / opts.clientAliveCountMax   default 10 / 3 (as in production)
 *     opts.extraAuthorizedKeys  more public key lines for authorized_keys
 *     opts.hostKey            'mounted' (default; the host key `make keys` made) or 'generated'
 *                             (the entrypoint generates one into its state dir on first start)
 *     opts.logLevel           sshd LogLevel (default VERBOSE)
 *     opts.env                more entrypoint env (e.g. to test its validation)
 *   Sshd:
 *     host '127.0.0.1', port, user, permitListenPorts
 *     clientKeyFile / clientPublicKey     authorized ed25519 client key (private key file mode 600);
 *                     authorized_keys holds it as `restrict,port-forwarding <key>` like `make keys` writes
 *     hostPublicKey   'ssh-ed25519 AAAA... comment' (one line)
 *     hostFingerprint 'SHA256:...' exactly as `ssh-keygen -lf` prints it
 *     knownHostsFile  file with the line '[127.0.0.1]:<port> ssh-ed25519 AAAA...'
 *     configFile      the rendered sshd_config
 *     dir             the fixture's private directory
 *     pid()           pid of the listening sshd (undefined while stopped)
 *     sessionPids()   pids of the per-connection sshd processes (SIGSTOP one to make a session that
 *                     holds its forwarded port but answers nothing; SIGKILL it to free the port)
 *     stop()          SIGTERM the listener and every session process; waits; idempotent
 *     kill()          SIGKILL the listener and every session process (a crash: clients see the TCP
 *                     connection closed by the kernel); idempotent
 *     restart()       stop() (if running) then start again: same port, same host key
 *     logs()          everything the entrypoint and sshd wrote (across restarts)
 *     waitForLog(re, timeoutMs?)  resolves with the first log line matching re
 *   killAll()         SIGKILL every fixture's processes and remove their directories (afterAll)
 *   makeKeyPair(dir, name, type?) -> {privateKeyFile, publicKey}   a fresh, unauthorized key
 *   sshArgs(sshd, opts?, command?)  the argv for the OpenSSH client against this sshd:
 *       ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile=<knownHostsFile> ... -i <key> -p <port>
 *           [opts...] <user>@127.0.0.1 [command...]
 *   openssh(sshd, opts?, command?, {timeoutMs, user, keyFile}) -> Promise<{code, signal, stdout, stderr}>
 *       runs the OpenSSH client to completion (killed after timeoutMs, default 15 s)
 *   spawnOpenssh(sshd, opts?, command?, {user, keyFile}) -> Child  long-running client (e.g. -N -R);
 *       killed by killAllChildren() / killAll()
 *   renderSshdConfig(env) -> string   `entrypoint.sh render` with the given env
 */
import { execFile, execFileSync, spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Child, ROOT, descendants, freePorts, spawnChild, waitFor, findExecutable } from './index';

export const SSHD_BIN = '/usr/sbin/sshd';
export const SSH_BIN = '/usr/bin/ssh';
export const SSH_KEYGEN_BIN = '/usr/bin/ssh-keygen';
export const ENTRYPOINT = path.join(ROOT, 'tunnel-server', 'entrypoint.sh');
export const KEYS_SCRIPT = path.join(ROOT, 'scripts', 'keys.sh');
export const TUNNEL_TEST_USER = 'camrelay-tun';
/** Component name for describeWith. */
export const SSHD_COMPONENT = 'openssh-server + openssh-client (and root, to run sshd as the tunnel user)';
/** Not under /tmp: StrictModes rejects authorized_keys below a world-writable directory. */
const BASE_DIR = '/var/lib/camrelay-test-sshd';

/** True when sshd, ssh, ssh-keygen and setpriv exist and we are root. */
export function sshdAvailable(): boolean {
  return (
    process.getuid?.() === 0 &&
    findExecutable([SSHD_BIN]) !== undefined &&
    findExecutable([SSH_BIN]) !== undefined &&
    findExecutable([SSH_KEYGEN_BIN]) !== undefined &&
    findExecutable(['/usr/bin/setpriv', '/bin/setpriv']) !== undefined
  );
}

export interface SshdOptions {
  permitListenPorts?: number[];
  clientAliveIntervalS?: number;
  clientAliveCountMax?: number;
  extraAuthorizedKeys?: string[];
  /** 'mounted' (default): the host key from `make keys`, as HOST_KEY_SOURCE; 'generated': none
   * mounted, so the entrypoint generates one in the state dir on first start. */
  hostKey?: 'mounted' | 'generated';
  logLevel?: string;
  env?: Record<string, string>;
}

export interface Sshd {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly permitListenPorts: number[];
  readonly clientKeyFile: string;
  readonly clientPublicKey: string;
  readonly hostPublicKey: string;
  readonly hostFingerprint: string;
  readonly knownHostsFile: string;
  readonly configFile: string;
  readonly dir: string;
  pid(): number | undefined;
  sessionPids(): number[];
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  logs(): string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

interface Instance {
  dir: string;
  terminate(signal: NodeJS.Signals): Promise<void>;
}
const instances = new Set<Instance>();
const clients = new Set<Child>();

/** A free TCP port on 127.0.0.1 (see freePorts). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Creates the tunnel-only account if missing; tolerates a parallel worker doing the same. */
export function ensureTunnelUser(user = TUNNEL_TEST_USER): void {
  for (let i = 0; i < 20; i++) {
    try {
      run('id', ['-u', user]);
      return;
    } catch {
      /* missing */
    }
    try {
      run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--password', '*', user]);
      return;
    } catch {
      // another worker holds the passwd lock or just created it: look again shortly
      execFileSync('sleep', ['0.2']);
    }
  }
  run('id', ['-u', user]);
}

export function makeKeyPair(dir: string, name: string, type: 'ed25519' | 'rsa' | 'ecdsa' = 'ed25519'): { privateKeyFile: string; publicKey: string } {
  const privateKeyFile = path.join(dir, name);
  const args = ['-q', '-t', type, '-N', '', '-C', `camrelay-test-${name}`, '-f', privateKeyFile];
  if (type === 'rsa') args.splice(3, 0, '-b', '3072');
  run(SSH_KEYGEN_BIN, args);
  fs.chmodSync(privateKeyFile, 0o600);
  return { privateKeyFile, publicKey: fs.readFileSync(`${privateKeyFile}.pub`, 'utf8').trim() };
}

/** `entrypoint.sh render` with the given environment; throws with its stderr on failure. */
export function renderSshdConfig(env: Record<string, string>): string {
  return execFileSync('bash', [ENTRYPOINT, 'render'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function childrenOf(pid: number): number[] {
  // every process whose ancestry contains pid (sshd forks one process per connection)
  const rows: [number, number][] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      rows.push([Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])]);
    } catch {
      /* exited */
    }
  }
  return descendants(rows, pid).filter((p) => p !== pid);
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      /* gone */
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie still answers kill(0); treat it as gone
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  ensureTunnelUser();
  fs.mkdirSync(BASE_DIR, { recursive: true, mode: 0o755 });
  fs.chmodSync(BASE_DIR, 0o755);
  const dir = fs.mkdtempSync(path.join(BASE_DIR, 'sshd-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const permitListenPorts = opts.permitListenPorts ?? [await freePort()];
  // The keys come from the project's own `make keys` script, as in production.
  const secrets = path.join(dir, 'secrets');
  execFileSync('bash', [KEYS_SCRIPT], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRETS_DIR: secrets, SSH_HOST: '127.0.0.1', SSH_PORT: String(port), AGENT_UID: '0', ENV_FILE: '/nonexistent/.env' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const clientKeyFile = path.join(secrets, 'tunnel_client_key');
  const clientPublicKey = fs.readFileSync(`${clientKeyFile}.pub`, 'utf8').trim();
  const authorizedSource = path.join(secrets, 'tunnel_authorized_keys');
  if (opts.extraAuthorizedKeys?.length) fs.appendFileSync(authorizedSource, opts.extraAuthorizedKeys.join('\n') + '\n');
  const mountedHostKey = path.join(secrets, 'tunnel_host_key');
  const stateDir = path.join(dir, 'state');
  const confDir = path.join(dir, 'conf');
  const runDir = path.join(dir, 'run');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    TUNNEL_USER: TUNNEL_TEST_USER,
    TUNNEL_PERMIT_LISTEN_PORTS: permitListenPorts.join(','),
    SSHD_PORT: String(port),
    SSHD_LISTEN_ADDRESS: '127.0.0.1',
    SSHD_CLIENT_ALIVE_INTERVAL: String(opts.clientAliveIntervalS ?? 10),
    SSHD_CLIENT_ALIVE_COUNT_MAX: String(opts.clientAliveCountMax ?? 3),
    SSHD_LOG_LEVEL: opts.logLevel ?? 'VERBOSE',
    AUTHORIZED_KEYS_SOURCE: authorizedSource,
    HOST_KEY_SOURCE: opts.hostKey === 'generated' ? path.join(dir, 'no-mounted-host-key') : mountedHostKey,
    TUNNEL_SERVER_STATE_DIR: stateDir,
    TUNNEL_SERVER_CONF_DIR: confDir,
    TUNNEL_SERVER_RUN_DIR: runDir,
    ...opts.env,
  };

  let log = '';
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const startAt = log.length;
    const p = spawn('bash', [ENTRYPOINT], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout?.on('data', (d) => (log += d));
    p.stderr?.on('data', (d) => (log += d));
    let gone = false;
    exited = new Promise((resolve) => {
      p.on('exit', () => {
        gone = true;
        resolve();
      });
      p.on('error', (e) => {
        log += `spawn error: ${String(e)}\n`;
        gone = true;
        resolve();
      });
    });
    try {
      await waitFor(
        () => {
          if (gone) throw new Error(`sshd exited during start-up:\n${log.slice(startAt)}`);
          return log.indexOf(`Server listening on 127.0.0.1 port ${port}.`, startAt) >= 0;
        },
        15_000,
        `sshd on 127.0.0.1:${port}`,
      );
    } catch (e) {
      p.kill('SIGKILL');
      await exited;
      proc = undefined;
      throw new Error(`${String(e)}\n--- entrypoint/sshd output ---\n${log.slice(startAt)}`);
    }
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const p = proc;
    if (!p || p.pid === undefined) return;
    proc = undefined;
    const pids = [p.pid, ...childrenOf(p.pid)];
    signalAll(pids, signal);
    if (signal !== 'SIGKILL') signalAll(pids, 'SIGCONT'); // a test may have frozen a session
    const timer = setTimeout(() => signalAll([p.pid as number, ...childrenOf(p.pid as number), ...pids], 'SIGKILL'), 5_000);
    await exited;
    await waitFor(() => pids.every((q) => !alive(q)), 10_000, 'sshd session processes to exit').catch(() => signalAll(pids, 'SIGKILL'));
    clearTimeout(timer);
  };

  const instance: Instance = { dir, terminate };
  instances.add(instance);
  try {
    await launch();
  } catch (e) {
    instances.delete(instance);
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  const hostPubFile = opts.hostKey === 'generated' ? path.join(stateDir, 'hostkeys', 'ssh_host_ed25519_key.pub') : `${mountedHostKey}.pub`;
  const hostPublicKey = fs.readFileSync(hostPubFile, 'utf8').trim();
  const hostFingerprint = run(SSH_KEYGEN_BIN, ['-l', '-E', 'sha256', '-f', hostPubFile]).split(' ')[1];
  const knownHostsFile = path.join(dir, 'known_hosts');
  const [ktype, kdata] = hostPublicKey.split(/\s+/);
  fs.writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${ktype} ${kdata}\n`);

  return {
    host: '127.0.0.1',
    port,
    user: TUNNEL_TEST_USER,
    permitListenPorts,
    clientKeyFile,
    clientPublicKey,
    hostPublicKey,
    hostFingerprint,
    knownHostsFile,
    configFile: path.join(confDir, 'sshd_config'),
    dir,
    pid: () => proc?.pid,
    sessionPids: () => (proc?.pid === undefined ? [] : childrenOf(proc.pid).filter(alive)),
    stop: () => terminate('SIGTERM'),
    kill: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      await launch();
    },
    logs: () => log,
    waitForLog: (re, timeoutMs = 10_000) =>
      waitFor(() => log.split('\n').find((l) => re.test(l)), timeoutMs, `sshd log matching ${re} (log so far:\n${log.slice(-3000)})`),
  };
}

/** SIGKILL every fixture's sshd (and sessions) and remove their directories. For afterAll. */
export async function killAll(): Promise<void> {
  const all = [...instances];
  instances.clear();
  await Promise.all([...clients].map((c) => c.kill('SIGKILL')));
  clients.clear();
  await Promise.all(all.map((i) => i.terminate('SIGKILL')));
  for (const i of all) fs.rmSync(i.dir, { recursive: true, force: true });
}

export interface OpensshClientOptions {
  user?: string;
  keyFile?: string;
  timeoutMs?: number;
}

/** argv (without the leading `ssh`) for the OpenSSH client against this sshd. */
export function sshArgs(sshd: Sshd, opts: string[] = [], command: string[] = [], client: OpensshClientOptions = {}): string[] {
  return [
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', 'ConnectTimeout=10',
    '-o', 'LogLevel=ERROR',
    '-i', client.keyFile ?? sshd.clientKeyFile,
    '-p', String(sshd.port),
    ...opts,
    `${client.user ?? sshd.user}@${sshd.host}`,
    ...command,
  ];
}

export interface OpensshResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the OpenSSH client to completion (SIGKILLed after timeoutMs). Never rejects. */
export function openssh(sshd: Sshd, opts: string[] = [], command: string[] = [], client: OpensshClientOptions = {}): Promise<OpensshResult> {
  return new Promise((resolve) => {
    const cp = execFile(
      SSH_BIN,
      sshArgs(sshd, opts, command, client),
      { timeout: client.timeoutMs ?? 15_000, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
    cp.stdin?.end();
  });
}

/** A long-running OpenSSH client (e.g. `-N -R ...`), killed by killAllChildren(). */
export function spawnOpenssh(sshd: Sshd, opts: string[] = [], command: string[] = [], client: OpensshClientOptions = {}): Child {
  const child = spawnChild(SSH_BIN, sshArgs(sshd, opts, command, client));
  clients.add(child);
  void child.exited.then(() => clients.delete(child));
  return child;
}
