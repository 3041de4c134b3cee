/**
 * The camera list (CAMERAS_FILE, YAML): the single description of a deployment's cameras. The relay
 * derives its sources and outlets from it, the tunnel-agent its `-R` forwards, the tunnel-server the
 * ports it permits, the stack the ports it publishes. Both machines read the same file.
 *
 * ```yaml
 * cameras:
 *   front:                      # ^[a-z0-9][a-z0-9-]{0,31}$: URLs, metric label `camera`, archive dir
 *     lan: 192.168.1.100:1234   # home side: where the tunnel-agent reaches the camera
 *     raw_port: 8080            # VPS side: the camera's raw TCP outlet (required, unique)
 *     tunnel_port: 18080        # optional; default raw_port + 10000
 *     max_fps: 10               # any per-camera setting (docs/configuration.md, "Camera key")
 * ```
 *
 * The tunnel port of a camera defaults to raw_port + TUNNEL_PORT_OFFSET: it depends on nothing but
 * the camera's own entry, so reordering or removing other entries changes no port.
 *
 * This module checks the list's own structure (names, `lan`, ports and their clashes, `public`,
 * `tunnel_port`); the relay's per-camera settings are checked by the caller's settings table
 * (`validate`), so every error names the key path: `cameras.garden.raw_port: 80808 is not a port (1-65535)`.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';
import { parseDocument } from 'yaml';
import { ConfigError } from './config';
import { KeyPathError } from './settings';

export const CAMERA_NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const TUNNEL_PORT_OFFSET = 10_000;

/** Keys the list itself owns; everything else in an entry is a per-camera setting. */
export const CAMERA_LIST_KEYS = ['lan', 'tunnel_port', 'public'] as const;

/**
 * The relay's per-camera setting keys (relay/src/config.ts, `perCamera: true`), for the processes that
 * do not load the relay's table (tunnel-agent, stack generator). A relay unit test keeps them equal.
 */
export const CAMERA_SETTING_KEYS: readonly string[] = [
  'mode', 'host', 'port', 'connect_timeout_ms', 'idle_timeout_ms', 'deadline_ms', 'frame_max_bytes', 'retry_base_ms',
  'retry_max_ms', 'max_fps', 'idle_fps', 'stale_after_idle_ms', 'frozen_after_ms', 'ingest_port', 'ingest_allow_cidrs', 'push_up_window_ms',
  'raw_port', 'max_frame_age_ms', 'snapshot_cron', 'snapshot_keep', 'snapshot_max_age_hours', 'snapshot_max_frame_age_ms',
];

export type CameraMode = 'pull' | 'push';

export interface CameraEntry {
  readonly name: string;
  readonly mode: CameraMode;
  /** home side: where the tunnel-agent reaches the camera (pull cameras behind the tunnel) */
  readonly lan?: { readonly host: string; readonly port: number };
  /** tunnel-server side of this camera's forward; set when `lan` is */
  readonly tunnelPort?: number;
  readonly rawPort: number;
  /** push cameras: the relay's ingest port for this camera */
  readonly ingestPort?: number;
  /** true: viewers need no credentials for this camera */
  readonly public: boolean;
  /** the entry's per-camera settings as written (file keys), already validated by `validate` */
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface CameraListOptions {
  /**
   * Validates one entry's per-camera settings (file keys; the list's own keys are left out) and
   * throws a ConfigError naming the key path. The relay passes its settings table; the agent a check
   * of the key names only.
   */
  validate(settings: Record<string, unknown>, path: string): void;
  /** ports no camera may use (name -> port), e.g. HTTP_PORT and METRICS_PORT */
  reservedPorts?: Readonly<Record<string, number>>;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;

function portAt(path: string, v: unknown): number {
  if (!isPort(v)) throw new KeyPathError(path, v, 'a port (1-65535)');
  return v;
}

function parseLan(path: string, v: unknown): { host: string; port: number } {
  const allowed = 'host:port, e.g. 192.168.1.100:1234 ([v6:addr]:port for IPv6)';
  if (typeof v !== 'string') throw new KeyPathError(path, v, allowed);
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v.trim());
  const host = m ? (m[1] ?? m[2]) : '';
  const port = m ? Number(m[3]) : NaN;
  if (!m || !isPort(port) || (m[1] !== undefined ? isIP(host) !== 6 : !(isIP(host) === 4 || HOSTNAME_RE.test(host)))) {
    throw new KeyPathError(path, v, allowed);
  }
  return { host, port };
}

/** Parses and validates the text of a camera list. `file` names it in YAML syntax errors. */
export function parseCameraList(text: string, file: string, opts: CameraListOptions): CameraEntry[] {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0].line;
    throw new ConfigError('CAMERAS_FILE', file, `valid YAML (${line !== undefined ? `line ${line}: ` : ''}${e.message.split('\n')[0]})`);
  }
  const root: unknown = doc.toJS();
  if (!isObject(root) || !('cameras' in root)) {
    throw new KeyPathError('cameras', root, 'a mapping', `missing: the file must have a top-level "cameras:" mapping of camera name -> settings`);
  }
  for (const k of Object.keys(root)) {
    if (k !== 'cameras') throw new KeyPathError(k, root[k], 'cameras', 'unknown top-level key (allowed: cameras)');
  }
  const cams = root.cameras;
  if (!isObject(cams) || Object.keys(cams).length === 0) {
    throw new KeyPathError('cameras', cams, 'a mapping', `${JSON.stringify(cams) ?? String(cams)} is not a non-empty mapping of camera name -> settings`);
  }

  const used = new Map<number, string>();
  for (const [name, port] of Object.entries(opts.reservedPorts ?? {})) if (port > 0) used.set(port, name);
  const claim = (path: string, port: number): void => {
    const other = used.get(port);
    if (other !== undefined) throw new KeyPathError(path, port, 'a free port', `${port} is already used by ${other}`);
    used.set(port, path);
  };

  const out: CameraEntry[] = [];
  for (const [name, raw] of Object.entries(cams)) {
    const path = `cameras.${name}`;
    if (!CAMERA_NAME_RE.test(name)) {
      throw new KeyPathError(path, name, 'a name', `"${name}" is not a camera name (lower-case letters, digits and "-", starting with a letter or digit, at most 32 characters)`);
    }
    const entry: Record<string, unknown> = raw === null ? {} : (raw as Record<string, unknown>);
    if (!isObject(entry)) throw new KeyPathError(path, raw, 'a mapping of settings', `${JSON.stringify(raw)} is not a mapping of settings`);
    const settings: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(entry)) if (!(CAMERA_LIST_KEYS as readonly string[]).includes(k)) settings[k] = v;
    opts.validate(settings, path);

    const mode: CameraMode = entry.mode === 'push' ? 'push' : 'pull';
    if (entry.raw_port === undefined) throw new KeyPathError(`${path}.raw_port`, undefined, 'a port', 'missing: every camera needs its own raw_port (1-65535)');
    const rawPort = portAt(`${path}.raw_port`, entry.raw_port);
    claim(`${path}.raw_port`, rawPort);
    if (entry.public !== undefined && typeof entry.public !== 'boolean') throw new KeyPathError(`${path}.public`, entry.public, 'true or false');

    let lan: CameraEntry['lan'];
    let tunnelPort: number | undefined;
    let ingestPort: number | undefined;
    if (mode === 'push') {
      if (entry.lan !== undefined) throw new KeyPathError(`${path}.lan`, entry.lan, 'absent', 'not used by a push camera (it connects out to its ingest_port)');
      if (entry.ingest_port === undefined) throw new KeyPathError(`${path}.ingest_port`, undefined, 'a port', 'missing: a push camera needs its own ingest_port (1-65535)');
      ingestPort = portAt(`${path}.ingest_port`, entry.ingest_port);
      claim(`${path}.ingest_port`, ingestPort);
    } else {
      if (entry.ingest_port !== undefined) throw new KeyPathError(`${path}.ingest_port`, entry.ingest_port, 'absent', 'only a push camera (mode: push) has an ingest_port');
      if (entry.lan !== undefined) {
        lan = parseLan(`${path}.lan`, entry.lan);
        if (entry.tunnel_port !== undefined) tunnelPort = portAt(`${path}.tunnel_port`, entry.tunnel_port);
        else {
          tunnelPort = rawPort + TUNNEL_PORT_OFFSET;
          if (tunnelPort > 65535) {
            throw new KeyPathError(`${path}.tunnel_port`, tunnelPort, 'a port', `raw_port + ${TUNNEL_PORT_OFFSET} = ${tunnelPort} is not a port: set tunnel_port (1-65535)`);
          }
        }
        claim(`${path}.tunnel_port`, tunnelPort);
      } else if (entry.tunnel_port !== undefined) {
        throw new KeyPathError(`${path}.tunnel_port`, entry.tunnel_port, 'absent', 'only a camera reached through the tunnel (lan: host:port) has a tunnel_port');
      }
      if (lan === undefined && entry.host === undefined) {
        throw new KeyPathError(`${path}.lan`, undefined, 'host:port', 'missing: a pull camera needs lan (reached through the tunnel) or host/port (reached by the relay directly)');
      }
    }
    out.push(Object.freeze({ name, mode, lan, tunnelPort, rawPort, ingestPort, public: entry.public === true, settings: Object.freeze(settings) }));
  }
  return out;
}

/** Reads and parses CAMERAS_FILE; an unreadable file is a ConfigError naming it. */
export function loadCameraList(file: string, opts: CameraListOptions): CameraEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('CAMERAS_FILE', file, `a readable file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseCameraList(text, file, opts);
}

/**
 * A validator for processes that do not apply the relay's settings (the tunnel-agent, the stack
 * generator): only the key names are checked, against the relay's per-camera keys.
 */
export function keysOnly(allowed: readonly string[] = CAMERA_SETTING_KEYS): CameraListOptions['validate'] {
  return (settings, path) => {
    for (const k of Object.keys(settings)) {
      if (!allowed.includes(k)) {
        const all = [...CAMERA_LIST_KEYS, ...allowed].join(', ');
        throw new KeyPathError(`${path}.${k}`, settings[k], `one of the keys ${all}`, `unknown key (allowed: ${all})`);
      }
    }
  };
}
