/**
 * Secrets that just work: a secret copied as root (root:root, mode 0600) and bind-mounted into
 * /run/secrets the way Compose v1 file secrets are, is readable by the Node daemons, which still run
 * as uid 1000 with no capabilities (scripts/docker-entrypoint.sh). Started as uid 1000 instead, the
 * agent's error names the file and says what to do.
 *
 * Runs inside `make test-compose` (scripts/test-compose.sh), on the images that script just built (taken
 * from the running stack's containers), but in its OWN containers with `--network none`: the agent's
 * server is 127.0.0.1:1 in its own namespace (connection refused is the expected state), the relay's
 * camera likewise. Every container carries the stack's project label, so the script's cleanup removes
 * it even if this file does not get to.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { sleep } from '../../test-support';

const TEST_DIR = process.env.CAMRELAY_TEST_DIR ?? '';
const PROJECT = process.env.COMPOSE_PROJECT_NAME ?? '';
if (!TEST_DIR || !PROJECT) {
  throw new Error('run this through scripts/test-compose.sh (make test-compose): it builds the images first');
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile('docker', args, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function docker(...args: string[]): Promise<string> {
  const r = await run(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(300);
  }
}

/** The image of one of the stack's services, as scripts/test-compose.sh built it. */
async function imageOf(service: string): Promise<string> {
  const id = (await docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--filter', `label=com.docker.compose.service=${service}`)).trim().split('\n')[0];
  if (!id) throw new Error(`no container of service ${service} in project ${PROJECT}`);
  return (await docker('inspect', '-f', '{{.Image}}', id)).trim();
}

const DIR = path.join(TEST_DIR, 'secrets-test');
const started: string[] = [];
const name = (what: string) => `${PROJECT}-secrets-${what}`;

/** Writes a secret owned by uid:uid, mode 0600, on the host (uid 0: exactly what `sudo cp` leaves behind). */
async function ownedSecret(file: string, data: string | Buffer, uid: number, image: string): Promise<string> {
  const p = path.join(DIR, file);
  fs.writeFileSync(p, data, { mode: 0o600 });
  fs.chmodSync(p, 0o600);
  if (process.getuid?.() === 0) {
    fs.chownSync(p, uid, uid);
  } else {
    await docker('run', '--rm', '--user', '0:0', '--network', 'none', '--entrypoint', 'chown', '-v', `${DIR}:/d`, image, `${uid}:${uid}`, `/d/${file}`);
  }
  const st = fs.statSync(p);
  expect([st.uid, st.gid, (st.mode & 0o777).toString(8)]).toEqual([uid, uid, '600']);
  return p;
}
const rootOwnedSecret = (file: string, data: string | Buffer, image: string) => ownedSecret(file, data, 0, image);

/** `docker run -d` with what docker-compose.yml gives the Node services (read-only root, the tmpfs mounts). */
async function start(what: string, image: string, args: string[], secretsTmpfs = true): Promise<string> {
  const n = name(what);
  await run(['rm', '-f', n]);
  started.push(n);
  await docker('run', '-d', '--name', n, '--label', `com.docker.compose.project=${PROJECT}`, '--network', 'none',
    '--read-only', '--tmpfs', '/tmp', ...(secretsTmpfs ? ['--tmpfs', '/run/camrelay-secrets'] : []), '--health-interval', '1s', ...args, image);
  return n;
}

const logs = async (n: string) => {
  const r = await run(['logs', n]);
  return r.stdout + r.stderr;
};

/** uid:gid of every process in the container, from the host's view (`docker top`). */
async function processUsers(n: string): Promise<string[]> {
  // Docker runs the image's HEALTHCHECK (`node -e fetch(.../healthz)`) as root through exec: not ours.
  const out = await docker('top', n, '-eo', 'pid,uid,gid,args');
  return out.trim().split('\n').slice(1).filter((l) => !l.includes('/healthz')).map((l) => l.trim().split(/\s+/).slice(1, 3).join(':'));
}

/** Uid, Gid, CapEff, CapBnd and NoNewPrivs of PID 1 (the daemon itself after the exec chain). */
async function pid1Status(n: string): Promise<Record<string, string>> {
  const out = await docker('exec', n, 'cat', '/proc/1/status');
  const want = ['Uid', 'Gid', 'CapEff', 'CapBnd', 'CapPrm', 'NoNewPrivs'];
  const m: Record<string, string> = {};
  for (const l of out.split('\n')) {
    const [k, v] = l.split(':\t');
    if (want.includes(k)) m[k] = v.trim().split(/\s+/).join(' ');
  }
  return m;
}

const DROPPED = { Uid: '1000 1000 1000 1000', Gid: '1000 1000 1000 1000', CapEff: '0000000000000000', CapPrm: '0000000000000000', CapBnd: '0000000000000000', NoNewPrivs: '1' };

let agentImage = '';
let relayImage = '';
let keyFile = '';
let keyData: Buffer;

beforeAll(async () => {
  agentImage = await imageOf('tunnel-agent-demo');
  relayImage = await imageOf('relay');
  fs.mkdirSync(DIR, { recursive: true, mode: 0o755 });
  // The stack's own client key (scripts/keys.sh), copied the way a user does it with `sudo cp`.
  keyData = fs.readFileSync(path.join(TEST_DIR, 'secrets/tunnel_client_key'));
  keyFile = await rootOwnedSecret('tunnel_client_key', keyData, agentImage);
});

afterAll(async () => {
  for (const n of started) await run(['rm', '-f', n]);
});

const agentArgs = () => [
  '-v', `${keyFile}:/run/secrets/tunnel_client_key:ro`,
  '-e', 'SSH_HOST=127.0.0.1', '-e', 'SSH_PORT=1', '-e', 'SSH_PRIVATE_KEY_FILE=/run/secrets/tunnel_client_key',
  // Any pin: the agent never gets as far as a host key here.
  '-e', 'SSH_HOST_KEY=SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
  '-e', 'TUNNEL_FORWARDS=1234:127.0.0.1:1234', '-e', 'METRICS_PORT=9101',
];

test('tunnel-agent reads a root-owned 0600 client key and runs as uid 1000 without capabilities', async () => {
  const n = await start('agent', agentImage, agentArgs());
  // Past the config (the key loaded and parsed): it tries the server, which refuses.
  await waitFor('the agent probing the (refused) server', 30_000, async () => {
    const l = await logs(n);
    if (/EACCES|config error|invalid SSH_PRIVATE_KEY_FILE/.test(l)) throw new Error(`agent failed on its key:\n${l}`);
    return /ECONNREFUSED/.test(l);
  });
  expect(await processUsers(n)).toEqual(['1000:1000']);
  expect(await pid1Status(n)).toEqual(DROPPED);
  // The copy the daemon reads: in the tmpfs, owner node, read-only for it; the host file is untouched.
  expect((await docker('exec', n, 'stat', '-c', '%u:%g %a', '/run/camrelay-secrets', '/run/camrelay-secrets/tunnel_client_key')).trim().split('\n'))
    .toEqual(['1000:1000 700', '1000:1000 400']);
  const st = fs.statSync(keyFile);
  expect([st.uid, (st.mode & 0o777).toString(8)]).toEqual([0, '600']);
  // The image's HEALTHCHECK still passes (as root through docker exec, against the daemon's /healthz).
  await waitFor('the agent healthy', 30_000, async () => (await docker('inspect', '-f', '{{.State.Health.Status}}', n)).trim() === 'healthy');
  // PID 1 is node itself: SIGTERM from `docker stop` reaches it and it shuts down cleanly (exit 0, not
  // the SIGKILL after the grace period, which would be 137).
  await docker('stop', '-t', '20', n);
  expect((await docker('inspect', '-f', '{{.State.ExitCode}}', n)).trim()).toBe('0');
  expect(await logs(n)).toMatch(/"signal":"SIGTERM".*shutting down/);
});

test('tunnel-agent started as uid 1000 cannot read the root-owned key and says what to do', async () => {
  const r = await run(['run', '--rm', '--user', '1000:1000', '--network', 'none', '--read-only', '--label', `com.docker.compose.project=${PROJECT}`, ...agentArgs(), agentImage]);
  expect(r.code).toBe(2);
  const out = r.stdout + r.stderr;
  expect(out).toContain('SSH_PRIVATE_KEY_FILE="/run/secrets/tunnel_client_key"');
  expect(out).toContain('EACCES');
  expect(out).toContain('sudo chown 1000');
  expect(out).toMatch(/start as root/);
});

test('without a tmpfs for the copies (an older compose file) a key owned by uid 1000 still works', async () => {
  const own = await ownedSecret('tunnel_client_key.1000', keyData, 1000, agentImage);
  const args = agentArgs().map((a) => (a === `${keyFile}:/run/secrets/tunnel_client_key:ro` ? `${own}:/run/secrets/tunnel_client_key:ro` : a));
  const n = await start('agent-notmpfs', agentImage, args, false);
  await waitFor('the agent probing the (refused) server', 30_000, async () => {
    const l = await logs(n);
    if (/EACCES|invalid SSH_PRIVATE_KEY_FILE/.test(l)) throw new Error(`agent failed on its key:\n${l}`);
    return /ECONNREFUSED/.test(l);
  });
  expect(await logs(n)).toContain('cannot write to /run/camrelay-secrets');
  expect(await processUsers(n)).toEqual(['1000:1000']);
});

test('relay reads a root-owned 0600 VIEWER_PASSWORD_FILE and runs as uid 1000', async () => {
  const password = `pw-${Date.now().toString(36)}-secret`;
  const pwFile = await rootOwnedSecret('viewer_password', `${password}\n`, relayImage);
  const n = await start('relay', relayImage, [
    '--tmpfs', '/var/lib/camrelay/snapshots',
    '-v', `${pwFile}:/run/secrets/viewer_password:ro`,
    '-e', 'CAMERA_HOST=127.0.0.1', '-e', 'CAMERA_PORT=1', '-e', 'CLIENT_PORT=8080', '-e', 'HTTP_PORT=8081', '-e', 'METRICS_PORT=9100',
    '-e', 'VIEWER_USER=viewer', '-e', 'VIEWER_PASSWORD_FILE=/run/secrets/viewer_password',
  ]);
  await waitFor('the relay healthy', 30_000, async () => {
    const s = (await docker('inspect', '-f', '{{.State.Status}} {{.State.Health.Status}}', n)).trim();
    if (s.startsWith('exited')) throw new Error(`relay exited:\n${await logs(n)}`);
    return s === 'running healthy';
  });
  expect(await processUsers(n)).toEqual(['1000:1000']);
  expect(await pid1Status(n)).toEqual(DROPPED);
  // The password from the file is the one in force: 401 without it or with a wrong one, 200 with it.
  const status = (auth: string) => docker('exec', n, 'node', '-e',
    `fetch('http://127.0.0.1:8081/status.json',{headers:${JSON.stringify(auth ? { authorization: auth } : {})}}).then(r=>console.log(r.status),e=>{console.error(e);process.exit(1)})`);
  const basic = (pw: string) => `Basic ${Buffer.from(`viewer:${pw}`).toString('base64')}`;
  expect((await status('')).trim()).toBe('401');
  expect((await status(basic('wrong-password'))).trim()).toBe('401');
  expect((await status(basic(password))).trim()).toBe('200');
  expect(await logs(n)).not.toContain(password);
});
