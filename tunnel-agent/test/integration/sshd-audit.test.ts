/**
 * ssh-audit (Debian `ssh-audit`) against a REAL sshd running the project's own tunnel-server/sshd_config
 * through tunnel-server/entrypoint.sh (test-support/sshd.ts). Any algorithm or setting that ssh-audit
 * marks `[fail]` fails this tier, and the test names the lines. Then the agent's SSH library (ssh2) and
 * the OpenSSH client must still agree on a key exchange, cipher and MAC with the hardened server.
 */
import { execFile } from 'node:child_process';
import { Client } from 'ssh2';
import fs from 'node:fs';
import { describeWith, findExecutable } from '../../../test-support';
import { SSHD_COMPONENT, Sshd, killAll, openssh, sshdAvailable, startSshd } from '../../../test-support/sshd';

jest.setTimeout(60_000);

const SSH_AUDIT = findExecutable(['/usr/bin/ssh-audit', '/usr/local/bin/ssh-audit']);

interface AuditResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runAudit(port: number): Promise<AuditResult> {
  return new Promise((resolve) => {
    // -n: no colour codes; -b: one finding per line; -p: our port. Exit status is non-zero for both
    // warnings and failures, so the verdict comes from the lines, not from the status.
    execFile(SSH_AUDIT as string, ['-n', '-b', '-t', '10', '-p', String(port), '127.0.0.1'], { timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err && typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : err ? null : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The findings ssh-audit marks [fail] (one per line in its output). */
function failLines(output: string): string[] {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /\[fail\]/i.test(l));
}

/** The algorithms ssh-audit lists for a section, e.g. 'kex' -> ['curve25519-sha256', ...]. */
function algorithms(output: string, section: string): string[] {
  const re = new RegExp(`^\\(${section}\\)\\s+(\\S+)`);
  return output.split('\n').flatMap((l) => {
    const m = re.exec(l.trim());
    return m ? [m[1] as string] : [];
  });
}

interface Negotiated {
  kex: string;
  serverHostKey: string;
  cipher: string;
  mac: string;
}

/** Connects with ssh2 (the agent's library, default algorithm lists) and reports what was negotiated. */
function ssh2Handshake(sshd: Sshd): Promise<Negotiated> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let negotiated: Negotiated | undefined;
    c.on('handshake', (h) => {
      negotiated = { kex: h.kex, serverHostKey: h.serverHostKey, cipher: h.cs.cipher, mac: h.cs.mac };
    });
    c.on('ready', () => {
      c.end();
      if (negotiated) resolve(negotiated);
      else reject(new Error('ready without handshake event'));
    });
    c.on('error', (e) => reject(e));
    c.connect({
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      privateKey: fs.readFileSync(sshd.clientKeyFile),
      readyTimeout: 15_000,
      hostVerifier: (key: Buffer) => key.equals(Buffer.from(sshd.hostPublicKey.split(' ')[1] as string, 'base64')),
    });
  });
}

describeWith('ssh-audit', SSH_AUDIT !== undefined, 'ssh-audit of the tunnel-server', () => {
  describeWith(SSHD_COMPONENT, sshdAvailable(), 'ssh-audit of the tunnel-server', () => {
    let sshd: Sshd;
    let audit: AuditResult;

    beforeAll(async () => {
      sshd = await startSshd({ logLevel: 'INFO' });
      audit = await runAudit(sshd.port);
    });
    afterAll(async () => {
      await killAll();
    });

    test('ssh-audit reached the server and read its algorithm lists', () => {
      // Guards the next test: an audit that never connected has no [fail] lines either.
      expect(audit.stdout).toMatch(/\(gen\) banner: SSH-2\.0-OpenSSH_/);
      expect(algorithms(audit.stdout, 'kex').length).toBeGreaterThan(0);
      expect(algorithms(audit.stdout, 'enc').length).toBeGreaterThan(0);
      expect(algorithms(audit.stdout, 'mac').length).toBeGreaterThan(0);
      expect(algorithms(audit.stdout, 'key').length).toBeGreaterThan(0);
    });

    test('nothing that ssh-audit marks [fail]', () => {
      // The message lists the offending lines, e.g. "(kex) ecdh-sha2-nistp256 -- [fail] using weak elliptic curves".
      expect({ failLines: failLines(audit.stdout) }).toEqual({ failLines: [] });
    });

    test('the failLines parser does see a [fail] finding', () => {
      // The format this tier relies on (ssh-audit 2.5 batch output); keeps the check above from
      // passing vacuously if the format changed.
      expect(failLines('(kex) ecdh-sha2-nistp256 -- [fail] using weak elliptic curves\n(kex) curve25519-sha256 -- [info] available since OpenSSH 7.4')).toEqual([
        '(kex) ecdh-sha2-nistp256 -- [fail] using weak elliptic curves',
      ]);
    });

    test('ssh2 (the agent) still negotiates a key exchange, cipher and MAC with the hardened server', async () => {
      const n = await ssh2Handshake(sshd);
      expect(algorithms(audit.stdout, 'kex')).toContain(n.kex);
      expect(n.serverHostKey).toBe('ssh-ed25519');
      expect(failLines(audit.stdout).join('\n')).not.toContain(n.kex);
    });

    test('the OpenSSH client (Debian bookworm) still connects', async () => {
      const r = await openssh(sshd, ['-N', '-o', 'ExitOnForwardFailure=yes', '-o', 'ConnectTimeout=10', '-v'], [], { timeoutMs: 4000 });
      // -N keeps the session open until killed at timeoutMs: "Authenticated" means kex + auth succeeded.
      expect(r.stderr).toMatch(/Authenticated to 127\.0\.0\.1/);
    });
  });
});
