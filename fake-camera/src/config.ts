/**
 * Fake camera configuration: env vars (for Docker) overridden by command-line flags, every setting
 * declared once in FAKE_CAMERA_SETTINGS (common/src/settings.ts): parsing, --help, the FakeCamera
 * constructor's defaults, docs/configuration.md and the .env.example check come from it. A bad value
 * throws ConfigError naming the flag or variable, the value and what is allowed (main exits 2).
 */
import { defineSettings, Env, int, LogLevel, logLevel, ms, number, oneOf, port, string } from '@camrelay/common';

export const MODES = ['ok', 'truncated', 'not-jpeg', 'empty', 'reset', 'hang-accept', 'hang-mid', 'oversize', 'refused', 'frozen', 'flaky'] as const;
export type Mode = (typeof MODES)[number];

export interface FakeCameraConfig {
  host: string;
  port: number;
  mode: Mode;
  captureMs: number;
  linkKbps: number;
  width: number;
  height: number;
  quality: number;
  ringSize: number;
  sizeKb: number;
  oversizeMb: number;
  seed: number;
  faultRate: number;
  hangMs: number;
  refusedMs: number;
  /** push mode: where to send frames; undefined = listen on port */
  pushTo: string | undefined;
  pushRetryMs: number;
  /** undefined = no control endpoint. */
  controlPort: number | undefined;
  controlHost: string;
  logLevel: LogLevel;
}

export const FAKE_CAMERA_SETTINGS = defineSettings({
  program: 'fake-camera',
  section: 'fake-camera',
  usage: 'camrelay-fake-camera [options]   (node fake-camera/dist/main.js)',
  intro:
    'An ESP32-CAM simulator for tests and the demo: each TCP connection gets ONE JPEG, then the connection closes; ' +
    'one client is served at a time. Control endpoint (when enabled): GET /stats, POST /mode?m=<mode> (or PUT), GET /healthz.',
  settings: {
    port: { env: 'FAKE_CAMERA_PORT', flag: 'port', metavar: 'N', kind: port(0), default: 1234, doc: 'listen port; 0 = a free port' },
    host: { env: 'FAKE_CAMERA_HOST', flag: 'host', metavar: 'ADDR', kind: string(), default: '0.0.0.0', doc: 'listen address' },
    mode: { env: 'FAKE_CAMERA_MODE', flag: 'mode', metavar: 'M', kind: oneOf(MODES), default: 'ok', doc: 'behaviour: ok, or a fault mode; flaky picks a fault per connection' },
    captureMs: { env: 'FAKE_CAMERA_CAPTURE_MS', flag: 'capture-ms', metavar: 'N', kind: ms({ min: 0, max: 600_000 }), default: 40, unit: 'ms', doc: 'capture delay per frame (40 = at most 25 frames/s)' },
    linkKbps: { env: 'FAKE_CAMERA_LINK_KBPS', flag: 'link-kbps', metavar: 'N', kind: int({ min: 0, max: 10_000_000 }), default: 0, unit: 'kbit/s', doc: 'link rate per frame; 0 = unlimited' },
    width: { env: 'FAKE_CAMERA_WIDTH', flag: 'width', metavar: 'N', kind: int({ min: 16, max: 4096 }), default: 640, unit: 'pixels', doc: 'image width (640x480 gives about 50 KB per frame)' },
    height: { env: 'FAKE_CAMERA_HEIGHT', flag: 'height', metavar: 'N', kind: int({ min: 16, max: 4096 }), default: 480, unit: 'pixels', doc: 'image height' },
    quality: { env: 'FAKE_CAMERA_QUALITY', flag: 'quality', metavar: 'N', kind: int({ min: 1, max: 100 }), default: 80, doc: 'JPEG quality' },
    ringSize: { env: 'FAKE_CAMERA_RING', flag: 'ring', metavar: 'N', kind: int({ min: 1, max: 256 }), default: 16, doc: 'distinct pre-encoded images' },
    sizeKb: { env: 'FAKE_CAMERA_SIZE_KB', flag: 'size-kb', metavar: 'N', kind: int({ min: 0, max: 65_536 }), default: 0, unit: 'KiB', doc: 'pad every frame to at least this size; 0 = natural size' },
    oversizeMb: { env: 'FAKE_CAMERA_OVERSIZE_MB', flag: 'oversize-mb', metavar: 'N', kind: number({ min: 0.1, max: 512 }), default: 8, unit: 'MiB', doc: "size of the 'oversize' fault's valid JPEG" },
    seed: { env: 'FAKE_CAMERA_SEED', flag: 'seed', metavar: 'N', kind: int({ min: 0, max: 2 ** 32 - 1 }), default: 1, doc: 'PRNG seed of the flaky mode' },
    faultRate: { env: 'FAKE_CAMERA_FAULT_RATE', flag: 'fault-rate', metavar: 'F', kind: number({ min: 0, max: 1 }), default: 0.3, doc: 'flaky mode: fault probability per connection' },
    hangMs: { env: 'FAKE_CAMERA_HANG_MS', flag: 'hang-ms', metavar: 'N', kind: ms({ min: 0, max: 86_400_000 }), default: 0, unit: 'ms', doc: 'how long hang-* modes hold a connection; 0 = until the client closes' },
    refusedMs: { env: 'FAKE_CAMERA_REFUSED_MS', flag: 'refused-ms', metavar: 'N', kind: ms({ min: 0, max: 600_000 }), default: 1000, unit: 'ms', doc: "flaky 'refused' faults close the port this long" },
    pushTo: {
      env: 'FAKE_CAMERA_PUSH_TO', flag: 'push-to', metavar: 'HOST:PORT',
      kind: string({ allowed: 'host:port, e.g. relay:1236', test: (s) => parseHostPort(s) !== undefined }),
      doc: "push mode (the seed's Option 3): instead of listening, connect to HOST:PORT and send one JPEG per connection, one after the other (the fault modes apply per connection; `refused` pushes nothing); unset = listen on FAKE_CAMERA_PORT",
    },
    pushRetryMs: { env: 'FAKE_CAMERA_PUSH_RETRY_MS', flag: 'push-retry-ms', metavar: 'N', kind: ms({ min: 10, max: 600_000 }), default: 1000, unit: 'ms', doc: 'push mode: wait this long after the target refused or was unreachable' },
    controlPort: { env: 'FAKE_CAMERA_CONTROL_PORT', flag: 'control-port', metavar: 'N', kind: port(0), doc: 'HTTP control endpoint port, 0 = a free port; unset = off. Keep it on a private network' },
    controlHost: { env: 'FAKE_CAMERA_CONTROL_HOST', flag: 'control-host', metavar: 'ADDR', kind: string(), default: '127.0.0.1', doc: 'control endpoint address' },
    logLevel: { env: 'LOG_LEVEL', flag: 'log-level', metavar: 'L', kind: logLevel(), default: 'info', doc: 'log level' },
  },
});

/** `host:port` (`[v6]:port`) -> its parts; undefined when it is not one. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 ? { host: m[1] ?? m[2], port } : undefined;
}

/** The declared defaults; the FakeCamera constructor uses them for options it is not given. */
export const DEFAULTS = FAKE_CAMERA_SETTINGS.defaults();

export const USAGE = FAKE_CAMERA_SETTINGS.help();

export type ParsedArgs = { help: true } | { help: false; flags: Record<string, string> };

/** Parses `--flag value` and `--flag=value` (node:util parseArgs, strict); unknown flags or a missing value throw. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  return FAKE_CAMERA_SETTINGS.parseArgv(argv);
}

export function loadConfig(env: Env, flags: Record<string, string> = {}): FakeCameraConfig {
  return Object.freeze({ ...FAKE_CAMERA_SETTINGS.parse(env, flags).values });
}
