/**
 * The demo stack on a real Docker engine, checked from OUTSIDE the containers (the host), with faults.
 * scripts/test-compose.sh builds and starts the stack (project COMPOSE_PROJECT_NAME, files COMPOSE_FILE,
 * wrapper $CAMRELAY_TEST_DIR/compose) and removes it afterwards; this file only observes and injects
 * faults. The tests run in order and share the stack: later ones rely on earlier ones' state.
 *
 * Reaching containers: published ports on 127.0.0.1 (raw 8080, HTTP 8081, SSH, Grafana), and the
 * containers' own addresses on the project's bridge networks for what is deliberately NOT published
 * (Prometheus :9090, relay metrics :9100, agent metrics :9101).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { checkJpeg } from '@camrelay/common';
import { frameSeqOf } from '../../fake-camera/src/frames';
import { sleep } from '../../test-support';

const ROOT = path.resolve(__dirname, '../..');
const TEST_DIR = process.env.CAMRELAY_TEST_DIR ?? '';
const PROJECT = process.env.COMPOSE_PROJECT_NAME ?? '';
const GRAFANA = process.env.CAMRELAY_TEST_GRAFANA === '1';
const SERVICES = (process.env.CAMRELAY_TEST_SERVICES ?? '').split(' ').filter(Boolean);
const KEEPALIVE_WINDOW_MS = Number(process.env.SSH_KEEPALIVE_INTERVAL_MS ?? 2000) * (Number(process.env.SSH_KEEPALIVE_COUNT_MAX ?? 2) + 1);

if (!TEST_DIR || !PROJECT) {
  throw new Error('run this through scripts/test-compose.sh (make test-compose): it starts the stack first');
}

// ------------------------------------------------------------------ process helpers

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: ROOT, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function ok(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

const compose = (...args: string[]) => ok(path.join(TEST_DIR, 'compose'), args, 120_000);
const docker = (...args: string[]) => ok('docker', args, 120_000);

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>, intervalMs = 500): Promise<T> {
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
    await sleep(intervalMs);
  }
}

// ------------------------------------------------------------------ docker views of the stack

interface Inspect {
  Id: string;
  Name: string;
  Config: { User: string; Labels: Record<string, string> };
  State: { Running: boolean; Health?: { Status: string } };
  HostConfig: { ReadonlyRootfs: boolean };
  NetworkSettings: {
    Ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
    Networks: Record<string, { IPAddress: string }>;
  };
}

const ids = new Map<string, string>();
async function cid(service: string): Promise<string> {
  const known = ids.get(service);
  if (known) return known;
  const id = (await compose('ps', '-q', service)).trim();
  if (!id) throw new Error(`service ${service} has no container`);
  ids.set(service, id);
  return id;
}

async function inspect(service: string): Promise<Inspect> {
  return (JSON.parse(await docker('inspect', await cid(service))) as Inspect[])[0];
}

/** The container's address on one of the project's networks (`home` or `vps`). */
async function ipOn(service: string, network: 'home' | 'vps'): Promise<string> {
  const nets = (await inspect(service)).NetworkSettings.Networks;
  const key = Object.keys(nets).find((k) => k === `${PROJECT}_${network}` || k.endsWith(`_${network}`));
  const ip = key ? nets[key].IPAddress : '';
  if (!ip) throw new Error(`${service} has no address on network ${network} (${Object.keys(nets).join(', ')})`);
  return ip;
}

/** Host port that Docker picked for a published container port (bound to 127.0.0.1 by the test). */
async function published(service: string, containerPort: number): Promise<number> {
  const b = (await inspect(service)).NetworkSettings.Ports[`${containerPort}/tcp`];
  if (!b || b.length === 0) throw new Error(`${service}:${containerPort} is not published`);
  return Number(b[0].HostPort);
}

// ------------------------------------------------------------------ protocol helpers

function rawFetch(port: number, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`raw fetch from 127.0.0.1:${port} timed out`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** A whole JPEG that the fake camera produced (its sequence number in the COM segment), or an error. */
function cameraFrame(buf: Buffer, where: string): number {
  const c = checkJpeg(buf);
  if (!c.ok) throw new Error(`${where}: not a whole JPEG (${c.reason}, ${buf.length} bytes)`);
  const seq = frameSeqOf(buf);
  if (seq === undefined) throw new Error(`${where}: a JPEG without the fake camera's sequence number`);
  return seq;
}

async function http(port: number, pathname: string, init: RequestInit = {}): Promise<{ status: number; type: string; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`, { ...init, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
}

/** Reads `count` parts of the relay's MJPEG stream (Content-Length framed), then disconnects. */
async function mjpegParts(port: number, count: number): Promise<Buffer[]> {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 30_000);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/stream.mjpg`, { signal: ctrl.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type') ?? '').toMatch(/^multipart\/x-mixed-replace;\s*boundary=/);
    const reader = res.body!.getReader();
    let buf = Buffer.alloc(0);
    const parts: Buffer[] = [];
    while (parts.length < count) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended after ${parts.length} parts`);
      buf = Buffer.concat([buf, Buffer.from(value)]);
      for (;;) {
        const headerEnd = buf.indexOf('\r\n\r\n');
        if (headerEnd < 0) break;
        const m = /content-length:\s*(\d+)/i.exec(buf.subarray(0, headerEnd).toString('latin1'));
        if (!m) {
          buf = buf.subarray(headerEnd + 4); // the stream's preamble / boundary line without a part
          continue;
        }
        const len = Number(m[1]);
        if (buf.length < headerEnd + 4 + len) break;
        parts.push(buf.subarray(headerEnd + 4, headerEnd + 4 + len));
        buf = buf.subarray(headerEnd + 4 + len);
      }
    }
    await reader.cancel();
    return parts.slice(0, count);
  } finally {
    clearTimeout(timer);
    ctrl.abort();
  }
}

/** Parses Prometheus text exposition into name{labels} → value. */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

async function scrape(service: 'relay' | 'tunnel-agent-demo'): Promise<Map<string, number>> {
  const [network, port] = service === 'relay' ? (['vps', 9100] as const) : (['home', 9101] as const);
  const res = await fetch(`http://${await ipOn(service, network)}:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
  return parseMetrics(await res.text());
}

async function metric(service: 'relay' | 'tunnel-agent-demo', name: string): Promise<number> {
  const v = (await scrape(service)).get(name);
  if (v === undefined) throw new Error(`${service} exposes no ${name}`);
  return v;
}

let promUrl = '';
async function promQuery(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  if (!promUrl) promUrl = `http://${await ipOn('prometheus', 'vps')}:9090`;
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${JSON.stringify(body)}`);
  return body.data.result;
}

/** The fake camera's own counters, read inside its container (its control port is container-local). */
async function cameraStats(): Promise<{ lastSeq: number; listening: boolean }> {
  const out = await docker('exec', await cid('fake-camera'), 'node', '-e',
    "fetch('http://127.0.0.1:9102/stats').then(r=>r.text()).then(t=>process.stdout.write(t))");
  return JSON.parse(out) as { lastSeq: number; listening: boolean };
}

/** Keeps a raw client, a snapshot poller and an MJPEG viewer busy until the returned stop() is awaited. */
function viewerLoad(): () => Promise<void> {
  let running = true;
  const ctrl = new AbortController();
  const loop = async (fn: () => Promise<unknown>, pauseMs: number) => {
    while (running) {
      await fn().catch(() => undefined);
      await sleep(pauseMs);
    }
  };
  const mjpeg = (async () => {
    while (running) {
      try {
        const res = await fetch(`http://127.0.0.1:${httpPort}/stream.mjpg`, { signal: ctrl.signal });
        const reader = res.body!.getReader();
        while (running && !(await reader.read()).done) {
          // consume and drop
        }
      } catch {
        await sleep(200);
      }
    }
  })();
  const done = Promise.all([loop(() => rawFetch(rawPort), 300), loop(() => http(httpPort, '/snapshot.jpg'), 500), mjpeg]);
  return async () => {
    running = false;
    ctrl.abort();
    await done;
  };
}

async function setCameraMode(mode: string): Promise<void> {
  const out = await docker('exec', await cid('fake-camera'), 'node', '-e',
    `fetch('http://127.0.0.1:9102/mode?m=${mode}',{method:'POST'}).then(r=>{process.stdout.write(String(r.status));process.exit(r.ok?0:1)},()=>process.exit(1))`);
  expect(out).toBe('200');
}

let rawPort = 0;
let httpPort = 0;

/** Frames flow end to end: two raw fetches give whole camera JPEGs with rising sequence numbers above `after`. */
async function framesFlow(after: number, timeoutMs: number): Promise<number> {
  return waitFor(`frames after seq ${after} on the raw port`, timeoutMs, async () => {
    const a = cameraFrame(await rawFetch(rawPort), 'raw');
    if (a <= after) return false;
    await sleep(300);
    const b = cameraFrame(await rawFetch(rawPort), 'raw');
    return b > a ? b : false;
  });
}

// ------------------------------------------------------------------ the checks

describe(`compose demo stack (project ${PROJECT})`, () => {
  beforeAll(async () => {
    rawPort = await published('relay', 8080);
    httpPort = await published('relay', 8081);
  });

  test('every started service is running and healthy', async () => {
    expect(SERVICES.length).toBeGreaterThanOrEqual(5);
    for (const s of SERVICES) {
      await waitFor(`${s} healthy`, 120_000, async () => (await inspect(s)).State.Health?.Status === 'healthy');
    }
  });

  test('raw TCP on the published 8080 (nc-style) gives whole JPEGs the fake camera sent', async () => {
    // Nobody watches yet, so the relay paces the camera at IDLE_FPS (1/s): fetch until frames change.
    const seqs: number[] = [];
    while (seqs.length < 30 && new Set(seqs).size < 3) {
      seqs.push(cameraFrame(await rawFetch(rawPort), `raw fetch ${seqs.length}`));
      await sleep(400);
    }
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThanOrEqual(seqs[i - 1]);
    expect(new Set(seqs).size).toBeGreaterThanOrEqual(3);
    // The camera really produced them: no sequence number beyond what it has sent.
    const stats = await cameraStats();
    expect(Math.max(...seqs)).toBeLessThanOrEqual(stats.lastSeq);
  });

  test('HTTP: snapshot, viewer page, health and readiness on the published 8081', async () => {
    const snap = await http(httpPort, '/snapshot.jpg');
    expect(snap.status).toBe(200);
    expect(snap.type).toBe('image/jpeg');
    cameraFrame(snap.body, 'snapshot');
    const page = await http(httpPort, '/');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    expect((await http(httpPort, '/healthz')).status).toBe(200);
    expect((await http(httpPort, '/readyz')).status).toBe(200);
  });

  test('MJPEG stream delivers successive whole camera frames', async () => {
    const parts = await mjpegParts(httpPort, 4);
    const seqs = parts.map((p, i) => cameraFrame(p, `mjpeg part ${i}`));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
  });

  test('the snapshot archive writes whole JPEG files into its volume', async () => {
    const files = await waitFor('a snapshot in /var/lib/camrelay/snapshots', 30_000, async () => {
      const out = (await docker('exec', await cid('relay'), 'ls', '/var/lib/camrelay/snapshots')).split('\n').filter((f) => f.endsWith('.jpg'));
      return out.length > 0 ? out : false;
    });
    const jpeg = Buffer.from(
      await docker('exec', await cid('relay'), 'node', '-e', `process.stdout.write(require('fs').readFileSync('/var/lib/camrelay/snapshots/${files[0]}').toString('base64'))`),
      'base64',
    );
    cameraFrame(jpeg, `archived ${files[0]}`);
  });

  test('Prometheus scrapes the relay AND the tunnel-agent through the tunnel', async () => {
    await waitFor('up == 1 for the relay and tunnel-agent jobs', 60_000, async () => {
      const r = await promQuery('up{job=~"relay|tunnel-agent"} == 1');
      return r.length === 2;
    });
    // The agent's target is the tunnel end on the tunnel-server, not the agent container itself.
    const agent = await promQuery('up{job="tunnel-agent"}');
    expect(agent[0].metric.instance).toBe('tunnel-server:9101');
    await waitFor('tunnel_agent_up and relay_camera_up scraped as 1', 30_000, async () => {
      const r = await promQuery('tunnel_agent_up == 1 or relay_camera_up == 1');
      return r.length === 2;
    });
    expect(Number((await promQuery('relay_frames_total'))[0].value[1])).toBeGreaterThan(0);
  });

  test('every Grafana dashboard panel query returns data from the live Prometheus', async () => {
    const script = path.join(ROOT, 'scripts/check-dashboard.js');
    if (!fs.existsSync(script)) throw new Error('scripts/check-dashboard.js (the dashboard query checker) is missing');
    if (!promUrl) promUrl = `http://${await ipOn('prometheus', 'vps')}:9090`;
    // Prometheus scrapes every 2 s here: a 15 s rate window holds enough samples. Per-protocol panels
    // (delivery latency, bytes out) need viewers, as on a real dashboard: keep one of each kind busy
    // while the script runs; it retries queries that have no data yet for --wait seconds.
    const stopLoad = viewerLoad();
    let r: Run;
    try {
      r = await run('node', [script, '--prometheus', promUrl, '--rate-interval', '15s', '--step', '2s', '--range', '3m', '--wait', '90'], { timeoutMs: 150_000 });
    } finally {
      await stopLoad();
    }
    if (r.code !== 0) throw new Error(`scripts/check-dashboard.js exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toMatch(/with data, 0 without/);
  });

  (GRAFANA ? test : test.skip)('Grafana: provisioned datasource and dashboard by uid, no anonymous access', async () => {
    const port = await published('grafana', 3000);
    const auth = 'Basic ' + Buffer.from(`admin:${process.env.GRAFANA_ADMIN_PASSWORD ?? ''}`).toString('base64');
    expect((await http(port, '/api/dashboards/uid/camrelay')).status).toBe(401);
    const ds = await http(port, '/api/datasources/uid/camrelay-prometheus', { headers: { authorization: auth } });
    expect(ds.status).toBe(200);
    const dash = await http(port, '/api/dashboards/uid/camrelay', { headers: { authorization: auth } });
    expect(dash.status).toBe(200);
  });
  if (!GRAFANA) {
    test('Grafana image is missing: said so, not faked', () => {
      console.warn('GRAFANA NOT TESTED: its image is not available on this machine; the stack ran without Grafana.');
      expect(SERVICES).not.toContain('grafana');
    });
  }

  test('only the intended ports are published, all on 127.0.0.1 here', async () => {
    const all = (await compose('ps', '-q')).split('\n').filter(Boolean);
    const expected = new Set(['tunnel-server 2222/tcp', 'relay 8080/tcp', 'relay 8081/tcp', ...(GRAFANA ? ['grafana 3000/tcp'] : [])]);
    const seen = new Set<string>();
    for (const id of all) {
      const c = (JSON.parse(await docker('inspect', id)) as Inspect[])[0];
      const service = c.Config.Labels['com.docker.compose.service'];
      for (const [port, bindings] of Object.entries(c.NetworkSettings.Ports ?? {})) {
        if (!bindings || bindings.length === 0) continue;
        seen.add(`${service} ${port}`);
        for (const b of bindings) expect(`${service} ${port} ${b.HostIp}`).toBe(`${service} ${port} 127.0.0.1`);
      }
    }
    expect([...seen].sort()).toEqual([...expected].sort());
  });

  test('containers run as non-root with read-only root filesystems', async () => {
    // The Node images start as root only for their entrypoint (it copies /run/secrets for uid 1000);
    // every process left running is the daemon as uid 1000 (test/compose/secrets.test.ts has the rest).
    for (const s of ['relay', 'tunnel-agent-demo', 'fake-camera']) {
      const c = await inspect(s);
      expect(`${s} ${c.HostConfig.ReadonlyRootfs}`).toBe(`${s} true`);
      const procs = (await docker('top', c.Id, '-eo', 'pid,uid,gid')).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/).slice(1).join(':'));
      expect(`${s} ${procs.join(' ')}`).toBe(`${s} 1000:1000`);
    }
    const prom = await inspect('prometheus');
    expect(prom.Config.User).toBe('nobody');
    expect(prom.HostConfig.ReadonlyRootfs).toBe(true);
    // The tunnel-server's entrypoint starts as root to place the secrets, then sshd runs as the tunnel user.
    expect((await inspect('tunnel-server')).HostConfig.ReadonlyRootfs).toBe(true);
    const top = await docker('top', await cid('tunnel-server'), '-eo', 'pid,uid,comm');
    const sshd = top.split('\n').filter((l) => /\bsshd\b/.test(l));
    expect(sshd.length).toBeGreaterThan(0);
    for (const l of sshd) expect(`uid ${l.trim().split(/\s+/)[1]}`).not.toBe('uid 0');
  });

  test('the tunnel-only user authenticates but gets no shell, no command and no -L/-W forward', async () => {
    const sshPort = await published('tunnel-server', 2222);
    const pub = fs.readFileSync(path.join(TEST_DIR, 'secrets/tunnel_host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const kh = path.join(TEST_DIR, 'known_hosts');
    fs.writeFileSync(kh, `[127.0.0.1]:${sshPort} ${pub}\n`);
    const base = ['-v', '-p', String(sshPort), '-i', path.join(TEST_DIR, 'secrets/tunnel_client_key'), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
      '-o', `UserKnownHostsFile=${kh}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=10', '-F', '/dev/null'];
    const ssh = (...args: string[]) => run('ssh', [...base, ...args], { timeoutMs: 30_000 });

    const cmd = await ssh('tunnel@127.0.0.1', 'echo CAMRELAY_SHELL_MARKER; id');
    expect(cmd.stderr).toMatch(/Authenticated to/); // the key works: what follows is policy, not a bad login
    expect(cmd.stdout).not.toContain('CAMRELAY_SHELL_MARKER');
    expect(cmd.code).not.toBe(0);

    // An interactive login: the session channel itself is refused (or at least the PTY).
    const tty = await ssh('-tt', 'tunnel@127.0.0.1');
    expect(tty.stderr).toMatch(/Authenticated to/);
    expect(tty.stderr).toMatch(/channel 0: open failed|PTY allocation request failed/);
    expect(tty.stdout).toBe('');

    // A stdio forward to the relay's metrics port on the VPS network: must be refused (PermitOpen none).
    const w = await ssh('-W', 'relay:9100', 'tunnel@127.0.0.1');
    expect(w.stderr).toMatch(/Authenticated to/);
    expect(w.stderr).toMatch(/administratively prohibited|open failed/);
    expect(w.stdout).toBe('');
  });

  test('a flaky camera behind the tunnel: clients get whole frames or nothing, and the errors are counted', async () => {
    const errors = async () => {
      let n = 0;
      for (const [k, v] of await scrape('relay')) if (k.startsWith('relay_fetch_errors_total')) n += v;
      return n;
    };
    const before = await errors();
    await setCameraMode('flaky');
    let whole = 0;
    try {
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        const buf = await rawFetch(rawPort);
        if (buf.length > 0) {
          cameraFrame(buf, 'raw fetch from a flaky camera'); // never a partial or foreign frame
          whole++;
        }
        await sleep(100);
      }
      await waitFor('relay_fetch_errors_total to grow', 30_000, async () => (await errors()) > before);
    } finally {
      await setCameraMode('ok');
    }
    expect(whole).toBeGreaterThan(0);
  });

  test('fault: tunnel-server restarted -> the agent reconnects and frames flow again', async () => {
    const before = cameraFrame(await rawFetch(rawPort), 'raw');
    const reconnects = await metric('tunnel-agent-demo', 'tunnel_agent_reconnects_total');
    await docker('restart', '-t', '5', await cid('tunnel-server'));
    await waitFor('tunnel_agent_reconnects_total to grow', 60_000, async () => (await metric('tunnel-agent-demo', 'tunnel_agent_reconnects_total')) > reconnects);
    await framesFlow(before, 60_000);
    await waitFor('tunnel-server healthy again', 60_000, async () => (await inspect('tunnel-server')).State.Health?.Status === 'healthy');
  });

  test('fault: agent cut off from the VPS network longer than the keepalive window -> detected, reconnected, frames flow', async () => {
    const agent = await cid('tunnel-agent-demo');
    const vpsNet = `${PROJECT}_vps`;
    const before = cameraFrame(await rawFetch(rawPort), 'raw');
    const ended = async () => {
      // Sessions that ended, whatever the agent blames (keepalive timeout, or a socket error when the
      // kernel reports the missing route first).
      let n = 0;
      for (const [k, v] of await scrape('tunnel-agent-demo')) {
        if (k === 'tunnel_agent_keepalive_timeouts_total' || k.startsWith('tunnel_agent_disconnects_total')) n += v;
      }
      return n;
    };
    const endedBefore = await ended();
    const reconnects = await metric('tunnel-agent-demo', 'tunnel_agent_reconnects_total');
    await docker('network', 'disconnect', vpsNet, agent);
    try {
      // Detected by keepalive within interval x (count + 1), plus scheduling slack.
      await waitFor('the agent to notice the dead link', KEEPALIVE_WINDOW_MS + 15_000, async () =>
        (await metric('tunnel-agent-demo', 'tunnel_agent_up')) === 0 ? true : false);
      expect(await ended()).toBeGreaterThan(endedBefore);
      await sleep(Math.max(0, 2 * KEEPALIVE_WINDOW_MS - 2_000)); // stay cut off well past the window
    } finally {
      await docker('network', 'connect', vpsNet, agent);
    }
    await waitFor('the agent to reconnect', 60_000, async () =>
      (await metric('tunnel-agent-demo', 'tunnel_agent_reconnects_total')) > reconnects && (await metric('tunnel-agent-demo', 'tunnel_agent_up')) === 1);
    await framesFlow(before, 60_000);
  });

  test('fault: camera stopped -> relay_camera_up 0 and /readyz fails; started -> recovers', async () => {
    const cam = await cid('fake-camera');
    await docker('stop', '-t', '5', cam);
    try {
      await waitFor('relay_camera_up == 0', 30_000, async () => (await metric('relay', 'relay_camera_up{camera="default"}')) === 0);
      await waitFor('/readyz to fail', 30_000, async () => (await http(httpPort, '/readyz')).status === 503);
      expect((await http(httpPort, '/healthz')).status).toBe(200); // alive, just not ready
    } finally {
      await docker('start', cam);
    }
    await waitFor('relay_camera_up == 1', 60_000, async () => (await metric('relay', 'relay_camera_up{camera="default"}')) === 1);
    await waitFor('/readyz to pass', 30_000, async () => (await http(httpPort, '/readyz')).status === 200);
    // The restarted camera counts from 0 again: any two rising frames prove the path is whole again.
    await framesFlow(0, 30_000);
    await waitFor('fake-camera healthy again', 60_000, async () => (await inspect('fake-camera')).State.Health?.Status === 'healthy');
  });

  test('the stack refuses to start without a Grafana admin password or the agent host-key pin', async () => {
    const wrapper = path.join(TEST_DIR, 'compose');
    const without = (name: string) => {
      const env = { ...process.env };
      delete env[name];
      return run(wrapper, ['config', '-q'], { env });
    };
    const noPassword = await without('GRAFANA_ADMIN_PASSWORD');
    expect(noPassword.code).not.toBe(0);
    expect(noPassword.stderr).toMatch(/GRAFANA_ADMIN_PASSWORD/);
    const noPin = await without('SSH_HOST_KEY');
    expect(noPin.code).not.toBe(0);
    expect(noPin.stderr).toMatch(/SSH_HOST_KEY/);
    expect((await run(wrapper, ['config', '-q'])).code).toBe(0);
  });
});
