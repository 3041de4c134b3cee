/**
 * Relay configuration: environment variables plus the seed's CLI flags (flags win). Parsed and
 * validated once at start-up into a frozen object; anything invalid throws a ConfigError that names
 * the variable (or flag), the bad value and what is allowed. main.ts turns that into exit code 2.
 *
 * RELAY_SETTINGS below declares every setting once (common/src/settings.ts): parsing, --help,
 * docs/configuration.md and the .env.example check all come from it.
 */
import { validate as validateCron } from 'node-cron';
import {
  CAMERA_NAME_RE, CameraEntry, CidrList, cidrs, defineSettings, Env, int, KeyPathError, ListChecks, loadCameraList, LogLevel, logLevel, ms, number, oneOf, Parsed,
  port, secret, SettingValues, string,
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
  /** TRUSTED_PROXY_CIDRS: peers whose Forwarded / X-Forwarded-* headers are believed */
  trustedProxies: CidrList;
  /** BASE_PATH: '' = served at /; else e.g. '/camrelay' (no trailing slash) */
  basePath: string;
  /** SNAPSHOT_CACHE_S: max-age of public cameras' snapshots in seconds; 0 = no-store */
  snapshotCacheS: number;
  /** SESSION_TTL_MS: lifetime of a sign-in cookie */
  sessionTtlMs: number;
  /** SESSION_SECRET: salts the cookie signing key; undefined = the key comes from the credentials alone */
  sessionSecret: string | undefined;
}

export interface ArchiveConfig {
  /** undefined = archive off */
  cron: string | undefined;
  dir: string;
  keep: number;
  maxAgeHours: number;
  /** a frame older than this is not archived (the camera is down; do not save the same frame again) */
  maxFrameAgeMs: number;
  /** deadline of every archive file operation (SNAPSHOT_WRITE_TIMEOUT_MS) */
  writeTimeoutMs: number;
}

/** One camera's resolved settings: the global (env/flag) values, overridden by its CAMERAS_FILE entry. */
export interface CameraConfig {
  /** URL path segment, metric label `camera`, archive sub-directory (list mode) */
  name: string;
  /** true: viewers need no credentials for this camera */
  public: boolean;
  source: SourceConfig;
  ingest: IngestConfig;
  /** this camera's raw TCP outlet */
  rawPort: number;
  /** MAX_FRAME_AGE_MS for this camera's outlets */
  maxFrameAgeMs: number;
  /** CAMERA_FROZEN_AFTER_MS: byte-identical frames for longer than this = frozen; 0 = off */
  frozenAfterMs: number;
  archive: ArchiveConfig;
}

export interface RelayConfig {
  /** CAMERAS_FILE; undefined = single-camera mode (one camera from env/flags) */
  camerasFile: string | undefined;
  /** every camera, in file order; the first one also serves /snapshot.jpg and /stream.mjpg */
  cameras: CameraConfig[];
  /** the first camera's (single-camera mode: the only camera's) settings, as before the camera list */
  source: SourceConfig;
  ingest: IngestConfig;
  clients: ClientConfig;
  metrics: { host: string; port: number };
  archive: ArchiveConfig;
  shutdownGraceMs: number;
  logLevel: LogLevel;
  /** the global values (env/flags) the cameras were resolved against; a reload resolves against them again */
  settings: RelaySettings;
}

const MS_MAX = 86_400_000;
const duration = (min = 1) => ms({ min, max: MS_MAX });
const DAY_MS = 86_400_000;

/** BASE_PATH: one or more segments of URL-safe characters, no empty, `.` or `..` segment, no trailing slash. */
export const BASE_PATH_RE = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._~-]+)+$/;

/**
 * Every setting the relay reads, in the order --help, docs/configuration.md and .env.example list
 * them. `perCamera` ones may be overridden per camera in the camera list (key `yaml`).
 */
export const RELAY_SETTINGS = defineSettings({
  program: 'camrelay-relay',
  section: 'relay',
  usage: 'node relay/dist/main.js [--esp32-host HOST] [--esp32-port PORT] [--client-port PORT] [--help]',
  intro:
    'camrelay relay: fetches frames from an ESP32-CAM (or accepts them in push mode) and serves them to any number of ' +
    'clients (raw TCP like the camera, HTTP snapshot/MJPEG/viewer, Prometheus metrics). Port 0 = pick a free port ' +
    '(the "relay started" log line reports the real one).',
  settings: {
    camerasFile: { env: 'CAMERAS_FILE', kind: string(), group: 'Cameras', doc: 'YAML camera list (docs/cameras.md): one source, raw port, archive and metrics label per camera, re-read on SIGHUP; unset = one camera from the variables below' },
    cameraName: {
      env: 'CAMERA_NAME', default: 'default',
      kind: string({ allowed: 'a camera name: lower-case letters, digits and "-", starting with a letter or digit, at most 32 characters', test: (s) => CAMERA_NAME_RE.test(s) }),
      doc: 'name of the single camera when CAMERAS_FILE is unset (metric label `camera`, /cam/<name>/)',
    },
    cameraMode: { env: 'CAMERA_MODE', kind: oneOf(['pull', 'push'] as const), default: 'pull', yaml: 'mode', perCamera: true, group: 'Source: where frames come from (with CAMERAS_FILE: the defaults of every camera)', doc: 'pull: the relay connects to the camera; push: the camera connects to INGEST_PORT and sends one JPEG per connection' },
    cameraHost: { env: 'CAMERA_HOST', kind: string(), default: 'localhost', flag: 'esp32-host', metavar: 'HOST', yaml: 'host', perCamera: true, doc: 'camera (or tunnel end) host, pull mode' },
    cameraPort: { env: 'CAMERA_PORT', kind: port(1), default: 1234, flag: 'esp32-port', metavar: 'PORT', yaml: 'port', perCamera: true, doc: 'camera (or tunnel end) port, pull mode' },
    connectTimeoutMs: { env: 'CAMERA_CONNECT_TIMEOUT_MS', kind: duration(), default: 3000, unit: 'ms', yaml: 'connect_timeout_ms', perCamera: true, doc: 'give up connecting to the camera after this long' },
    idleTimeoutMs: { env: 'CAMERA_IDLE_TIMEOUT_MS', kind: duration(), default: 3000, unit: 'ms', yaml: 'idle_timeout_ms', perCamera: true, doc: 'a fetch fails when no byte arrives for this long' },
    deadlineMs: { env: 'CAMERA_DEADLINE_MS', kind: duration(), default: 10_000, unit: 'ms', yaml: 'deadline_ms', perCamera: true, doc: 'a whole fetch (connect to last byte) must finish within this' },
    frameMaxBytes: { env: 'FRAME_MAX_BYTES', kind: int({ min: 1024, max: 256 * 1024 * 1024 }), default: 4 * 1024 * 1024, unit: 'bytes', yaml: 'frame_max_bytes', perCamera: true, doc: 'larger frames are aborted as soon as the limit is passed' },
    retryBaseMs: { env: 'RETRY_BASE_MS', kind: duration(), default: 250, unit: 'ms', yaml: 'retry_base_ms', perCamera: true, doc: 'first back-off delay after a failed fetch (doubles, full jitter)' },
    retryMaxMs: { env: 'RETRY_MAX_MS', kind: duration(), default: 1000, unit: 'ms', yaml: 'retry_max_ms', perCamera: true, doc: 'back-off cap; at least RETRY_BASE_MS (1 s: a failing camera is tried no more often than a healthy idle one is fetched, and frames are back within about a second of it recovering)' },
    maxFps: { env: 'MAX_FPS', kind: number({ min: 0, max: 1000 }), default: 25, unit: 'frames/s', yaml: 'max_fps', perCamera: true, doc: 'fetch rate cap while anyone watches; 0 = as fast as the camera' },
    idleFps: { env: 'IDLE_FPS', kind: number({ min: 0, max: 1000 }), default: 1, unit: 'frames/s', yaml: 'idle_fps', perCamera: true, doc: 'fetch rate while nobody watches, at most MAX_FPS; 0 = do not fetch while idle' },
    staleAfterIdleMs: { env: 'STALE_AFTER_IDLE_MS', kind: duration(0), default: 5000, unit: 'ms', yaml: 'stale_after_idle_ms', perCamera: true, doc: 'after a gap without frames longer than this, discard the first frame (ESP32 drivers hand out a buffered old one); 0 = off' },
    frozenAfterMs: {
      env: 'CAMERA_FROZEN_AFTER_MS', kind: duration(0), default: 60_000, unit: 'ms', yaml: 'frozen_after_ms', perCamera: true,
      aliases: [{ env: 'CAMERA_FROZEN_AFTER_S', scale: 1000, unit: 'seconds', equivalent: true }],
      doc: 'the camera counts as frozen (relay_camera_frozen 1, alert CameraFrozen) once its frames have stayed byte-identical for longer than this (an ESP32-CAM that locked up repeats one frame); its frames are still served; 0 = off',
    },

    ingestHost: { env: 'INGEST_HOST', kind: string(), default: '0.0.0.0', group: 'Push mode (CAMERA_MODE=push): the camera connects to the relay', doc: 'push mode: listen address for the camera' },
    ingestPort: { env: 'INGEST_PORT', kind: port(0), default: 1234, yaml: 'ingest_port', perCamera: true, doc: 'push mode: listen port for the camera (0 = pick a free port)' },
    ingestAllow: { env: 'INGEST_ALLOW_CIDRS', kind: cidrs(), default: new CidrList([]), yaml: 'ingest_allow_cidrs', perCamera: true, doc: 'push mode: comma-separated CIDRs allowed to push; empty = any' },
    ingestMaxConnections: { env: 'INGEST_MAX_CONNECTIONS', kind: int({ min: 1, max: 1000 }), default: 4, doc: 'push mode: concurrent camera connections; more are closed at once' },
    pushUpWindowMs: { env: 'PUSH_UP_WINDOW_MS', kind: duration(), default: 5000, unit: 'ms', yaml: 'push_up_window_ms', perCamera: true, doc: 'push mode: the camera counts as up while a frame arrived within this window' },

    bindHost: { env: 'BIND_HOST', kind: string(), default: '0.0.0.0', group: 'Client outlets and metrics', doc: 'listen address of the client outlets (raw TCP and HTTP)' },
    rawPort: { env: 'CLIENT_PORT', kind: port(0), default: 8080, flag: 'client-port', metavar: 'PORT', yaml: 'raw_port', perCamera: true, doc: 'raw TCP outlet: one JPEG per connection, like the camera (0 = pick a free port)' },
    httpPort: { env: 'HTTP_PORT', kind: port(0), default: 8081, doc: 'HTTP outlet: / viewer, /snapshot.jpg, /stream.mjpg, /healthz, /readyz, /status.json' },
    metricsHost: { env: 'METRICS_HOST', kind: string(), default: '0.0.0.0', doc: 'listen address of /metrics, /healthz, /readyz (keep it internal)' },
    metricsPort: { env: 'METRICS_PORT', kind: port(0), default: 9100, doc: 'Prometheus /metrics port' },
    maxFrameAgeMs: { env: 'MAX_FRAME_AGE_MS', kind: duration(0), default: 1000, unit: 'ms', yaml: 'max_frame_age_ms', perCamera: true, doc: 'a client gets the latest frame when it is at most this old, else waits for the next; 0 = every client waits for a frame fetched after it connected (clients waiting together share one fetch)' },
    waitTimeoutMs: { env: 'CLIENT_WAIT_TIMEOUT_MS', kind: duration(), default: 5000, unit: 'ms', doc: 'how long a client waits for a fresh frame before the connection is closed' },
    maxClients: { env: 'MAX_CLIENTS', kind: int({ min: 1, max: 1_000_000 }), default: 1000, doc: 'clients across all outlets; over it raw TCP closes at once, HTTP answers 503' },
    maxClientsPerIp: { env: 'MAX_CLIENTS_PER_IP', kind: int({ min: 1, max: 1_000_000 }), default: 50, doc: 'clients per source address across all outlets' },
    writeTimeoutMs: { env: 'CLIENT_WRITE_TIMEOUT_MS', kind: duration(), default: 10_000, unit: 'ms', doc: 'a client that does not read for this long is disconnected' },
    headersTimeoutMs: { env: 'HTTP_HEADERS_TIMEOUT_MS', kind: duration(), default: 10_000, unit: 'ms', doc: 'HTTP request headers must arrive within this (slowloris)' },
    keepAliveTimeoutMs: { env: 'HTTP_KEEPALIVE_TIMEOUT_MS', kind: duration(), default: 5000, unit: 'ms', doc: 'idle HTTP keep-alive connections are closed after this' },
    basePath: {
      env: 'BASE_PATH',
      kind: string({ allowed: 'a URL path such as /camrelay: starting with "/", no trailing "/", segments of letters, digits and ._~- only (no "." or "..")', test: (s) => BASE_PATH_RE.test(s) }),
      doc: 'serve every HTTP route, redirect, link and the sign-in cookie under this path prefix (a proxy that passes /camrelay/... through unchanged); /healthz and /readyz also answer at /; unset = at /',
    },
    snapshotCacheS: { env: 'SNAPSHOT_CACHE_S', kind: int({ min: 0, max: 86_400 }), default: 0, unit: 's', doc: 'seconds (HTTP max-age is in seconds) that shared caches may keep a snapshot of a camera anyone may see (public, or no viewer credentials at all, and ALLOW_CIDRS empty): Cache-Control: public, max-age=N; other snapshots stay no-store; 0 = no-store for all' },

    allow: { env: 'ALLOW_CIDRS', kind: cidrs(), default: new CidrList([]), group: 'Access control (the default is OPEN, like the seed: anyone who reaches the ports sees the camera)', doc: 'comma-separated CIDRs allowed on every client outlet (raw TCP included); empty = open to everyone' },
    viewerToken: { env: 'VIEWER_TOKEN', kind: secret(8), doc: 'HTTP outlets require ?token=... or "Authorization: Bearer ..."; unset = no token' },
    viewerUser: { env: 'VIEWER_USER', kind: string({ allowed: 'a user name without ":"', test: (s) => !s.includes(':') }), default: 'viewer', doc: 'HTTP basic auth user name (used when VIEWER_PASSWORD is set)' },
    viewerPassword: { env: 'VIEWER_PASSWORD', kind: secret(8), doc: 'HTTP basic auth password for the HTTP outlets; unset = no password' },
    trustedProxies: {
      env: 'TRUSTED_PROXY_CIDRS', kind: cidrs(), default: new CidrList([]),
      doc: 'reverse proxies (e.g. Caddy) whose Forwarded / X-Forwarded-For / X-Forwarded-Proto headers the HTTP outlet believes: behind them the real client address counts for ALLOW_CIDRS, MAX_CLIENTS_PER_IP and the sign-in limit, per request; from any other address these headers are ignored; empty = trust no proxy',
    },
    sessionTtlMs: { env: 'SESSION_TTL_MS', kind: ms({ min: 60_000, max: 366 * DAY_MS }), default: 7 * DAY_MS, unit: 'ms', doc: 'lifetime of the sign-in cookie that the HTTPS sign-in form sets (the cookie is also revoked when VIEWER_USER, VIEWER_PASSWORD, VIEWER_TOKEN or SESSION_SECRET change)' },
    sessionSecret: { env: 'SESSION_SECRET', kind: secret(16), doc: 'extra secret in the salt of the sign-in cookie key (change it to sign everyone out); with it a stolen cookie cannot be used to guess the viewer credentials offline; unset = the key is derived (scrypt, once at start) from the viewer credentials alone' },

    snapshotCron: {
      env: 'SNAPSHOT_CRON', group: 'Archive', yaml: 'snapshot_cron', perCamera: true,
      kind: string({ allowed: 'a node-cron expression such as "0 */5 * * * *" (sec min hour day month weekday) or empty for off', test: (s) => validateCron(s) }),
      doc: 'node-cron expression (6 fields = with seconds) for archive snapshots; unset = archive off',
    },
    snapshotDir: { env: 'SNAPSHOT_DIR', kind: string(), default: '/var/lib/camrelay/snapshots', doc: 'where snapshots are written (UTC timestamp names, atomic)' },
    snapshotKeep: { env: 'SNAPSHOT_KEEP', kind: int({ min: 0, max: 10_000_000 }), default: 0, yaml: 'snapshot_keep', perCamera: true, doc: 'keep at most this many snapshots; 0 = no count limit' },
    snapshotMaxAgeHours: { env: 'SNAPSHOT_MAX_AGE_HOURS', kind: number({ min: 0, max: 87_600 }), default: 0, unit: 'hours', yaml: 'snapshot_max_age_hours', perCamera: true, doc: 'delete snapshots older than this; 0 = no age limit' },
    snapshotMaxFrameAgeMs: { env: 'SNAPSHOT_MAX_FRAME_AGE_MS', kind: duration(), default: 10_000, unit: 'ms', yaml: 'snapshot_max_frame_age_ms', perCamera: true, doc: 'do not archive a frame older than this (camera down)' },
    snapshotWriteTimeoutMs: { env: 'SNAPSHOT_WRITE_TIMEOUT_MS', kind: duration(), default: 10_000, unit: 'ms', doc: 'deadline of every archive file operation; a disk that misses it is counted as hung (reason timeout) and skipped, one operation at a time, until it answers' },

    shutdownGraceMs: { env: 'SHUTDOWN_GRACE_MS', kind: duration(0), default: 5000, unit: 'ms', group: 'Process', doc: 'on SIGTERM, in-flight sends get this long before they are cut' },
    logLevel: { env: 'LOG_LEVEL', kind: logLevel(), default: 'info', doc: 'log level' },
  },
});

export type RelaySettings = SettingValues<typeof RELAY_SETTINGS.settings>;

function sourceOf(v: RelaySettings): SourceConfig {
  return {
    mode: v.cameraMode,
    host: v.cameraHost,
    port: v.cameraPort,
    connectTimeoutMs: v.connectTimeoutMs,
    idleTimeoutMs: v.idleTimeoutMs,
    deadlineMs: v.deadlineMs,
    frameMaxBytes: v.frameMaxBytes,
    retryBaseMs: v.retryBaseMs,
    retryMaxMs: v.retryMaxMs,
    maxFps: v.maxFps,
    idleFps: v.idleFps,
    staleAfterIdleMs: v.staleAfterIdleMs,
  };
}

function ingestOf(v: RelaySettings): IngestConfig {
  return { host: v.ingestHost, port: v.ingestPort, allow: v.ingestAllow, maxConnections: v.ingestMaxConnections, upWindowMs: v.pushUpWindowMs };
}

function archiveOf(v: RelaySettings, dir: string): ArchiveConfig {
  return {
    cron: v.snapshotCron,
    dir,
    keep: v.snapshotKeep,
    maxAgeHours: v.snapshotMaxAgeHours,
    maxFrameAgeMs: v.snapshotMaxFrameAgeMs,
    writeTimeoutMs: v.snapshotWriteTimeoutMs,
  };
}

/** yaml key of a setting, for key paths in per-camera errors */
function yamlKey(k: keyof typeof RELAY_SETTINGS.settings): string {
  return (RELAY_SETTINGS.settings[k] as { yaml?: string }).yaml ?? String(k);
}

/** One camera of the list: the global values overridden by its entry, with the cross-field checks at its key path. */
function cameraOf(e: CameraEntry, global: RelaySettings): CameraConfig {
  const path = `cameras.${e.name}`;
  const over = RELAY_SETTINGS.validateOverrides(ownPortsOut(e.settings), path) as Partial<RelaySettings>;
  const v: RelaySettings = { ...global, ...over };
  const name = (k: keyof typeof RELAY_SETTINGS.settings) => (k in over ? yamlKey(k) : RELAY_SETTINGS.settings[k].env);
  if (v.retryMaxMs < v.retryBaseMs) {
    throw new KeyPathError(`${path}.${yamlKey('retryMaxMs')}`, v.retryMaxMs, `an integer >= ${name('retryBaseMs')} (${v.retryBaseMs})`);
  }
  if (v.maxFps > 0 && v.idleFps > v.maxFps) {
    throw new KeyPathError(`${path}.${yamlKey('idleFps')}`, v.idleFps, `a number from 0 to ${name('maxFps')} (${v.maxFps})`);
  }
  const source = sourceOf(v);
  source.mode = e.mode;
  // where the relay reaches the camera: host/port when given; else the tunnel end (CAMERA_HOST,
  // tunnel_port) for a camera behind the tunnel, else CAMERA_HOST/CAMERA_PORT
  if (over.cameraPort === undefined && e.tunnelPort !== undefined) source.port = e.tunnelPort;
  const ingest = ingestOf(v);
  if (e.ingestPort !== undefined) ingest.port = e.ingestPort;
  return {
    name: e.name,
    public: e.public,
    source,
    ingest,
    rawPort: e.rawPort,
    maxFrameAgeMs: v.maxFrameAgeMs,
    frozenAfterMs: v.frozenAfterMs,
    archive: archiveOf(v, joinDir(global.snapshotDir, e.name)),
  };
}

/** raw_port and ingest_port are checked by the list itself (1-65535, unique), not as the 0-allowing env settings */
function ownPortsOut(settings: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { raw_port: _raw, ingest_port: _ingest, ...rest } = settings;
  return rest;
}

function joinDir(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

/** One entry's per-camera settings, checked as the relay reads them (key paths in errors). */
function validateCameraSettings(settings: Readonly<Record<string, unknown>>, path: string): void {
  RELAY_SETTINGS.validateOverrides(ownPortsOut(settings), path);
}

/**
 * The relay's checks of a camera list, for the stack's generator (relay/src/stack-cli.ts, run in the
 * relay's image by `make up-vps` / `make reload`): every value and the cross-field checks, against the
 * default global settings, so a list the relay would refuse never reaches it.
 */
export const RELAY_LIST_CHECKS: ListChecks = {
  validate: validateCameraSettings,
  check: (entries) => {
    const global = RELAY_SETTINGS.parse({}).values;
    for (const e of entries) cameraOf(e, global);
  },
};

/**
 * Reads CAMERAS_FILE into cameras (file order), each resolved against the global values. Throws a
 * ConfigError naming the key path. Used at start-up and on every SIGHUP reload.
 */
export function loadCameras(file: string, global: RelaySettings): CameraConfig[] {
  const entries = loadCameraList(file, {
    validate: validateCameraSettings,
    reservedPorts: { HTTP_PORT: global.httpPort, METRICS_PORT: global.metricsPort },
  });
  return entries.map((e) => deepFreeze(cameraOf(e, global)));
}

function build(p: Parsed<typeof RELAY_SETTINGS.settings>): RelayConfig {
  const v = p.values;
  if (v.retryMaxMs < v.retryBaseMs) throw p.error('retryMaxMs', `an integer >= ${p.name('retryBaseMs')} (${v.retryBaseMs})`);
  if (v.maxFps > 0 && v.idleFps > v.maxFps) throw p.error('idleFps', `a number from 0 to ${p.name('maxFps')} (${v.maxFps})`);
  if (v.camerasFile !== undefined && v.camerasFile.trim() === '') throw p.error('camerasFile', 'a path to a YAML camera list, or unset');

  const source = sourceOf(v);
  const ingest = ingestOf(v);
  const clients: ClientConfig = {
    bindHost: v.bindHost,
    rawPort: v.rawPort,
    httpPort: v.httpPort,
    maxFrameAgeMs: v.maxFrameAgeMs,
    waitTimeoutMs: v.waitTimeoutMs,
    maxClients: v.maxClients,
    maxClientsPerIp: v.maxClientsPerIp,
    writeTimeoutMs: v.writeTimeoutMs,
    headersTimeoutMs: v.headersTimeoutMs,
    keepAliveTimeoutMs: v.keepAliveTimeoutMs,
    allow: v.allow,
    viewerToken: v.viewerToken,
    viewerUser: v.viewerUser,
    viewerPassword: v.viewerPassword,
    trustedProxies: v.trustedProxies,
    basePath: v.basePath ?? '',
    snapshotCacheS: v.snapshotCacheS,
    sessionTtlMs: v.sessionTtlMs,
    sessionSecret: v.sessionSecret,
  };
  const metrics = { host: v.metricsHost, port: v.metricsPort };
  const archive = archiveOf(v, v.snapshotDir);

  // Two outlets on one fixed port would fail later with a less helpful EADDRINUSE.
  const list = v.camerasFile !== undefined;
  const fixed: [keyof typeof RELAY_SETTINGS.settings, number][] = [
    ['httpPort', clients.httpPort],
    ['metricsPort', metrics.port],
  ];
  if (!list) fixed.unshift(['rawPort', clients.rawPort]);
  if (!list && source.mode === 'push') fixed.push(['ingestPort', ingest.port]);
  for (let i = 0; i < fixed.length; i++) {
    for (let j = 0; j < i; j++) {
      if (fixed[i][1] !== 0 && fixed[i][1] === fixed[j][1]) {
        throw p.error(fixed[i][0], `a port different from ${p.name(fixed[j][0])} (${fixed[j][1]})`);
      }
    }
  }

  const cameras: CameraConfig[] = list
    ? loadCameras(v.camerasFile as string, v)
    : [{ name: v.cameraName, public: false, source, ingest, rawPort: clients.rawPort, maxFrameAgeMs: clients.maxFrameAgeMs, frozenAfterMs: v.frozenAfterMs, archive }];
  if (list) {
    // the relay-wide fields describe the first camera (readiness defaults, the start-up log line)
    const first = cameras[0];
    return {
      camerasFile: v.camerasFile, cameras, source: first.source, ingest: first.ingest, clients: { ...clients, rawPort: first.rawPort, maxFrameAgeMs: first.maxFrameAgeMs },
      metrics, archive: { ...archive }, shutdownGraceMs: v.shutdownGraceMs, logLevel: v.logLevel, settings: v,
    };
  }
  return { camerasFile: undefined, cameras, source, ingest, clients, metrics, archive, shutdownGraceMs: v.shutdownGraceMs, logLevel: v.logLevel, settings: v };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof CidrList) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export type ConfigResult = { help: true } | { help: false; config: RelayConfig; warnings: readonly string[] };

/**
 * Parses the command line and the environment. Flags override their variables; an error in a value
 * given by flag names the flag.
 */
export function loadConfig(argv: readonly string[], env: Env): ConfigResult {
  const args = RELAY_SETTINGS.parseArgv(argv);
  if (args.help) return { help: true };
  const parsed = RELAY_SETTINGS.parse(env, args.flags);
  return { help: false, config: deepFreeze(build(parsed)), warnings: parsed.warnings };
}

export function usage(): string {
  return RELAY_SETTINGS.help();
}
