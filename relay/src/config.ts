/**
 * Relay configuration: environment variables plus the seed's CLI flags (flags win). Parsed and
 * validated once at start-up into a frozen object; anything invalid throws a ConfigError that names
 * the variable (or flag), the bad value and what is allowed. main.ts turns that into exit code 2.
 *
 * VARS below is the single list of every variable: --help prints it, and a unit test checks that
 * .env.example and the README document each one.
 */
import fs from 'node:fs';
import { validate as validateCron } from 'node-cron';
import {
  CidrList, ConfigError, Env, LogLevel, readCidrs, readEnum, readInt, readLogLevel, readNumber, readOptionalString,
  readPort, readString,
} from '@camrelay/common';

export type CameraMode = 'pull' | 'push';

export interface SourceConfig {
  mode: CameraMode;
  host: string;
  port: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  deadlineMs: number;
  frameMaxBytes: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** 0 = as fast as the camera delivers */
  maxFps: number;
  /** 0 = do not fetch while nobody watches */
  idleFps: number;
  /** 0 = never discard */
  staleAfterIdleMs: number;
}

export interface IngestConfig {
  host: string;
  port: number;
  allow: CidrList;
  maxConnections: number;
  /** push mode: the camera counts as up while a frame arrived within this window */
  upWindowMs: number;
}

export interface ClientConfig {
  bindHost: string;
  rawPort: number;
  httpPort: number;
  maxFrameAgeMs: number;
  waitTimeoutMs: number;
  maxClients: number;
  maxClientsPerIp: number;
  writeTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  allow: CidrList;
  viewerToken: string | undefined;
  viewerUser: string;
  viewerPassword: string | undefined;
}

export interface ArchiveConfig {
  /** undefined = archive off */
  cron: string | undefined;
  dir: string;
  keep: number;
  maxAgeHours: number;
  /** a frame older than this is not archived (the camera is down; do not save the same frame again) */
  maxFrameAgeMs: number;
  /** deadline of every archive file operation (write, fsync, rename, prune, mkdir); a disk that misses it counts as hung */
  writeTimeoutMs: number;
}

export interface RelayConfig {
  source: SourceConfig;
  ingest: IngestConfig;
  clients: ClientConfig;
  metrics: { host: string; port: number };
  archive: ArchiveConfig;
  shutdownGraceMs: number;
  logLevel: LogLevel;
}

export interface VarDoc {
  name: string;
  def: string;
  doc: string;
  flag?: string;
}

/** Every variable the relay reads, in the order --help, README and .env.example list them. */
export const VARS: readonly VarDoc[] = [
  { name: 'CAMERA_MODE', def: 'pull', doc: 'pull: the relay connects to the camera; push: the camera connects to INGEST_PORT and sends one JPEG per connection' },
  { name: 'CAMERA_HOST', def: 'localhost', doc: 'camera (or tunnel end) host, pull mode', flag: '--esp32-host' },
  { name: 'CAMERA_PORT', def: '1234', doc: 'camera (or tunnel end) port, pull mode', flag: '--esp32-port' },
  { name: 'CAMERA_CONNECT_TIMEOUT_MS', def: '3000', doc: 'give up connecting to the camera after this long' },
  { name: 'CAMERA_IDLE_TIMEOUT_MS', def: '3000', doc: 'a fetch fails when no byte arrives for this long' },
  { name: 'CAMERA_DEADLINE_MS', def: '10000', doc: 'a whole fetch (connect to last byte) must finish within this' },
  { name: 'FRAME_MAX_BYTES', def: '4194304', doc: 'larger frames are aborted as soon as the limit is passed' },
  { name: 'RETRY_BASE_MS', def: '250', doc: 'first back-off delay after a failed fetch (doubles, full jitter)' },
  { name: 'RETRY_MAX_MS', def: '10000', doc: 'back-off cap' },
  { name: 'MAX_FPS', def: '25', doc: 'fetch rate cap while anyone watches; 0 = as fast as the camera' },
  { name: 'IDLE_FPS', def: '1', doc: 'fetch rate while nobody watches; 0 = do not fetch while idle' },
  { name: 'STALE_AFTER_IDLE_MS', def: '5000', doc: 'after a gap without frames longer than this, discard the first frame (ESP32 drivers hand out a buffered old one); 0 = off' },
  { name: 'INGEST_HOST', def: '0.0.0.0', doc: 'push mode: listen address for the camera' },
  { name: 'INGEST_PORT', def: '1234', doc: 'push mode: listen port for the camera (0 = pick a free port)' },
  { name: 'INGEST_ALLOW_CIDRS', def: '', doc: 'push mode: comma-separated CIDRs allowed to push; empty = any' },
  { name: 'INGEST_MAX_CONNECTIONS', def: '4', doc: 'push mode: concurrent camera connections; more are closed at once' },
  { name: 'PUSH_UP_WINDOW_MS', def: '5000', doc: 'push mode: the camera counts as up while a frame arrived within this window' },
  { name: 'BIND_HOST', def: '0.0.0.0', doc: 'listen address of the client outlets (raw TCP and HTTP)' },
  { name: 'CLIENT_PORT', def: '8080', doc: 'raw TCP outlet: one JPEG per connection, like the camera (0 = pick a free port)', flag: '--client-port' },
  { name: 'HTTP_PORT', def: '8081', doc: 'HTTP outlet: / viewer, /snapshot.jpg, /stream.mjpg, /healthz, /readyz, /status.json' },
  { name: 'METRICS_HOST', def: '0.0.0.0', doc: 'listen address of /metrics, /healthz, /readyz (keep it internal)' },
  { name: 'METRICS_PORT', def: '9100', doc: 'Prometheus /metrics port' },
  { name: 'MAX_FRAME_AGE_MS', def: '1000', doc: 'a client gets the latest frame when it is at most this old, else waits for the next; 0 = every client waits for a frame fetched after it connected (clients waiting together share one fetch)' },
  { name: 'CLIENT_WAIT_TIMEOUT_MS', def: '5000', doc: 'how long a client waits for a fresh frame before the connection is closed' },
  { name: 'MAX_CLIENTS', def: '1000', doc: 'clients across all outlets; over it raw TCP closes at once, HTTP answers 503' },
  { name: 'MAX_CLIENTS_PER_IP', def: '50', doc: 'clients per source address across all outlets' },
  { name: 'CLIENT_WRITE_TIMEOUT_MS', def: '10000', doc: 'a client that does not read for this long is disconnected' },
  { name: 'HTTP_HEADERS_TIMEOUT_MS', def: '10000', doc: 'HTTP request headers must arrive within this (slowloris)' },
  { name: 'HTTP_KEEPALIVE_TIMEOUT_MS', def: '5000', doc: 'idle HTTP keep-alive connections are closed after this' },
  { name: 'ALLOW_CIDRS', def: '', doc: 'comma-separated CIDRs allowed on every client outlet (raw TCP included); empty = open to everyone' },
  { name: 'VIEWER_TOKEN', def: '', doc: 'HTTP outlets require ?token=... or "Authorization: Bearer ..." (at least 8 characters); empty = no token' },
  { name: 'VIEWER_TOKEN_FILE', def: '', doc: 'read VIEWER_TOKEN from this file instead (Docker secrets)' },
  { name: 'VIEWER_USER', def: 'viewer', doc: 'HTTP basic auth user name (used when VIEWER_PASSWORD is set)' },
  { name: 'VIEWER_PASSWORD', def: '', doc: 'HTTP basic auth password for the HTTP outlets (at least 8 characters); empty = no password' },
  { name: 'VIEWER_PASSWORD_FILE', def: '', doc: 'read VIEWER_PASSWORD from this file instead (Docker secrets)' },
  { name: 'SNAPSHOT_CRON', def: '', doc: 'node-cron expression (6 fields = with seconds) for archive snapshots; empty = archive off' },
  { name: 'SNAPSHOT_DIR', def: '/var/lib/camrelay/snapshots', doc: 'where snapshots are written (UTC timestamp names, atomic)' },
  { name: 'SNAPSHOT_KEEP', def: '0', doc: 'keep at most this many snapshots; 0 = no count limit' },
  { name: 'SNAPSHOT_MAX_AGE_HOURS', def: '0', doc: 'delete snapshots older than this; 0 = no age limit' },
  { name: 'SNAPSHOT_MAX_FRAME_AGE_MS', def: '10000', doc: 'do not archive a frame older than this (camera down)' },
  { name: 'SNAPSHOT_WRITE_TIMEOUT_MS', def: '10000', doc: 'deadline of every archive file operation; a disk that misses it is counted as hung (reason timeout) and skipped until it answers' },
  { name: 'SHUTDOWN_GRACE_MS', def: '5000', doc: 'on SIGTERM, in-flight sends get this long before they are cut' },
  { name: 'LOG_LEVEL', def: 'info', doc: 'fatal, error, warn, info, debug, trace or silent' },
];

const FLAGS: Record<string, string> = Object.fromEntries(VARS.filter((v) => v.flag).map((v) => [v.flag as string, v.name]));

/** A bad command line; main prints it and exits 2 like any other config error. */
export class UsageError extends ConfigError {
  constructor(value: string, allowed: string) {
    super('argv', value, allowed);
    this.message = `${value}: ${allowed} (see --help)`;
  }
}

export interface ParsedArgs {
  help: boolean;
  /** env var name -> value, plus the flag it came from */
  overrides: Map<string, { value: string; flag: string }>;
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const overrides = new Map<string, { value: string; flag: string }>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const name = FLAGS[flag];
    if (!name) throw new UsageError(`unknown argument ${JSON.stringify(arg)}`, `allowed flags are ${[...Object.keys(FLAGS), '--help'].join(', ')}`);
    let value: string | undefined;
    if (eq > 0 && arg.startsWith('--')) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`, `${flag} <value>`);
      i++;
    }
    overrides.set(name, { value, flag });
  }
  return { help, overrides };
}

function readSecret(env: Env, name: string, minLength: number): string | undefined {
  const direct = readOptionalString(env, name);
  const file = readOptionalString(env, `${name}_FILE`);
  if (direct !== undefined && file !== undefined) {
    throw new ConfigError(`${name}_FILE`, file, `only one of ${name} and ${name}_FILE`);
  }
  let value = direct;
  if (file !== undefined) {
    try {
      value = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(`${name}_FILE`, file, `a readable file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (value.trim() === '') throw new ConfigError(`${name}_FILE`, file, 'a file holding a non-empty secret');
  }
  // Never echo a secret in an error message.
  if (value !== undefined && value.length < minLength) {
    throw new ConfigError(file !== undefined ? `${name}_FILE` : name, file ?? '<redacted>', `a secret of at least ${minLength} characters`);
  }
  return value;
}

const ms = (env: Env, name: string, def: number, min = 1) => readInt(env, name, def, { min, max: 86_400_000 });

function parseEnv(env: Env): RelayConfig {
  const retryBaseMs = ms(env, 'RETRY_BASE_MS', 250);
  const retryMaxMs = ms(env, 'RETRY_MAX_MS', 10_000);
  if (retryMaxMs < retryBaseMs) throw new ConfigError('RETRY_MAX_MS', String(retryMaxMs), `an integer >= RETRY_BASE_MS (${retryBaseMs})`);
  const maxFps = readNumber(env, 'MAX_FPS', 25, { min: 0, max: 1000 });
  const idleFps = readNumber(env, 'IDLE_FPS', 1, { min: 0, max: 1000 });
  if (maxFps > 0 && idleFps > maxFps) throw new ConfigError('IDLE_FPS', String(idleFps), `a number from 0 to MAX_FPS (${maxFps})`);

  const source: SourceConfig = {
    mode: readEnum(env, 'CAMERA_MODE', 'pull', ['pull', 'push'] as const),
    host: readString(env, 'CAMERA_HOST', 'localhost'),
    port: readInt(env, 'CAMERA_PORT', 1234, { min: 1, max: 65535 }),
    connectTimeoutMs: ms(env, 'CAMERA_CONNECT_TIMEOUT_MS', 3000),
    idleTimeoutMs: ms(env, 'CAMERA_IDLE_TIMEOUT_MS', 3000),
    deadlineMs: ms(env, 'CAMERA_DEADLINE_MS', 10_000),
    frameMaxBytes: readInt(env, 'FRAME_MAX_BYTES', 4 * 1024 * 1024, { min: 1024, max: 256 * 1024 * 1024 }),
    retryBaseMs,
    retryMaxMs,
    maxFps,
    idleFps,
    staleAfterIdleMs: ms(env, 'STALE_AFTER_IDLE_MS', 5000, 0),
  };
  const ingest: IngestConfig = {
    host: readString(env, 'INGEST_HOST', '0.0.0.0'),
    port: readPort(env, 'INGEST_PORT', 1234),
    allow: readCidrs(env, 'INGEST_ALLOW_CIDRS'),
    maxConnections: readInt(env, 'INGEST_MAX_CONNECTIONS', 4, { min: 1, max: 1000 }),
    upWindowMs: ms(env, 'PUSH_UP_WINDOW_MS', 5000),
  };
  const viewerToken = readSecret(env, 'VIEWER_TOKEN', 8);
  const viewerPassword = readSecret(env, 'VIEWER_PASSWORD', 8);
  const viewerUser = readString(env, 'VIEWER_USER', 'viewer');
  if (viewerUser.includes(':')) throw new ConfigError('VIEWER_USER', viewerUser, 'a user name without ":"');
  const clients: ClientConfig = {
    bindHost: readString(env, 'BIND_HOST', '0.0.0.0'),
    rawPort: readPort(env, 'CLIENT_PORT', 8080),
    httpPort: readPort(env, 'HTTP_PORT', 8081),
    maxFrameAgeMs: ms(env, 'MAX_FRAME_AGE_MS', 1000, 0),
    waitTimeoutMs: ms(env, 'CLIENT_WAIT_TIMEOUT_MS', 5000),
    maxClients: readInt(env, 'MAX_CLIENTS', 1000, { min: 1, max: 1_000_000 }),
    maxClientsPerIp: readInt(env, 'MAX_CLIENTS_PER_IP', 50, { min: 1, max: 1_000_000 }),
    writeTimeoutMs: ms(env, 'CLIENT_WRITE_TIMEOUT_MS', 10_000),
    headersTimeoutMs: ms(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000),
    keepAliveTimeoutMs: ms(env, 'HTTP_KEEPALIVE_TIMEOUT_MS', 5000),
    allow: readCidrs(env, 'ALLOW_CIDRS'),
    viewerToken,
    viewerUser,
    viewerPassword,
  };
  const metrics = { host: readString(env, 'METRICS_HOST', '0.0.0.0'), port: readPort(env, 'METRICS_PORT', 9100) };

  const cron = readOptionalString(env, 'SNAPSHOT_CRON');
  if (cron !== undefined && !validateCron(cron)) {
    throw new ConfigError('SNAPSHOT_CRON', cron, 'a node-cron expression such as "0 */5 * * * *" (sec min hour day month weekday) or empty for off');
  }
  const archive: ArchiveConfig = {
    cron,
    dir: readString(env, 'SNAPSHOT_DIR', '/var/lib/camrelay/snapshots'),
    keep: readInt(env, 'SNAPSHOT_KEEP', 0, { min: 0, max: 10_000_000 }),
    maxAgeHours: readNumber(env, 'SNAPSHOT_MAX_AGE_HOURS', 0, { min: 0, max: 87_600 }),
    maxFrameAgeMs: ms(env, 'SNAPSHOT_MAX_FRAME_AGE_MS', 10_000),
    writeTimeoutMs: ms(env, 'SNAPSHOT_WRITE_TIMEOUT_MS', 10_000),
  };

  // Two outlets on one fixed port would fail later with a less helpful EADDRINUSE.
  const fixed: [string, string, number][] = [
    ['CLIENT_PORT', clients.bindHost, clients.rawPort],
    ['HTTP_PORT', clients.bindHost, clients.httpPort],
    ['METRICS_PORT', metrics.host, metrics.port],
  ];
  if (source.mode === 'push') fixed.push(['INGEST_PORT', ingest.host, ingest.port]);
  for (let i = 0; i < fixed.length; i++) {
    for (let j = 0; j < i; j++) {
      if (fixed[i][2] !== 0 && fixed[i][2] === fixed[j][2]) {
        throw new ConfigError(fixed[i][0], String(fixed[i][2]), `a port different from ${fixed[j][0]} (${fixed[j][2]})`);
      }
    }
  }

  return {
    source,
    ingest,
    clients,
    metrics,
    archive,
    shutdownGraceMs: ms(env, 'SHUTDOWN_GRACE_MS', 5000, 0),
    logLevel: readLogLevel(env),
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof CidrList) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export type ConfigResult = { help: true } | { help: false; config: RelayConfig };

/**
 * Parses the command line and the environment. Flags override their variables; an error in a value
 * given by flag names the flag.
 */
export function loadConfig(argv: readonly string[], env: Env): ConfigResult {
  const args = parseArgs(argv);
  if (args.help) return { help: true };
  const merged: Env = { ...env };
  for (const [name, { value }] of args.overrides) merged[name] = value;
  try {
    return { help: false, config: deepFreeze(parseEnv(merged)) };
  } catch (e) {
    if (e instanceof ConfigError) {
      const o = args.overrides.get(e.variable);
      if (o) throw new ConfigError(o.flag, e.value, e.allowed);
    }
    throw e;
  }
}

export function usage(): string {
  const lines = [
    'Usage: node relay/dist/main.js [--esp32-host HOST] [--esp32-port PORT] [--client-port PORT] [--help]',
    '',
    'camrelay relay: fetches frames from an ESP32-CAM (or accepts them in push mode) and serves them to',
    'any number of clients (raw TCP like the camera, HTTP snapshot/MJPEG/viewer, Prometheus metrics).',
    'Flags override the environment variables they name. Port 0 = pick a free port (the "relay started"',
    'log line reports the real one). Invalid values exit with code 2.',
    '',
    'Environment variables (default in brackets):',
  ];
  for (const v of VARS) {
    lines.push(`  ${v.name}${v.flag ? ` (${v.flag})` : ''} [${v.def}]`);
    lines.push(`      ${v.doc}`);
  }
  return lines.join('\n') + '\n';
}
