/**
 * tunnel-agent configuration: every variable is declared once in AGENT_SETTINGS (common/src/settings.ts;
 * --help, docs/configuration.md and the .env.example check come from it), read and validated once at
 * start-up into a typed, frozen object. Durations are milliseconds (`_MS`); the old `_S` names still
 * work as aliases with a start-up warning. Anything invalid throws a ConfigError naming the variable, the bad value and what is
 * allowed (main.ts turns it into exit code 2). Key material is read here but never put in a message.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';
import { utils } from 'ssh2';
import {
  bool, CAMERA_NAME_RE, CameraEntry, ConfigError, defineSettings, Env, int, keysOnly, loadCameraList, LogLevel, logLevel, ms, port, string,
} from '@camrelay/common';
import { HostKeyPolicy, parseHostKeyPins, parseKnownHosts, policyFromKnownHosts } from './host-key';

/** One `ssh -R` forward: connections to bindAddress:bindPort on the server reach host:port here. */
export interface ForwardSpec {
  /** The spec exactly as configured (normalised whitespace); used as the metric label. */
  readonly spec: string;
  /** Address sent in the tcpip-forward request (OpenSSH rules: absent -> "localhost", "*" -> ""). */
  readonly bindAddress: string;
  readonly bindPort: number;
  readonly host: string;
  readonly port: number;
  /**
   * The camera behind this forward (metric label `camera`): its name in CAMERAS_FILE; CAMERA_NAME for a
   * TUNNEL_FORWARDS entry without a list; "" (no camera) for the forward of the agent's own metrics
   * and for TUNNEL_FORWARDS entries next to a list.
   */
  readonly camera?: string;
}

export interface AgentConfig {
  readonly sshHost: string;
  readonly sshPort: number;
  readonly sshUser: string;
  readonly privateKeyFile: string;
  /** Key file contents; never logged. */
  readonly privateKey: Buffer;
  readonly passphrase: string | undefined;
  /** Warnings found while loading (e.g. key file permissions), logged by main once the logger exists. */
  readonly warnings: readonly string[];
  readonly hostKey: HostKeyPolicy;
  readonly forwards: readonly ForwardSpec[];
  /** CAMERAS_FILE: the camera forwards come from it (re-read on SIGHUP); undefined = TUNNEL_FORWARDS only */
  readonly camerasFile: string | undefined;
  /** the forwards that do not come from the list (TUNNEL_FORWARDS), kept across reloads */
  readonly extraForwards: readonly ForwardSpec[];
  readonly keepaliveIntervalMs: number;
  readonly keepaliveCountMax: number;
  readonly connectTimeoutMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly stableAfterMs: number;
  readonly forwardConnectTimeoutMs: number;
  readonly forwardMaxConnections: number;
  readonly forwardBindRetryMs: number;
  readonly unreachableProbeMs: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly logLevel: LogLevel;
}

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;

function isHost(s: string): boolean {
  return isIP(s) !== 0 || HOSTNAME_RE.test(s);
}

const FORWARD_ALLOWED =
  'a comma-separated list of [bind_address:]port:host:hostport (ssh -R syntax; ports 1-65535, ' +
  'IPv6 addresses in [brackets], bind_address "*" for all interfaces), e.g. 1234:cam:1234';

/** Splits one spec on ':' while keeping `[v6:addr]` groups whole. */
function splitSpec(s: string): string[] | undefined {
  const parts: string[] = [];
  let cur = '';
  let inBracket = false;
  for (const ch of s) {
    if (ch === '[') {
      if (inBracket || cur !== '') return undefined;
      inBracket = true;
    } else if (ch === ']') {
      if (!inBracket) return undefined;
      inBracket = false;
    } else if (ch === ':' && !inBracket) {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (inBracket) return undefined;
  parts.push(cur);
  return parts;
}

function parsePortPart(p: string): number | undefined {
  if (!/^\d{1,5}$/.test(p)) return undefined;
  const n = Number(p);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** Parses TUNNEL_FORWARDS. Throws ConfigError naming the bad spec and why. */
export function parseForwards(value: string, name = 'TUNNEL_FORWARDS'): ForwardSpec[] {
  const specs = value.split(',').map((s) => s.trim());
  if (specs.length === 0 || specs.some((s) => s === '')) {
    throw new ConfigError(name, value, `${FORWARD_ALLOWED} (empty entry)`);
  }
  const out: ForwardSpec[] = [];
  for (const spec of specs) {
    const bad = (why: string) => new ConfigError(name, value, `${FORWARD_ALLOWED}; "${spec}": ${why}`);
    const parts = splitSpec(spec);
    if (!parts) throw bad('unbalanced [brackets]');
    if (parts.length !== 3 && parts.length !== 4) throw bad('needs 3 or 4 colon-separated parts');
    const [bindRaw, portRaw, host, hostPortRaw]: [string | undefined, string, string, string] =
      parts.length === 4 ? [parts[0], parts[1], parts[2], parts[3]] : [undefined, parts[0], parts[1], parts[2]];
    let bindAddress: string;
    if (bindRaw === undefined) bindAddress = 'localhost';
    else if (bindRaw === '' || bindRaw === '*') bindAddress = '';
    else if (isHost(bindRaw)) bindAddress = bindRaw;
    else throw bad(`bind_address "${bindRaw}" is not an IP address or host name`);
    const bindPort = parsePortPart(portRaw);
    if (bindPort === undefined) throw bad(`port "${portRaw}" is not 1-65535`);
    if (!isHost(host)) throw bad(`host "${host}" is not an IP address or host name`);
    const port = parsePortPart(hostPortRaw);
    if (port === undefined) throw bad(`hostport "${hostPortRaw}" is not 1-65535`);
    const dup = out.find((f) => f.bindAddress === bindAddress && f.bindPort === bindPort);
    if (dup) throw bad(`the same remote address and port as "${dup.spec}"`);
    out.push(Object.freeze({ spec, bindAddress, bindPort, host, port }));
  }
  return out;
}

/**
 * A camera's forward binds every interface of the tunnel-server (sshd: GatewayPorts clientspecified),
 * so that the relay, another container, reaches it; sshd's PermitListen limits the port.
 */
export const CAMERA_FORWARD_BIND = '0.0.0.0';

/** One forward per camera of the list that the agent reaches on the LAN (`lan`), in list order. */
export function cameraForwards(entries: readonly CameraEntry[]): ForwardSpec[] {
  const out: ForwardSpec[] = [];
  for (const e of entries) {
    if (!e.lan || e.tunnelPort === undefined) continue;
    const target = isIP(e.lan.host) === 6 ? `[${e.lan.host}]` : e.lan.host;
    out.push(Object.freeze({
      spec: `${CAMERA_FORWARD_BIND}:${e.tunnelPort}:${target}:${e.lan.port}`,
      bindAddress: CAMERA_FORWARD_BIND, bindPort: e.tunnelPort, host: e.lan.host, port: e.lan.port, camera: e.name,
    }));
  }
  return out;
}

/**
 * Reads CAMERAS_FILE (the relay's file; only the key names of the relay's per-camera settings are
 * checked here) and returns every forward: the cameras', then `extra` (TUNNEL_FORWARDS). Throws a
 * ConfigError naming the key path, or the extra forward that takes a camera's port. Start-up and
 * every SIGHUP use it.
 */
export function loadForwards(file: string, extra: readonly ForwardSpec[]): ForwardSpec[] {
  const cams = cameraForwards(loadCameraList(file, { validate: keysOnly() }));
  for (const x of extra) {
    const clash = cams.find((c) => c.bindPort === x.bindPort);
    if (clash) throw new ConfigError('TUNNEL_FORWARDS', x.spec, `a port no camera uses (${x.bindPort} is the tunnel port of cameras.${clash.camera ?? '?'})`);
  }
  const all = [...cams, ...extra];
  if (all.length === 0) {
    throw new ConfigError('CAMERAS_FILE', file, 'a list with at least one camera reached through the tunnel (`lan: host:port`), or forwards in TUNNEL_FORWARDS');
  }
  return all;
}

/** A forward to the agent's own /metrics (the stack's 9101 forward for Prometheus) is no camera's. */
function isOwnMetrics(f: ForwardSpec, metricsPort: number): boolean {
  return ['127.0.0.1', 'localhost', '::1'].includes(f.host) && f.port === metricsPort;
}

/**
 * A *_FILE variable set to the secret itself (the key pasted into the env instead of its path) must
 * not be echoed back in the error: that would print the private key to the log.
 */
function looksLikeSecret(value: string): boolean {
  return /PRIVATE KEY|PuTTY-User-Key-File|[\r\n]/.test(value) || value.length > 1024;
}

function readFile(name: string, p: string | undefined, what: string): { path: string; data: Buffer } {
  if (p === undefined) throw new ConfigError(name, '', `the path of ${what}`);
  if (looksLikeSecret(p)) {
    throw new ConfigError(name, '<redacted: this looks like the secret itself, not a path>', `the PATH of a file holding ${what} (write the secret to a file, chmod 600, and set ${name} to its path)`);
  }
  try {
    return { path: p, data: fs.readFileSync(p) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(name, p, `a readable file with ${what} (${code ?? 'unreadable'})${code === 'EACCES' || code === 'EPERM' ? permissionHint() : ''}`);
  }
}

/**
 * EACCES on a mounted secret: bind mounts keep the host file's owner and mode, so a key copied as root
 * is unreadable for uid 1000. Say both ways out.
 */
function permissionHint(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const who = uid === undefined ? 'this user' : `uid ${uid}`;
  return `; ${who} cannot read it: \`sudo chown ${uid ?? 1000}\` the host file mounted there (mode 600 is fine), ` +
    'or let the container start as root (the image default: its entrypoint copies /run/secrets/* for uid 1000, then drops root)';
}

const seconds = (env: string) => [{ env, scale: 1000, unit: 'seconds' }];

/** Every setting the agent reads, in the order --help, docs/configuration.md and .env.example list them. */
export const AGENT_SETTINGS = defineSettings({
  program: 'tunnel-agent',
  section: 'tunnel-agent',
  usage: 'node tunnel-agent/dist/main.js [--help]   (all settings are environment variables)',
  intro:
    'camrelay tunnel-agent (home machine): keeps `ssh -R` forwards to the tunnel-server up, with host key ' +
    'verification, keepalives, backoff and Prometheus metrics.',
  settings: {
    sshHost: { env: 'SSH_HOST', kind: string({ allowed: 'the SSH server host name or IP address', test: isHost }), group: 'Server and keys', doc: "the tunnel-server's host name or IP address (required)" },
    sshPort: { env: 'SSH_PORT', kind: port(1), default: 22, doc: "the tunnel-server's SSH port (docker-compose.yml passes 2222, the tunnel-server container's port, unless set)" },
    sshUser: { env: 'SSH_USER', kind: string({ allowed: 'a user name of letters, digits, ".", "_" or "-" (at most 32)', test: (u) => /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/.test(u) }), default: 'tunnel', doc: 'the tunnel-only account' },
    privateKeyFile: { env: 'SSH_PRIVATE_KEY_FILE', kind: string({ allowed: 'the path of an OpenSSH private key' }), doc: "PATH of the agent's private key file, not the key itself (required; `make keys` writes secrets/tunnel_client_key)" },
    passphraseFile: { env: 'SSH_PRIVATE_KEY_PASSPHRASE_FILE', kind: string({ allowed: 'the path of a file holding the key passphrase' }), doc: "file holding the key's passphrase, only for a passphrase-protected key" },
    hostKey: { env: 'SSH_HOST_KEY', kind: string(), doc: "the server's host key pin printed by `make keys`: `SHA256:...` as `ssh-keygen -lf` prints it, or the line `ssh-ed25519 AAAA...`; comma-separated for several (required unless SSH_KNOWN_HOSTS_FILE is set)" },
    knownHostsFile: { env: 'SSH_KNOWN_HOSTS_FILE', kind: string({ allowed: 'the path of an OpenSSH known_hosts file' }), doc: 'instead of SSH_HOST_KEY: an OpenSSH known_hosts file (hashed entries and [host]:port supported)' },
    insecure: { env: 'SSH_INSECURE_ACCEPT_ANY_HOST_KEY', kind: bool(), default: false, doc: 'true = accept ANY server key (logs a warning at every connect); never in production' },
    camerasFile: { env: 'CAMERAS_FILE', kind: string(), group: 'Forwards', doc: 'YAML camera list (docs/cameras.md), the same file as the relay\'s: one forward `0.0.0.0:<tunnel port>:<lan>` per camera with `lan`, re-read on SIGHUP; TUNNEL_FORWARDS then only adds forwards (such as the metrics forward) and has no default' },
    cameraName: {
      env: 'CAMERA_NAME', default: 'default',
      kind: string({ allowed: 'a camera name: lower-case letters, digits and "-", starting with a letter or digit, at most 32 characters', test: (s) => CAMERA_NAME_RE.test(s) }),
      doc: 'without CAMERAS_FILE: the camera name the TUNNEL_FORWARDS forwards report in the metric label `camera` (the relay\'s CAMERA_NAME); a forward to the agent\'s own METRICS_PORT is no camera',
    },
    forwards: { env: 'TUNNEL_FORWARDS', kind: string(), default: '1234:cam:1234', doc: 'forwards in `ssh -R` syntax, comma-separated: [bind_address:]port:host:hostport; no bind address = the server\'s loopback only, 0.0.0.0 (or *) = reachable by other containers. With CAMERAS_FILE: extra forwards only, no default' },
    keepaliveIntervalMs: { env: 'SSH_KEEPALIVE_INTERVAL_MS', kind: ms({ min: 50, max: 3_600_000 }), default: 15_000, unit: 'ms', aliases: seconds('SSH_KEEPALIVE_INTERVAL_S'), group: 'Timing', doc: 'interval between SSH keepalives' },
    keepaliveCountMax: { env: 'SSH_KEEPALIVE_COUNT_MAX', kind: int({ min: 1, max: 100 }), default: 3, doc: 'unanswered keepalives before the link counts as dead' },
    connectTimeoutMs: { env: 'SSH_CONNECT_TIMEOUT_MS', kind: ms({ min: 100, max: 600_000 }), default: 15_000, unit: 'ms', aliases: seconds('SSH_CONNECT_TIMEOUT_S'), doc: 'SSH handshake timeout and forward-request reply timeout' },
    reconnectMinMs: { env: 'RECONNECT_MIN_MS', kind: ms({ min: 50, max: 3_600_000 }), default: 1000, unit: 'ms', aliases: seconds('RECONNECT_MIN_S'), doc: 'backoff for failures that reach the server: first ceiling (full jitter)' },
    reconnectMaxMs: { env: 'RECONNECT_MAX_MS', kind: ms({ min: 50, max: 86_400_000 }), default: 60_000, unit: 'ms', aliases: seconds('RECONNECT_MAX_S'), doc: 'backoff cap, at least RECONNECT_MIN_MS; also the minimum wait after a host key mismatch' },
    stableAfterMs: { env: 'STABLE_AFTER_MS', kind: ms({ min: 0, max: 86_400_000 }), default: 30_000, unit: 'ms', aliases: seconds('STABLE_AFTER_S'), doc: 'a session up this long resets the backoff' },
    unreachableProbeMs: { env: 'UNREACHABLE_PROBE_MS', kind: ms({ min: 10, max: 600_000 }), default: 500, unit: 'ms', doc: 'while the server is unreachable (refused, no route), probe it with a TCP connect this often; on a route that drops packets the probes overlap' },
    forwardBindRetryMs: { env: 'FORWARD_BIND_RETRY_MS', kind: ms({ min: 10, max: 600_000 }), default: 1000, unit: 'ms', doc: 'retry interval for a forward sshd refused to bind (port still held by a dead session)' },
    forwardConnectTimeoutMs: { env: 'FORWARD_CONNECT_TIMEOUT_MS', kind: ms({ min: 10, max: 600_000 }), default: 5000, unit: 'ms', doc: 'connect timeout to the target (the camera) per forwarded connection' },
    forwardMaxConnections: { env: 'FORWARD_MAX_CONNECTIONS', kind: int({ min: 1, max: 10_000 }), default: 16, doc: 'concurrent connections per forward; more are rejected' },
    metricsHost: { env: 'METRICS_HOST', kind: string(), default: '0.0.0.0', group: 'Process', doc: "listen address of the agent's /metrics, /healthz, /readyz" },
    metricsPort: { env: 'METRICS_PORT', kind: port(0), default: 9101, doc: "port of the agent's /metrics, /healthz, /readyz (0 = pick a free port)" },
    logLevel: { env: 'LOG_LEVEL', kind: logLevel(), default: 'info', doc: 'log level' },
  },
});

/** Parses the command line: only --help (every setting is an environment variable). */
export function parseArgs(argv: readonly string[]): { help: boolean } {
  return { help: AGENT_SETTINGS.parseArgv(argv).help };
}

export function loadConfig(env: Env = process.env): AgentConfig {
  const p = AGENT_SETTINGS.parse(env);
  const v = p.values;
  const warnings: string[] = [...p.warnings];
  const sshHost = v.sshHost;
  if (sshHost === undefined) throw new ConfigError('SSH_HOST', '', 'the SSH server host name or IP address');
  const sshPort = v.sshPort;
  const sshUser = v.sshUser;

  const key = readFile('SSH_PRIVATE_KEY_FILE', v.privateKeyFile, 'an OpenSSH private key (make keys)');
  let passphrase: string | undefined;
  if (v.passphraseFile !== undefined) {
    passphrase = readFile('SSH_PRIVATE_KEY_PASSPHRASE_FILE', v.passphraseFile, 'the key passphrase').data.toString('utf8').replace(/\r?\n$/, '');
  }
  const parsed = utils.parseKey(key.data, passphrase);
  if (parsed instanceof Error) {
    // The message from ssh2 describes the format problem; it never contains key bytes.
    throw new ConfigError('SSH_PRIVATE_KEY_FILE', key.path, `a valid private key (OpenSSH/PEM/PPK)${passphrase === undefined ? ' or set SSH_PRIVATE_KEY_PASSPHRASE_FILE' : ''}: ${parsed.message}`);
  }
  const k = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!k || !k.isPrivateKey()) throw new ConfigError('SSH_PRIVATE_KEY_FILE', key.path, 'a PRIVATE key (this looks like a public key)');
  try {
    const mode = fs.statSync(key.path).mode;
    if (mode & 0o077) {
      warnings.push(`SSH_PRIVATE_KEY_FILE ${key.path} is readable by group/others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
    }
  } catch {
    /* already read it, so stat failing is a race we can ignore */
  }

  const insecure = v.insecure;
  const khFile = v.knownHostsFile;
  const pin = v.hostKey;
  let hostKey: HostKeyPolicy;
  if (khFile !== undefined && pin !== undefined) {
    throw new ConfigError('SSH_HOST_KEY', pin, 'unset when SSH_KNOWN_HOSTS_FILE is set (use one of the two)');
  } else if (khFile !== undefined) {
    const kh = readFile('SSH_KNOWN_HOSTS_FILE', khFile, 'OpenSSH known_hosts lines');
    const entries = parseKnownHosts(kh.data.toString('utf8'));
    try {
      hostKey = policyFromKnownHosts(entries, sshHost, sshPort);
    } catch (e) {
      throw new ConfigError('SSH_KNOWN_HOSTS_FILE', kh.path, (e as Error).message);
    }
  } else if (pin !== undefined) {
    try {
      hostKey = parseHostKeyPins(pin);
    } catch (e) {
      throw new ConfigError('SSH_HOST_KEY', pin, (e as Error).message);
    }
  } else if (insecure) {
    hostKey = { kind: 'insecure' };
  } else {
    throw new ConfigError(
      'SSH_KNOWN_HOSTS_FILE',
      '',
      'a known_hosts file, or SSH_HOST_KEY set to the server key line or its SHA256:... fingerprint (make keys prints both); ' +
        'SSH_INSECURE_ACCEPT_ANY_HOST_KEY=true disables verification',
    );
  }
  if (insecure && hostKey.kind !== 'insecure') {
    warnings.push('SSH_INSECURE_ACCEPT_ANY_HOST_KEY=true is ignored because a host key is configured');
  }

  if (v.camerasFile !== undefined && v.camerasFile.trim() === '') throw p.error('camerasFile', 'a path to a YAML camera list, or unset');
  // With a list, TUNNEL_FORWARDS only adds forwards: its default (one camera) does not apply.
  const explicitForwards = env.TUNNEL_FORWARDS !== undefined && env.TUNNEL_FORWARDS.trim() !== '';
  let extraForwards: ForwardSpec[];
  let forwards: ForwardSpec[];
  if (v.camerasFile !== undefined) {
    extraForwards = (explicitForwards ? parseForwards(v.forwards) : []).map((f) => Object.freeze({ ...f, camera: '' }));
    forwards = loadForwards(v.camerasFile, extraForwards);
  } else {
    extraForwards = parseForwards(v.forwards).map((f) => Object.freeze({ ...f, camera: isOwnMetrics(f, v.metricsPort) ? '' : v.cameraName }));
    forwards = extraForwards;
  }
  if (v.reconnectMaxMs < v.reconnectMinMs) {
    throw p.error('reconnectMaxMs', `a value >= ${p.name('reconnectMinMs')} (${v.reconnectMinMs} ms)`);
  }

  return Object.freeze({
    sshHost,
    sshPort,
    sshUser,
    privateKeyFile: key.path,
    privateKey: key.data,
    passphrase,
    warnings: Object.freeze(warnings),
    hostKey,
    forwards: Object.freeze(forwards),
    camerasFile: v.camerasFile,
    extraForwards: Object.freeze(extraForwards),
    keepaliveIntervalMs: v.keepaliveIntervalMs,
    keepaliveCountMax: v.keepaliveCountMax,
    connectTimeoutMs: v.connectTimeoutMs,
    reconnectMinMs: v.reconnectMinMs,
    reconnectMaxMs: v.reconnectMaxMs,
    stableAfterMs: v.stableAfterMs,
    forwardConnectTimeoutMs: v.forwardConnectTimeoutMs,
    forwardMaxConnections: v.forwardMaxConnections,
    forwardBindRetryMs: v.forwardBindRetryMs,
    unreachableProbeMs: v.unreachableProbeMs,
    metricsHost: v.metricsHost,
    metricsPort: v.metricsPort,
    logLevel: v.logLevel,
  });
}
