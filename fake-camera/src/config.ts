/**
 * Fake camera configuration: env vars (for Docker) overridden by command-line flags. A bad value
 * throws ConfigError naming the flag or variable, the value and what is allowed (main exits 2).
 */
import { ConfigError, Env, LogLevel, readInt, readLogLevel, readNumber, readOptionalString, readPort, readEnum, readString } from '@camrelay/common';
import { Mode, MODES } from './camera';

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
  /** undefined = no control endpoint. */
  controlPort: number | undefined;
  controlHost: string;
  logLevel: LogLevel;
}

/** flag name → env var it overrides. */
export const FLAGS = {
  '--host': 'FAKE_CAMERA_HOST',
  '--port': 'FAKE_CAMERA_PORT',
  '--mode': 'FAKE_CAMERA_MODE',
  '--capture-ms': 'FAKE_CAMERA_CAPTURE_MS',
  '--link-kbps': 'FAKE_CAMERA_LINK_KBPS',
  '--width': 'FAKE_CAMERA_WIDTH',
  '--height': 'FAKE_CAMERA_HEIGHT',
  '--quality': 'FAKE_CAMERA_QUALITY',
  '--ring': 'FAKE_CAMERA_RING',
  '--size-kb': 'FAKE_CAMERA_SIZE_KB',
  '--oversize-mb': 'FAKE_CAMERA_OVERSIZE_MB',
  '--seed': 'FAKE_CAMERA_SEED',
  '--fault-rate': 'FAKE_CAMERA_FAULT_RATE',
  '--hang-ms': 'FAKE_CAMERA_HANG_MS',
  '--refused-ms': 'FAKE_CAMERA_REFUSED_MS',
  '--control-port': 'FAKE_CAMERA_CONTROL_PORT',
  '--control-host': 'FAKE_CAMERA_CONTROL_HOST',
  '--log-level': 'LOG_LEVEL',
} as const;

export const USAGE = `Usage: camrelay-fake-camera [options]   (node fake-camera/dist/main.js)

An ESP32-CAM simulator: each TCP connection gets ONE JPEG, then the connection closes.
One client is served at a time. Flags override the env var named in brackets.

  --port N            listen port; 0 = a free port (FAKE_CAMERA_PORT, default 1234)
  --host ADDR         listen address (FAKE_CAMERA_HOST, default 0.0.0.0)
  --mode M            ${MODES.join(' | ')} (FAKE_CAMERA_MODE, default ok)
  --capture-ms N      capture delay per frame (FAKE_CAMERA_CAPTURE_MS, default 40 = 25 fps max)
  --link-kbps N       link rate per frame in kbit/s, 0 = unlimited (FAKE_CAMERA_LINK_KBPS, default 0)
  --width N           image width (FAKE_CAMERA_WIDTH, default 640)
  --height N          image height (FAKE_CAMERA_HEIGHT, default 480)
  --quality N         JPEG quality 1-100 (FAKE_CAMERA_QUALITY, default 80)
  --ring N            distinct pre-encoded images (FAKE_CAMERA_RING, default 16)
  --size-kb N         pad every frame to at least N KiB, 0 = natural size (FAKE_CAMERA_SIZE_KB, default 0)
  --oversize-mb N     size of the 'oversize' fault's valid JPEG, MiB (FAKE_CAMERA_OVERSIZE_MB, default 8)
  --seed N            seed of the flaky mode (FAKE_CAMERA_SEED, default 1)
  --fault-rate F      fault probability per connection in flaky mode, 0..1 (FAKE_CAMERA_FAULT_RATE, default 0.3)
  --hang-ms N         how long hang-* modes hold a connection, 0 = until the client closes (FAKE_CAMERA_HANG_MS, default 0)
  --refused-ms N      flaky 'refused' faults close the port this long (FAKE_CAMERA_REFUSED_MS, default 1000)
  --control-port N    HTTP control endpoint port, 0 = a free port; unset = off (FAKE_CAMERA_CONTROL_PORT)
  --control-host ADDR control endpoint address (FAKE_CAMERA_CONTROL_HOST, default 127.0.0.1)
  --log-level L       fatal|error|warn|info|debug|trace|silent (LOG_LEVEL, default info)
  --help              this text

Control endpoint: GET /stats, POST /mode?m=<mode> (or PUT), GET /healthz.
`;

export type ParsedArgs = { help: true } | { help: false; flags: Record<string, string> };

/** Parses `--flag value` and `--flag=value`; unknown flags or a missing value throw ConfigError. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') return { help: true };
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(0, eq) : a;
    if (!(name in FLAGS)) throw new ConfigError(name, a, `one of the options ${Object.keys(FLAGS).join(', ')}, --help`);
    let value: string | undefined;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new ConfigError(name, '', 'a value after the option');
    flags[name] = value;
  }
  return { help: false, flags };
}

/** Reads one setting: from its flag when given (errors name the flag), else from its env var. */
function pick<T>(env: Env, flags: Record<string, string>, flag: keyof typeof FLAGS, read: (e: Env, name: string) => T): T {
  if (flag in flags) return read({ [flag]: flags[flag] }, flag);
  return read(env, FLAGS[flag]);
}

export function loadConfig(env: Env, flags: Record<string, string> = {}): FakeCameraConfig {
  const controlPort = pick(env, flags, '--control-port', (e, n) => (readOptionalString(e, n) === undefined ? undefined : readPort(e, n, 0)));
  return Object.freeze({
    host: pick(env, flags, '--host', (e, n) => readString(e, n, '0.0.0.0')),
    port: pick(env, flags, '--port', (e, n) => readPort(e, n, 1234)),
    mode: pick(env, flags, '--mode', (e, n) => readEnum(e, n, 'ok', MODES)),
    captureMs: pick(env, flags, '--capture-ms', (e, n) => readInt(e, n, 40, { min: 0, max: 600_000 })),
    linkKbps: pick(env, flags, '--link-kbps', (e, n) => readInt(e, n, 0, { min: 0, max: 10_000_000 })),
    width: pick(env, flags, '--width', (e, n) => readInt(e, n, 640, { min: 16, max: 4096 })),
    height: pick(env, flags, '--height', (e, n) => readInt(e, n, 480, { min: 16, max: 4096 })),
    quality: pick(env, flags, '--quality', (e, n) => readInt(e, n, 80, { min: 1, max: 100 })),
    ringSize: pick(env, flags, '--ring', (e, n) => readInt(e, n, 16, { min: 1, max: 256 })),
    sizeKb: pick(env, flags, '--size-kb', (e, n) => readInt(e, n, 0, { min: 0, max: 65_536 })),
    oversizeMb: pick(env, flags, '--oversize-mb', (e, n) => readNumber(e, n, 8, { min: 0.1, max: 512 })),
    seed: pick(env, flags, '--seed', (e, n) => readInt(e, n, 1, { min: 0, max: 2 ** 32 - 1 })),
    faultRate: pick(env, flags, '--fault-rate', (e, n) => readNumber(e, n, 0.3, { min: 0, max: 1 })),
    hangMs: pick(env, flags, '--hang-ms', (e, n) => readInt(e, n, 0, { min: 0, max: 86_400_000 })),
    refusedMs: pick(env, flags, '--refused-ms', (e, n) => readInt(e, n, 1000, { min: 0, max: 600_000 })),
    controlPort,
    controlHost: pick(env, flags, '--control-host', (e, n) => readString(e, n, '127.0.0.1')),
    logLevel: pick(env, flags, '--log-level', (e, n) => readLogLevel(e, n)),
  });
}
