/**
 * Environment parsing shared by every daemon. Each reader validates one variable and throws a
 * ConfigError that names the variable, the bad value and what is allowed. `main.ts` catches it,
 * prints the message and exits with code 2 (see exitOnConfigError).
 */
import { BlockList, isIP } from 'node:net';

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly value: string,
    readonly allowed: string,
  ) {
    super(`invalid ${variable}=${JSON.stringify(value)}: expected ${allowed}`);
    this.name = 'ConfigError';
  }
}

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

export function readString(env: Env, name: string, def: string): string {
  return raw(env, name) ?? def;
}

export function readOptionalString(env: Env, name: string): string | undefined {
  return raw(env, name);
}

export interface IntRange {
  min?: number;
  max?: number;
}

export function readInt(env: Env, name: string, def: number, range: IntRange = {}): number {
  const v = raw(env, name);
  const min = range.min ?? Number.MIN_SAFE_INTEGER;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const allowed = `an integer from ${min} to ${max}`;
  if (v === undefined) return def;
  if (!/^[+-]?\d+$/.test(v)) throw new ConfigError(name, v, allowed);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(name, v, allowed);
  return n;
}

export function readNumber(env: Env, name: string, def: number, range: IntRange = {}): number {
  const v = raw(env, name);
  const min = range.min ?? -Infinity;
  const max = range.max ?? Infinity;
  const allowed = `a number from ${min} to ${max}`;
  if (v === undefined) return def;
  const n = Number(v);
  if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(v) || !Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(name, v, allowed);
  }
  return n;
}

/** A TCP port; 0 means "let the OS pick a free port". */
export function readPort(env: Env, name: string, def: number): number {
  return readInt(env, name, def, { min: 0, max: 65535 });
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

export function readBool(env: Env, name: string, def: boolean): boolean {
  const v = raw(env, name);
  if (v === undefined) return def;
  const l = v.toLowerCase();
  if (TRUE.includes(l)) return true;
  if (FALSE.includes(l)) return false;
  throw new ConfigError(name, v, `one of ${[...TRUE, ...FALSE].join(', ')}`);
}

export function readEnum<T extends string>(env: Env, name: string, def: T, values: readonly T[]): T {
  const v = raw(env, name);
  if (v === undefined) return def;
  if ((values as readonly string[]).includes(v)) return v as T;
  throw new ConfigError(name, v, `one of ${values.join(', ')}`);
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function readLogLevel(env: Env, name = 'LOG_LEVEL', def: LogLevel = 'info'): LogLevel {
  return readEnum(env, name, def, LOG_LEVELS);
}

/** A parsed allow-list of CIDRs (IPv4 and IPv6). IPv4-mapped IPv6 addresses match IPv4 rules. */
export class CidrList {
  private readonly list = new BlockList();
  constructor(readonly cidrs: readonly string[]) {
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const family = isIP(addr);
      if (family === 0) throw new Error(`not an IP address: ${addr}`);
      const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
      const maxBits = family === 4 ? 32 : 128;
      if (bits !== undefined && (!/^\d+$/.test(bits) || prefix > maxBits)) {
        throw new Error(`bad prefix length in ${c}`);
      }
      this.list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  get empty(): boolean {
    return this.cidrs.length === 0;
  }

  /** True when the address is in the list. An undefined address never matches. */
  contains(address: string | undefined): boolean {
    if (!address) return false;
    const a = normaliseAddress(address);
    const family = isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** Empty list = everyone allowed. */
  allows(address: string | undefined): boolean {
    return this.empty || this.contains(address);
  }
}

/** Strips the IPv4-mapped IPv6 prefix so `::ffff:10.0.0.1` is treated as `10.0.0.1`. */
export function normaliseAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

export function readCidrs(env: Env, name: string): CidrList {
  const v = raw(env, name);
  if (v === undefined) return new CidrList([]);
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  try {
    return new CidrList(items);
  } catch (e) {
    throw new ConfigError(name, v, `a comma-separated list of IP addresses or CIDRs like 192.168.1.0/24,::1 (${(e as Error).message})`);
  }
}

/**
 * Prints a ConfigError and exits with code 2; rethrows anything else.
 * Used by every main.ts around config parsing.
 */
export function exitOnConfigError(e: unknown, program: string): never {
  if (e instanceof ConfigError) {
    process.stderr.write(`${program}: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
