import {
  blobKeyType, checkHostKey, entryMatches, fingerprintSha256, knownHostsName, makeHostVerifier, parseHostKeyPins, parseKnownHosts,
  policyFromKnownHosts,
} from '../../src/host-key';

// Vectors produced by OpenSSH 9.2: `ssh-keygen -lf` and `ssh-keygen -H` (hashed known_hosts).
const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHy29G1vZIzSksGNZkexzVSYYdcYvNkQ6vbmc3Vle1m9';
const ED_FP = 'SHA256:v0hp/6iN1QKJ5SJ+dwHhRHlI31smn6tzZ8knODD5sgo';
const EC =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEWYLs9IZ0PY0WgJPW6lpuOsJa0KH9MH1PWP09ARwoDErNKdULX0jrepTnvcAn72X1u82l/cXEj08T6ZLGx8/Sc=';
const EC_FP = 'SHA256:0So0gAk9iFmDFgQdkM+43M9TFyY/KaNcl40wM2YpEHk';
// hashed "[127.0.0.1]:2222" -> ED and "vps.example.com" -> EC
const HASHED_ED = `|1|Aq5fI4TFQOuwW8/ZA/QGrsGE7T0=|6BRCaOchbTVKykK56GukAlNPoHI= ${ED}`;
const HASHED_EC = `|1|hSCNSv2xYw8z6+8BOyIg36claRo=|X9eVEqUz9dZ27bpdDIAmboTVIfg= ${EC}`;

const blob = (line: string) => Buffer.from(line.split(' ')[1], 'base64');

describe('fingerprints', () => {
  test('SHA256 fingerprint is exactly what ssh-keygen -lf prints (no base64 padding)', () => {
    expect(fingerprintSha256(blob(ED))).toBe(ED_FP);
    expect(fingerprintSha256(blob(EC))).toBe(EC_FP);
    expect(ED_FP).not.toMatch(/=$/);
  });

  test('key type is read from the blob', () => {
    expect(blobKeyType(blob(ED))).toBe('ssh-ed25519');
    expect(blobKeyType(Buffer.from([0, 0, 0, 200, 1]))).toBeUndefined();
  });
});

describe('known_hosts parsing and matching', () => {
  test('plain, [host]:port, wildcard, negation, comments, markers', () => {
    const text = [
      '# comment',
      '',
      `vps.example.com,10.0.0.5 ${EC}`,
      `[127.0.0.1]:2222 ${ED} a comment`,
      `*.example.org,!bad.example.org ${ED}`,
      `@cert-authority *.ca.example ${EC}`,
      `@revoked * ${EC}`,
      'garbage line',
      `host ssh-ed25519 not-base64!!`,
      `host ssh-rsa ${ED.split(' ')[1]}`, // type does not match the blob: skipped
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries).toHaveLength(5);
    expect(entries.map((e) => e.marker)).toEqual([undefined, undefined, undefined, 'cert-authority', 'revoked']);
    const [vps, loop, wild] = entries;
    expect(entryMatches(vps, 'VPS.example.com', 22)).toBe(true);
    expect(entryMatches(vps, 'vps.example.com', 2222)).toBe(false); // non-22 port needs [host]:port
    expect(entryMatches(loop, '127.0.0.1', 2222)).toBe(true);
    expect(entryMatches(loop, '127.0.0.1', 22)).toBe(false);
    expect(entryMatches(wild, 'a.example.org', 22)).toBe(true);
    expect(entryMatches(wild, 'bad.example.org', 22)).toBe(false);
    expect(knownHostsName('Host', 22)).toBe('host');
    expect(knownHostsName('h', 2200)).toBe('[h]:2200');
  });

  test('hashed |1|salt|hash entries (from ssh-keygen -H) match the right host and port only', () => {
    const [ed, ec] = parseKnownHosts(`${HASHED_ED}\n${HASHED_EC}\n`);
    expect(entryMatches(ed, '127.0.0.1', 2222)).toBe(true);
    expect(entryMatches(ed, '127.0.0.1', 2223)).toBe(false);
    expect(entryMatches(ec, 'vps.example.com', 22)).toBe(true);
    expect(entryMatches(ec, 'other.example.com', 22)).toBe(false);
    const policy = policyFromKnownHosts([ed, ec], '127.0.0.1', 2222);
    expect(policy).toMatchObject({ kind: 'pinned', accept: [ED_FP], source: 'known_hosts' });
  });

  test('@revoked beats a matching entry; only-@cert-authority and no match are errors with reasons', () => {
    const revoked = parseKnownHosts(`vps ${EC}\nvps ${ED}\n@revoked * ${EC}\n`);
    const p = policyFromKnownHosts(revoked, 'vps', 22);
    expect(checkHostKey(p, blob(EC))).toMatchObject({ ok: false, reason: 'revoked', fingerprint: EC_FP });
    expect(checkHostKey(p, blob(ED)).ok).toBe(true);
    expect(() => policyFromKnownHosts(parseKnownHosts(`@cert-authority * ${EC}\n`), 'vps', 22)).toThrow(/cert-authority/);
    expect(() => policyFromKnownHosts(parseKnownHosts(`other ${EC}\n`), 'vps', 2222)).toThrow(/\[vps\]:2222/);
    expect(() => policyFromKnownHosts(parseKnownHosts(`vps ${EC}\n@revoked * ${EC}\n`), 'vps', 22)).toThrow(/revoked/);
  });
});

describe('SSH_HOST_KEY pins', () => {
  test('public key line, known_hosts line, bare fingerprint, full ssh-keygen -lf line, several', () => {
    expect(parseHostKeyPins(`${ED} comment here`)).toMatchObject({ accept: [ED_FP] });
    expect(parseHostKeyPins(`[vps]:2222 ${EC}`)).toMatchObject({ accept: [EC_FP] });
    expect(parseHostKeyPins(ED_FP)).toMatchObject({ accept: [ED_FP] });
    expect(parseHostKeyPins(`256 ${ED_FP} test (ED25519)`)).toMatchObject({ accept: [ED_FP] });
    expect(parseHostKeyPins(`${ED_FP}, ${EC}`)).toMatchObject({ accept: [ED_FP, EC_FP] });
  });

  test('rejects MD5, truncated fingerprints and junk', () => {
    expect(() => parseHostKeyPins('MD5:12:34')).toThrow(/MD5/);
    expect(() => parseHostKeyPins('12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0')).toThrow(/MD5/);
    expect(() => parseHostKeyPins('SHA256:tooShort')).toThrow(/ssh-keygen -lf/);
    expect(() => parseHostKeyPins('ssh-ed25519 AAAAnotakey')).toThrow();
  });
});

describe('hostVerifier for ssh2', () => {
  test('returns strictly true or false, reports each check, never throws', () => {
    const checks: unknown[] = [];
    const verify = makeHostVerifier(parseHostKeyPins(ED_FP), (c) => checks.push(c));
    expect(verify(blob(ED))).toBe(true);
    expect(verify(blob(EC))).toBe(false);
    expect(verify('not a buffer' as unknown as Buffer)).toBe(false);
    expect(checks).toEqual([
      { ok: true, fingerprint: ED_FP, keyType: 'ssh-ed25519' },
      { ok: false, fingerprint: EC_FP, keyType: 'ecdsa-sha2-nistp256', reason: 'mismatch' },
      { ok: false, fingerprint: 'unparseable', keyType: 'unknown', reason: 'mismatch' },
    ]);
  });

  test('insecure policy accepts anything but still reports the fingerprint', () => {
    const seen: string[] = [];
    const verify = makeHostVerifier({ kind: 'insecure' }, (c) => seen.push(c.fingerprint));
    expect(verify(blob(EC))).toBe(true);
    expect(seen).toEqual([EC_FP]);
  });
});
