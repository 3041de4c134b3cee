/**
 * tunnel-agent configuration: every variable is read and validated once at start-up into a typed,
 * frozen object. Anything invalid throws a ConfigError naming the variable, the bad value and what is
 * allowed (main.ts turns it into exit code 2). Key material is read here but never put in a message.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';
import { utils } from 'ssh2';
import {
  ConfigError, Env, LogLevel, readBool, readInt, readLogLevel, readNumber, readOptionalString, readPort, readString,
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
 * A *_FILE variable set to the secret itself (the key pasted into the env instead of its path) must
 * not be echoed back in the error: that would print the private key to the log.
 */
function looksLikeSecret(value: string): boolean {
  return /PRIVATE KEY|PuTTY-User-Key-File|[\r\n]/.test(value) || value.length > 1024;
}

function readFile(env: Env, name: string, what: string): { path: string; data: Buffer } {
  const p = readOptionalString(env, name);
  if (p === undefined) throw new ConfigError(name, '', `the path of ${what}`);
  if (looksLikeSecret(p)) {
    throw new ConfigError(name, '<redacted: this looks like the secret itself, not a path>', `the PATH of a file holding ${what} (write the secret to a file, chmod 600, and set ${name} to its path)`);
  }
  try {
    return { path: p, data: fs.readFileSync(p) };
  } catch (e) {
    throw new ConfigError(name, p, `a readable file with ${what} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}

function secondsToMs(env: Env, name: string, def: number, min: number, max: number): number {
  return Math.round(readNumber(env, name, def, { min, max }) * 1000);
}

export function loadConfig(env: Env = process.env): AgentConfig {
  const warnings: string[] = [];
  const sshHost = readString(env, 'SSH_HOST', '');
  if (sshHost === '' || !isHost(sshHost)) throw new ConfigError('SSH_HOST', sshHost, 'the SSH server host name or IP address');
  const sshPort = readInt(env, 'SSH_PORT', 22, { min: 1, max: 65535 });
  const sshUser = readString(env, 'SSH_USER', 'tunnel');
  if (!/^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/.test(sshUser)) {
    throw new ConfigError('SSH_USER', sshUser, 'a user name of letters, digits, ".", "_" or "-" (at most 32)');
  }

  const key = readFile(env, 'SSH_PRIVATE_KEY_FILE', 'an OpenSSH private key (make keys)');
  let passphrase: string | undefined;
  if (readOptionalString(env, 'SSH_PRIVATE_KEY_PASSPHRASE_FILE') !== undefined) {
    passphrase = readFile(env, 'SSH_PRIVATE_KEY_PASSPHRASE_FILE', 'the key passphrase').data.toString('utf8').replace(/\r?\n$/, '');
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

  const insecure = readBool(env, 'SSH_INSECURE_ACCEPT_ANY_HOST_KEY', false);
  const khFile = readOptionalString(env, 'SSH_KNOWN_HOSTS_FILE');
  const pin = readOptionalString(env, 'SSH_HOST_KEY');
  let hostKey: HostKeyPolicy;
  if (khFile !== undefined && pin !== undefined) {
    throw new ConfigError('SSH_HOST_KEY', pin, 'unset when SSH_KNOWN_HOSTS_FILE is set (use one of the two)');
  } else if (khFile !== undefined) {
    const kh = readFile(env, 'SSH_KNOWN_HOSTS_FILE', 'OpenSSH known_hosts lines');
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

  const forwards = parseForwards(readString(env, 'TUNNEL_FORWARDS', '1234:cam:1234'));
  const reconnectMinMs = secondsToMs(env, 'RECONNECT_MIN_S', 1, 0.05, 3600);
  const reconnectMaxMs = secondsToMs(env, 'RECONNECT_MAX_S', 60, 0.05, 86400);
  if (reconnectMaxMs < reconnectMinMs) {
    throw new ConfigError('RECONNECT_MAX_S', String(reconnectMaxMs / 1000), `a number >= RECONNECT_MIN_S (${reconnectMinMs / 1000})`);
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
    keepaliveIntervalMs: secondsToMs(env, 'SSH_KEEPALIVE_INTERVAL_S', 15, 0.05, 3600),
    keepaliveCountMax: readInt(env, 'SSH_KEEPALIVE_COUNT_MAX', 3, { min: 1, max: 100 }),
    connectTimeoutMs: secondsToMs(env, 'SSH_CONNECT_TIMEOUT_S', 15, 0.1, 600),
    reconnectMinMs,
    reconnectMaxMs,
    stableAfterMs: secondsToMs(env, 'STABLE_AFTER_S', 30, 0, 86400),
    forwardConnectTimeoutMs: readInt(env, 'FORWARD_CONNECT_TIMEOUT_MS', 5000, { min: 10, max: 600_000 }),
    forwardMaxConnections: readInt(env, 'FORWARD_MAX_CONNECTIONS', 16, { min: 1, max: 10_000 }),
    forwardBindRetryMs: readInt(env, 'FORWARD_BIND_RETRY_MS', 2000, { min: 10, max: 600_000 }),
    unreachableProbeMs: readInt(env, 'UNREACHABLE_PROBE_MS', 500, { min: 10, max: 600_000 }),
    metricsHost: readString(env, 'METRICS_HOST', '0.0.0.0'),
    metricsPort: readPort(env, 'METRICS_PORT', 9101),
    logLevel: readLogLevel(env),
  });
}
