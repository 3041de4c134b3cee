/**
 * One declaration per setting. A daemon lists its settings once (env name, optional flag, optional
 * camera-list key, default, kind with its range, unit, doc, old or equivalent names) in a SettingsTable; from that
 * table come:
 *   - parsing and validation of the environment and of the command line (node:util parseArgs, strict;
 *     a flag overrides its variable and an error in its value names the flag),
 *   - `--help` text, the tables of docs/configuration.md (scripts/gen-config-docs.js) and the
 *     .env.example check (a unit test per daemon),
 *   - validation of a nested object of per-camera overrides (the camera list), reporting key paths.
 * Errors are ConfigErrors naming the variable (flag, old name or key path), the bad value and what is
 * allowed; secrets are never echoed. main.ts prints them and exits 2 (exitOnConfigError).
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { CidrList, ConfigError, Env, LOG_LEVELS, LogLevel } from './config';

type Check<T> = { ok: true; value: T } | { ok: false };

/** How a setting's value is written, read and checked. Build one with the functions below. */
export interface Kind<T> {
  /** Docs "Allowed" column and env/flag errors: `expected ${allowed}`. */
  readonly allowed: string;
  /** Key-path errors: `cameras.x.max_fps: "x" is not ${short}`. */
  readonly short: string;
  /** Numeric range (aliases in another unit scale it). */
  readonly range?: { readonly min: number; readonly max: number };
  /** Never echo the value (secrets); such settings also accept `<NAME>_FILE`. */
  readonly secret?: { readonly minLength: number };
  /** Parses text from the environment or a flag (already trimmed, never empty). */
  parseText(text: string): Check<T>;
  /** Parses a value from a structured file (YAML/JSON: numbers, booleans, strings, lists). */
  parseValue(value: unknown): Check<T>;
  /** Writes a value the way parseText reads it (docs, .env.example, --help). */
  format(value: T): string;
}

const ok = <T>(value: T): Check<T> => ({ ok: true, value });
const BAD = { ok: false } as const;
const INT_RE = /^[+-]?\d+$/;
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)$/;

export interface Range {
  min: number;
  max: number;
}

function numeric(integer: boolean, { min, max }: Range, allowed: string, short: string): Kind<number> {
  const inRange = (n: number) => Number.isFinite(n) && n >= min && n <= max && (!integer || Number.isSafeInteger(n));
  return {
    allowed,
    short,
    range: { min, max },
    parseText: (t) => {
      if (!(integer ? INT_RE : NUMBER_RE).test(t)) return BAD;
      const n = Number(t);
      return inRange(n) ? ok(n) : BAD;
    },
    parseValue: (v) => (typeof v === 'number' && inRange(v) ? ok(v) : BAD),
    format: (v) => String(v),
  };
}

/** An integer in [min, max]. */
export function int(range: Range): Kind<number> {
  return numeric(true, range, `an integer from ${range.min} to ${range.max}`, `an integer (${range.min}-${range.max})`);
}

/** A decimal number in [min, max]. */
export function number(range: Range): Kind<number> {
  return numeric(false, range, `a number from ${range.min} to ${range.max}`, `a number (${range.min}-${range.max})`);
}

/** A duration in whole milliseconds (the unit of every duration setting; names end in `_MS`). */
export function ms(range: Range): Kind<number> {
  return numeric(true, range, `an integer from ${range.min} to ${range.max}`, `a duration in ms (${range.min}-${range.max})`);
}

/** A TCP port; `min: 0` allows 0 = "let the OS pick a free port". */
export function port(min: 0 | 1 = 0): Kind<number> {
  return numeric(true, { min, max: 65535 }, `an integer from ${min} to 65535`, `a port (${min}-65535)`);
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

export function bool(): Kind<boolean> {
  return {
    allowed: `one of ${[...TRUE, ...FALSE].join(', ')}`,
    short: 'true or false',
    parseText: (t) => (TRUE.includes(t.toLowerCase()) ? ok(true) : FALSE.includes(t.toLowerCase()) ? ok(false) : BAD),
    parseValue: (v) => (typeof v === 'boolean' ? ok(v) : BAD),
    format: (v) => String(v),
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Kind<T> {
  const check = (v: unknown): Check<T> => (typeof v === 'string' && (values as readonly string[]).includes(v) ? ok(v as T) : BAD);
  return { allowed: `one of ${values.join(', ')}`, short: `one of ${values.join(', ')}`, parseText: check, parseValue: check, format: (v) => v };
}

export function logLevel(): Kind<LogLevel> {
  return oneOf(LOG_LEVELS);
}

/** Any text, or text that passes `test` (then `allowed` says what passes). */
export function string(opts: { allowed?: string; test?: (s: string) => boolean } = {}): Kind<string> {
  const check = (v: unknown): Check<string> => (typeof v === 'string' && v.trim() !== '' && (!opts.test || opts.test(v.trim())) ? ok(v.trim()) : BAD);
  return { allowed: opts.allowed ?? 'a string', short: opts.allowed ?? 'a string', parseText: check, parseValue: check, format: (v) => v };
}

/** A secret (password, token): at least minLength characters; never echoed; also read from `<NAME>_FILE`. */
export function secret(minLength: number): Kind<string> {
  const check = (v: unknown): Check<string> => (typeof v === 'string' && v.length >= minLength ? ok(v) : BAD);
  return { allowed: `a secret of at least ${minLength} characters`, short: `a secret of at least ${minLength} characters`, secret: { minLength }, parseText: check, parseValue: check, format: () => '' };
}

const CIDRS_ALLOWED = 'a comma-separated list of IP addresses or CIDRs like 192.168.1.0/24,::1';

/** A comma-separated allow-list of CIDRs (a list of strings in structured files); empty = nobody listed. */
export function cidrs(): Kind<CidrList> {
  const build = (items: string[]): Check<CidrList> => {
    try {
      return ok(new CidrList(items));
    } catch {
      return BAD;
    }
  };
  return {
    allowed: CIDRS_ALLOWED,
    short: 'a list of IP addresses or CIDRs',
    parseText: (t) => build(t.split(',').map((s) => s.trim()).filter((s) => s !== '')),
    parseValue: (v) => {
      if (typeof v === 'string') return build(v.split(',').map((s) => s.trim()).filter((s) => s !== ''));
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return build(v.map((s: string) => s.trim()));
      return BAD;
    },
    format: (v) => v.cidrs.join(','),
  };
}

/** The detail a CidrList gives for a bad entry ("bad prefix length in ..."), for the error message. */
function cidrDetail(text: string): string {
  try {
    new CidrList(text.split(',').map((s) => s.trim()).filter((s) => s !== ''));
    return '';
  } catch (e) {
    return ` (${(e as Error).message})`;
  }
}

/**
 * Another name of a setting; `scale` converts its unit (seconds -> ms: 1000). By default an OLD name
 * that keeps working with a deprecation warning. `equivalent: true` makes it a documented second
 * spelling instead (a name an issue or a seed script uses, e.g. `_S` beside the `_MS` variable): read
 * the same way, but no warning, and listed as an equivalent rather than an old name.
 */
export interface Alias {
  readonly env: string;
  readonly scale?: number;
  /** Unit of the other name, for messages and docs ("seconds"). */
  readonly unit?: string;
  /** A documented equivalent, not deprecated: no warning when used. */
  readonly equivalent?: boolean;
}

export interface Setting<T> {
  /** Environment variable. */
  readonly env: string;
  readonly kind: Kind<T>;
  /** Absent = unset by default (the value is undefined). */
  readonly default?: T;
  readonly doc: string;
  /** Command-line flag without the dashes (`esp32-host` = `--esp32-host`). */
  readonly flag?: string;
  /** Short flag letter-free placeholder shown in --help (`HOST`, `N`). */
  readonly metavar?: string;
  /** Key in a structured file (snake_case, e.g. max_fps); needed for perCamera. */
  readonly yaml?: string;
  /** May be overridden per camera in the camera list. */
  readonly perCamera?: boolean;
  /** Unit shown in the docs ("ms", "frames/s", "bytes"). */
  readonly unit?: string;
  /** Heading this setting is listed under (docs, --help). */
  readonly group?: string;
  readonly aliases?: readonly Alias[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnySetting = Setting<any>;
export type SettingValue<S> = S extends { kind: Kind<infer T> } ? (S extends { default: unknown } ? T : T | undefined) : never;
export type SettingValues<S extends Record<string, AnySetting>> = { readonly [K in keyof S]: SettingValue<S[K]> };

export interface TableSpec<S extends Record<string, AnySetting>> {
  /** Program name in messages (`camrelay-relay`). */
  readonly program: string;
  /** Section name in .env.example (`section:<name>`) and heading in docs/configuration.md. */
  readonly section: string;
  /** First line of --help. */
  readonly usage: string;
  /** Paragraph under the usage line and under the docs heading. */
  readonly intro: string;
  readonly settings: S;
}

/** A command line that cannot be parsed: unknown flag, missing value, stray argument. */
export class UsageError extends ConfigError {
  constructor(value: string, allowed: string) {
    super('argv', value, allowed);
    this.message = `${value}: ${allowed} (see --help)`;
  }
}

/** A bad value in a structured file: `cameras.garden.max_fps: "x" is not a number (0-1000)`. */
export class KeyPathError extends ConfigError {
  constructor(
    readonly path: string,
    value: unknown,
    allowed: string,
    detail?: string,
  ) {
    super(path, JSON.stringify(value) ?? String(value), allowed);
    this.message = `${path}: ${detail ?? `${JSON.stringify(value)} is not ${allowed}`}`;
  }
}

export type ArgvResult = { help: true } | { help: false; flags: Record<string, string> };

/** Where one value came from: the name to put in messages and its text. */
interface Source {
  name: string;
  raw: string | undefined;
}

/** The outcome of parsing, with helpers for the daemon's cross-field checks. */
export interface Parsed<S extends Record<string, AnySetting>> {
  readonly values: SettingValues<S>;
  /** One line per deprecated name in use, for main to log once the logger exists. */
  readonly warnings: readonly string[];
  /** The name the user set the value under (flag, old name or variable). */
  name(key: keyof S): string;
  /** A ConfigError for a cross-field check, naming where the value came from and its text. */
  error(key: keyof S, allowed: string): ConfigError;
}

function trimmed(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

const escapeCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The settings of one daemon. */
export class SettingsTable<S extends Record<string, AnySetting>> {
  readonly settings: S;
  private readonly byFlag = new Map<string, keyof S>();

  constructor(readonly spec: TableSpec<S>) {
    this.settings = spec.settings;
    const names = new Set<string>();
    for (const [key, s] of this.entries()) {
      for (const n of [s.env, ...(s.aliases ?? []).map((a) => a.env), ...(s.kind.secret ? [`${s.env}_FILE`] : [])]) {
        if (names.has(n)) throw new Error(`${spec.section}: ${n} declared twice`);
        names.add(n);
      }
      if (s.flag) {
        if (this.byFlag.has(s.flag) || s.flag === 'help') throw new Error(`${spec.section}: --${s.flag} declared twice`);
        this.byFlag.set(s.flag, key);
      }
      if (s.perCamera && !s.yaml) throw new Error(`${spec.section}: ${s.env} is perCamera but has no yaml key`);
      if (s.default !== undefined && s.kind.parseText(s.kind.format(s.default)).ok === false && s.kind.format(s.default) !== '') {
        throw new Error(`${spec.section}: the default of ${s.env} is not ${s.kind.allowed}`);
      }
    }
  }

  entries(): [keyof S & string, AnySetting][] {
    return Object.entries(this.settings) as [keyof S & string, AnySetting][];
  }

  /** The default values (undefined where a setting is unset by default). */
  defaults(): SettingValues<S> {
    return Object.fromEntries(this.entries().map(([k, s]) => [k, s.default])) as SettingValues<S>;
  }

  /** Every variable name this table reads, in order: each setting, its `_FILE` form. Old names excluded. */
  variables(): { name: string; default: string; setting: AnySetting }[] {
    const out: { name: string; default: string; setting: AnySetting }[] = [];
    for (const [, s] of this.entries()) {
      out.push({ name: s.env, default: s.default === undefined ? '' : s.kind.format(s.default), setting: s });
      if (s.kind.secret) out.push({ name: `${s.env}_FILE`, default: '', setting: s });
    }
    return out;
  }

  /** Parses the command line (strict): `--help`/`-h`, and the declared flags with a value each. */
  parseArgv(argv: readonly string[]): ArgvResult {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
    for (const f of this.byFlag.keys()) options[f] = { type: 'string' };
    let parsed;
    try {
      parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    } catch (e) {
      throw this.usageError(argv, e as Error, options);
    }
    if (parsed.values.help === true) return { help: true };
    const flags: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.values)) if (typeof v === 'string') flags[`--${k}`] = v;
    return { help: false, flags };
  }

  /** Turns parseArgs' error into one that says which argument and what is allowed. */
  private usageError(argv: readonly string[], e: Error, options: Record<string, { type: 'string' | 'boolean'; short?: string }>): UsageError {
    const allowed = `allowed flags are ${[...[...this.byFlag.keys()].map((f) => `--${f}`), '--help'].join(', ')}`;
    const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
    for (const t of tokens ?? []) {
      if (t.kind === 'positional') return new UsageError(`unknown argument ${JSON.stringify(t.value)}`, allowed);
      if (t.kind !== 'option') continue;
      if (t.name !== 'help' && !this.byFlag.has(t.name)) return new UsageError(`unknown argument ${JSON.stringify(t.rawName)}`, allowed);
      if (t.name === 'help' && t.value !== undefined) return new UsageError(`${t.rawName} takes no value`, allowed);
      if (t.name !== 'help' && (t.value === undefined || (t.inlineValue === false && t.value.startsWith('-')))) {
        return new UsageError(`${t.rawName} needs a value`, `${t.rawName} <value> or ${t.rawName}=<value>`);
      }
    }
    return new UsageError(e.message, allowed);
  }

  /** Parses and validates every setting from the environment, flags (from parseArgv) overriding it. */
  parse(env: Env, flags: Record<string, string> = {}): Parsed<S> {
    const values: Record<string, unknown> = {};
    const sources = new Map<keyof S, Source>();
    const warnings: string[] = [];
    for (const [key, s] of this.entries()) {
      const { value, source, warning } = this.readOne(s, env, flags);
      values[key] = value;
      sources.set(key, source);
      if (warning) warnings.push(warning);
    }
    return {
      values: values as SettingValues<S>,
      warnings,
      name: (key) => sources.get(key)?.name ?? this.settings[key].env,
      error: (key, allowed) => {
        const src = sources.get(key) ?? { name: this.settings[key].env, raw: undefined };
        const s = this.settings[key];
        const shown = s.kind.secret ? '<redacted>' : (src.raw ?? (values[key as string] === undefined ? '' : s.kind.format(values[key as string])));
        return new ConfigError(src.name, shown, allowed);
      },
    };
  }

  private readOne(s: AnySetting, env: Env, flags: Record<string, string>): { value: unknown; source: Source; warning?: string } {
    const flagName = s.flag ? `--${s.flag}` : undefined;
    if (flagName !== undefined && flags[flagName] !== undefined) {
      const raw = trimmed(flags[flagName]);
      return { value: raw === undefined ? s.default : this.parseText(s, flagName, raw), source: { name: flagName, raw } };
    }
    const direct = trimmed(env[s.env]);
    if (s.kind.secret) return this.readSecret(s, env, direct);
    for (const a of s.aliases ?? []) {
      const old = trimmed(env[a.env]);
      if (old === undefined) continue;
      if (direct !== undefined) {
        const what = a.equivalent ? `the same setting${a.unit ? ` in ${a.unit}` : ''}` : `the old name${a.unit ? `, in ${a.unit}` : ''}`;
        throw new ConfigError(a.env, old, `only one of ${a.env} (${what}) and ${s.env}: remove ${a.env}`);
      }
      const value = this.parseAlias(s, a, old);
      if (a.equivalent) return { value, source: { name: a.env, raw: old } };
      return {
        value,
        source: { name: a.env, raw: old },
        warning: `${a.env} is deprecated, use ${s.env}${a.scale ? ` (${s.unit ?? 'new unit'}): ${a.env}=${old} read as ${s.env}=${s.kind.format(value)}` : ''}`,
      };
    }
    return { value: direct === undefined ? s.default : this.parseText(s, s.env, direct), source: { name: s.env, raw: direct } };
  }

  private parseText(s: AnySetting, name: string, raw: string): unknown {
    const r = s.kind.parseText(raw);
    if (r.ok) return r.value;
    const detail = s.kind.allowed === CIDRS_ALLOWED ? cidrDetail(raw) : '';
    throw new ConfigError(name, s.kind.secret ? '<redacted>' : raw, s.kind.allowed + detail);
  }

  private parseAlias(s: AnySetting, a: Alias, raw: string): unknown {
    if (!a.scale) return this.parseText(s, a.env, raw);
    const range = s.kind.range ?? { min: -Infinity, max: Infinity };
    const allowed = `a number${a.unit ? ` of ${a.unit}` : ''} from ${range.min / a.scale} to ${range.max / a.scale}`;
    if (!NUMBER_RE.test(raw)) throw new ConfigError(a.env, raw, allowed);
    const r = s.kind.parseText(String(Math.round(Number(raw) * a.scale)));
    if (!r.ok) throw new ConfigError(a.env, raw, allowed);
    return r.value;
  }

  /** `NAME` or `NAME_FILE` (Docker secrets), never both; the value itself is never put in a message. */
  private readSecret(s: AnySetting, env: Env, direct: string | undefined): { value: unknown; source: Source } {
    const fileVar = `${s.env}_FILE`;
    const file = trimmed(env[fileVar]);
    if (direct !== undefined && file !== undefined) throw new ConfigError(fileVar, file, `only one of ${s.env} and ${fileVar}`);
    if (file === undefined) {
      return { value: direct === undefined ? s.default : this.parseText(s, s.env, direct), source: { name: s.env, raw: undefined } };
    }
    let value: string;
    try {
      value = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(fileVar, file, `a readable file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (value.trim() === '') throw new ConfigError(fileVar, file, 'a file holding a non-empty secret');
    const r = s.kind.parseText(value);
    if (!r.ok) throw new ConfigError(fileVar, file, s.kind.allowed);
    return { value: r.value, source: { name: fileVar, raw: file } };
  }

  /** The settings that a camera-list entry may override, by their file key. */
  perCameraKeys(): string[] {
    return this.entries().filter(([, s]) => s.perCamera).map(([, s]) => s.yaml as string);
  }

  /**
   * Validates an object of per-camera overrides (`{ max_fps: 10, raw_port: 8082 }`) against the
   * perCamera settings. `path` names it in errors (`cameras.garden`); keys listed in `otherKeys` are
   * allowed and left to the caller. Returns the overrides by setting key (only those present).
   */
  validateOverrides(obj: unknown, path: string, otherKeys: readonly string[] = []): Partial<SettingValues<S>> {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new KeyPathError(path, obj, 'a mapping of settings', `${JSON.stringify(obj) ?? String(obj)} is not a mapping of settings`);
    }
    const byYaml = new Map<string, [string, AnySetting]>();
    for (const [k, s] of this.entries()) if (s.perCamera) byYaml.set(s.yaml as string, [k, s]);
    const out: Record<string, unknown> = {};
    for (const [yamlKey, v] of Object.entries(obj as Record<string, unknown>)) {
      if (otherKeys.includes(yamlKey)) continue;
      const hit = byYaml.get(yamlKey);
      const keyPath = `${path}.${yamlKey}`;
      if (!hit) {
        const allowed = [...otherKeys, ...byYaml.keys()].join(', ');
        throw new KeyPathError(keyPath, v, `one of the keys ${allowed}`, `unknown key (allowed: ${allowed})`);
      }
      const [key, s] = hit;
      const r = s.kind.parseValue(v);
      if (!r.ok) {
        if (s.kind.secret) throw new KeyPathError(keyPath, '<redacted>', s.kind.short, `the value is not ${s.kind.short}`);
        throw new KeyPathError(keyPath, v, s.kind.short);
      }
      out[key] = r.value;
    }
    return out as Partial<SettingValues<S>>;
  }

  private groups(): [string, [keyof S & string, AnySetting][]][] {
    const out: [string, [keyof S & string, AnySetting][]][] = [];
    for (const e of this.entries()) {
      const g = e[1].group ?? '';
      const last = out[out.length - 1];
      if (last && last[0] === g) last[1].push(e);
      else out.push([g, [e]]);
    }
    return out;
  }

  /** The `--help` text. */
  help(): string {
    const lines = [`Usage: ${this.spec.usage}`, '', this.spec.intro, '', 'Settings: environment variable (flag) [default]. Flags override their variables.'];
    for (const [group, list] of this.groups()) {
      if (group) lines.push('', `${group}:`);
      for (const [, s] of list) {
        const def = s.default === undefined ? 'unset' : s.kind.format(s.default);
        lines.push(`  ${s.env}${s.flag ? ` (--${s.flag}${s.metavar ? ` ${s.metavar}` : ''})` : ''} [${def}]`);
        lines.push(`      ${s.doc}${s.unit ? ` (${s.unit})` : ''}; ${s.kind.allowed}`);
        if (s.kind.secret) lines.push(`      ${s.env}_FILE: read it from this file instead (Docker secrets)`);
        for (const a of s.aliases ?? []) {
          lines.push(a.equivalent
            ? `      or ${a.env}${a.unit ? `, the same in ${a.unit}` : ''} (not both)`
            : `      old name ${a.env}${a.unit ? ` (in ${a.unit})` : ''} still works, with a warning`);
        }
      }
    }
    lines.push('  --help, -h: this text');
    return lines.join('\n') + '\n';
  }

  /** This daemon's part of docs/configuration.md. */
  markdown(): string {
    const out = [`## ${this.spec.section}`, '', this.spec.intro, '', `\`${this.spec.usage}\``, ''];
    out.push('| Variable | Flag | Camera key | Default | Unit | Allowed | Description |', '|---|---|---|---|---|---|---|');
    for (const [group, list] of this.groups()) {
      if (group) out.push(`| **${escapeCell(group)}** | | | | | | |`);
      for (const [, s] of list) {
        const def = s.default === undefined || s.kind.format(s.default) === '' ? '*(unset)*' : `\`${escapeCell(s.kind.format(s.default))}\``;
        const doc = `${s.doc.replace(/\.?$/, '.')}${s.kind.secret ? ` Also \`${s.env}_FILE\`: read it from that file (Docker secrets).` : ''}`;
        out.push(`| \`${s.env}\` | ${s.flag ? `\`--${s.flag}\`` : ''} | ${s.perCamera ? `\`${s.yaml}\`` : ''} | ${def} | ${s.unit ?? ''} | ${escapeCell(s.kind.allowed)} | ${escapeCell(doc)} |`);
      }
    }
    const aliases = this.entries().flatMap(([, s]) => (s.aliases ?? []).map((a) => ({ a, s })));
    const conversion = (a: Alias) => (a.scale ? `${a.unit ?? 'old unit'} × ${a.scale}` : 'same value');
    const equivalents = aliases.filter(({ a }) => a.equivalent);
    if (equivalents.length) {
      out.push('', 'Equivalent names (read like the variable, in their own unit, without a warning; setting both is an error):', '');
      out.push('| Name | Same as | Conversion |', '|---|---|---|');
      for (const { a, s } of equivalents) out.push(`| \`${a.env}\` | \`${s.env}\` | ${conversion(a)} |`);
    }
    const old = aliases.filter(({ a }) => !a.equivalent);
    if (old.length) {
      out.push('', 'Old names (still read, with one warning line at start-up; setting both the old and the new name is an error):', '');
      out.push('| Old name | New name | Conversion |', '|---|---|---|');
      for (const { a, s } of old) out.push(`| \`${a.env}\` | \`${s.env}\` | ${conversion(a)} |`);
    }
    return out.join('\n') + '\n';
  }

  /**
   * Problems of this daemon's section of .env.example: a variable missing, shown with another value
   * than its default (commented `# NAME=default`, or uncommented `NAME=` / `NAME=default`), or a name
   * this table does not declare (old names included).
   */
  checkEnvExample(text: string): string[] {
    const sec = this.spec.section;
    const m = new RegExp(`section:${sec}\\n([\\s\\S]*?)/section:${sec}`).exec(text);
    if (!m) return [`no section:${sec} ... /section:${sec} in .env.example`];
    const seen = new Map<string, string>();
    for (const line of m[1].split('\n')) {
      const l = /^#?\s*([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
      if (l) seen.set(l[1], l[2].trim());
    }
    const problems: string[] = [];
    const declared = new Set<string>();
    for (const v of this.variables()) {
      declared.add(v.name);
      const got = seen.get(v.name);
      if (got === undefined) problems.push(`${v.name} is missing`);
      else if (got !== v.default && !(got === '' && v.default === '')) problems.push(`${v.name}=${got} but its default is ${JSON.stringify(v.default)}`);
    }
    for (const name of seen.keys()) if (!declared.has(name)) problems.push(`${name} is not a ${sec} setting`);
    return problems;
  }
}

export function defineSettings<const S extends Record<string, AnySetting>>(spec: TableSpec<S>): SettingsTable<S> {
  return new SettingsTable(spec);
}

/** docs/configuration.md: a header, then one table per daemon. scripts/gen-config-docs.js writes it. */
export function renderConfigPage(tables: readonly { markdown(): string }[]): string {
  const head = [
    '# Configuration',
    '',
    '<!-- Generated by `npm run docs:config` (scripts/gen-config-docs.js) from the settings tables in',
    '     relay/src/config.ts, tunnel-agent/src/config.ts and fake-camera/src/config.ts. Do not edit by hand:',
    '     a unit test fails when this file differs from the generated output. -->',
    '',
    'Every daemon reads environment variables (and a few command-line flags, which override their',
    'variable). Each setting is declared once in its daemon\'s settings table; `--help`, this page and the',
    'check of `.env.example` come from that table. An empty value means the default. An invalid value stops',
    'the daemon at start-up with exit code 2 and a message naming the variable (or flag), the bad value and',
    'what is allowed. Durations are whole milliseconds and their names end in `_MS`.',
    '',
    'Settings with a *Camera key* may be overridden per camera in the camera list; the variable is the',
    'default for every camera.',
    '',
  ];
  return [head.join('\n'), ...tables.map((t) => t.markdown())].join('\n');
}
