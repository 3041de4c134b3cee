/**
 * Host key verification. ssh2 accepts ANY host key when no hostVerifier is given, and treats every
 * return value except a strict `false` as "accept" (even a Promise). So the verifier here always
 * returns a real boolean, and the policy is mandatory unless SSH_INSECURE_ACCEPT_ANY_HOST_KEY=true.
 *
 * Keys are compared by their SHA256 fingerprint, printed exactly like `ssh-keygen -lf`
 * (`SHA256:` + unpadded base64 of sha256(key blob)).
 */
import { createHash, createHmac } from 'node:crypto';

export type HostKeyPolicy =
  | { readonly kind: 'insecure' }
  | {
      readonly kind: 'pinned';
      /** Fingerprints of acceptable keys. */
      readonly accept: readonly string[];
      /** Fingerprints that must never be accepted (known_hosts @revoked). */
      readonly revoked: readonly string[];
      /** Where the pins came from, for log lines. */
      readonly source: 'known_hosts' | 'SSH_HOST_KEY';
    };

export interface HostKeyCheck {
  ok: boolean;
  fingerprint: string;
  keyType: string;
  reason?: 'mismatch' | 'revoked';
}

/** `SHA256:<base64 without padding>` of a key blob (wire format), as ssh-keygen -lf prints it. */
export function fingerprintSha256(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The key type string at the start of an SSH wire-format public key blob, or undefined. */
export function blobKeyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) return undefined;
  const t = blob.subarray(4, 4 + len).toString('latin1');
  return /^[\x21-\x7e]+$/.test(t) ? t : undefined;
}

export function checkHostKey(policy: HostKeyPolicy, blob: Buffer): HostKeyCheck {
  const fingerprint = fingerprintSha256(blob);
  const keyType = blobKeyType(blob) ?? 'unknown';
  if (policy.kind === 'insecure') return { ok: true, fingerprint, keyType };
  if (policy.revoked.includes(fingerprint)) return { ok: false, fingerprint, keyType, reason: 'revoked' };
  if (policy.accept.includes(fingerprint)) return { ok: true, fingerprint, keyType };
  return { ok: false, fingerprint, keyType, reason: 'mismatch' };
}

/**
 * An ssh2 `hostVerifier`: returns strictly true or false and reports every decision. Any exception
 * (a malformed key from a hostile server) counts as a rejection.
 */
export function makeHostVerifier(policy: HostKeyPolicy, onCheck: (c: HostKeyCheck) => void): (key: Buffer) => boolean {
  return (key: Buffer): boolean => {
    let result: HostKeyCheck;
    try {
      if (!Buffer.isBuffer(key)) throw new Error('host key is not a Buffer');
      result = checkHostKey(policy, key);
    } catch {
      result = { ok: false, fingerprint: 'unparseable', keyType: 'unknown', reason: 'mismatch' };
    }
    onCheck(result);
    return result.ok === true;
  };
}

// ---------------------------------------------------------------------------------------------
// known_hosts

export type HostPattern =
  | { kind: 'hashed'; salt: Buffer; hash: Buffer }
  | { kind: 'pattern'; negated: boolean; re: RegExp; text: string };

export interface KnownHostsEntry {
  marker?: 'revoked' | 'cert-authority';
  patterns: HostPattern[];
  keyType: string;
  blob: Buffer;
  fingerprint: string;
  line: number;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function parsePattern(p: string): HostPattern | undefined {
  if (p.startsWith('|1|')) {
    const [, , salt, hash] = p.split('|');
    if (!salt || !hash) return undefined;
    const s = Buffer.from(salt, 'base64');
    const h = Buffer.from(hash, 'base64');
    if (s.length === 0 || h.length !== 20) return undefined;
    return { kind: 'hashed', salt: s, hash: h };
  }
  const negated = p.startsWith('!');
  const text = negated ? p.slice(1) : p;
  if (text === '') return undefined;
  return { kind: 'pattern', negated, re: globToRegExp(text), text };
}

function decodeKey(type: string, b64: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const blob = Buffer.from(b64, 'base64');
  return blobKeyType(blob) === type ? blob : undefined;
}

/**
 * Parses OpenSSH known_hosts text: comments and blank lines skipped, `@revoked` / `@cert-authority`
 * markers, comma-separated host patterns (wildcards, `!negation`, `[host]:port`), hashed `|1|salt|hash`
 * names. Lines that cannot be parsed are skipped (OpenSSH does the same).
 */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostsEntry['marker'];
    if (fields[0].startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    if (fields.length < 3) return;
    const [hosts, keyType, b64] = fields;
    const patterns = hosts.split(',').map(parsePattern);
    if (patterns.some((p) => p === undefined)) return;
    const blob = decodeKey(keyType, b64);
    if (!blob) return;
    out.push({ marker, patterns: patterns as HostPattern[], keyType, blob, fingerprint: fingerprintSha256(blob), line: i + 1 });
  });
  return out;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host.toLowerCase() : `[${host.toLowerCase()}]:${port}`;
}

export function entryMatches(entry: KnownHostsEntry, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  let matched = false;
  for (const p of entry.patterns) {
    if (p.kind === 'hashed') {
      const h = createHmac('sha1', p.salt).update(name).digest();
      if (h.equals(p.hash)) matched = true;
    } else if (p.re.test(name)) {
      if (p.negated) return false;
      matched = true;
    }
  }
  return matched;
}

/**
 * The acceptable keys for host:port. Throws (with a readable reason) when nothing usable matches,
 * because starting an agent that can never connect is a configuration error.
 */
export function policyFromKnownHosts(entries: KnownHostsEntry[], host: string, port: number): HostKeyPolicy {
  const name = knownHostsName(host, port);
  // @revoked keys are never acceptable, whatever host pattern they were listed under.
  const revoked = entries.filter((e) => e.marker === 'revoked').map((e) => e.fingerprint);
  const matching = entries.filter((e) => e.marker === undefined && entryMatches(e, host, port));
  const accept = [...new Set(matching.map((e) => e.fingerprint))].filter((f) => !revoked.includes(f));
  if (accept.length === 0) {
    const ca = entries.some((e) => e.marker === 'cert-authority' && entryMatches(e, host, port));
    throw new Error(
      `known_hosts lines for "${name}" (OpenSSH syntax, ${port === 22 ? 'plain host' : '[host]:port for a port other than 22'}, hashed entries allowed)` +
        (ca ? '; only an @cert-authority line matches, and host certificates are not supported: add the host key itself' : '') +
        (matching.length > 0 ? '; every matching key is @revoked' : ''),
    );
  }
  return Object.freeze({ kind: 'pinned', accept: Object.freeze(accept), revoked: Object.freeze(revoked), source: 'known_hosts' });
}

const FP_RE = /SHA256:([A-Za-z0-9+/]{43})=?(?![A-Za-z0-9+/])/;

/**
 * SSH_HOST_KEY: comma-separated pins, each a public key line (`ssh-ed25519 AAAA... [comment]`, a
 * known_hosts line is accepted too) or a fingerprint as `ssh-keygen -lf` prints it (`SHA256:...`;
 * the whole `256 SHA256:... comment (ED25519)` line is accepted too).
 */
export function parseHostKeyPins(value: string): HostKeyPolicy {
  const allowed =
    'a public key line like "ssh-ed25519 AAAA..." or a fingerprint like "SHA256:..." exactly as ssh-keygen -lf prints it (comma-separated for several)';
  const accept: string[] = [];
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const fp = FP_RE.exec(item);
    if (fp) {
      accept.push(`SHA256:${fp[1]}`);
      continue;
    }
    if (/^MD5:/i.test(item) || /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/i.test(item)) throw new Error(`${allowed}; MD5 fingerprints are not accepted`);
    const tokens = item.split(/\s+/);
    let blob: Buffer | undefined;
    for (let i = 0; i + 1 < tokens.length && !blob; i++) blob = decodeKey(tokens[i], tokens[i + 1]);
    if (!blob) throw new Error(allowed);
    accept.push(fingerprintSha256(blob));
  }
  if (accept.length === 0) throw new Error(allowed);
  return Object.freeze({ kind: 'pinned', accept: Object.freeze(accept), revoked: Object.freeze([]), source: 'SSH_HOST_KEY' });
}
