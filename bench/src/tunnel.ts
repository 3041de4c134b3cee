/**
 * Items 3 and 4: the tunnel. A real OpenSSH sshd on loopback (test-support/sshd.ts: the project's
 * own sshd_config and entrypoint), the reference server as the target behind the tunnel, and on the
 * other side either tunnel-agent or the Debian OpenSSH client (`ssh -N -R`, later under autossh).
 *
 *  - throughput: frames/s and latency through each forward with 1 / 10 / 50 fetches in flight
 *  - recovery: kill sshd, keep it down 3 s / 30 s / 120 s, start it; time from sshd listening again
 *    to the first whole frame through each forward (tunnel-agent and autossh run side by side, so
 *    both live through the very same outage)
 *  - dead-link detection: a proxy between client and sshd turns into a silent blackhole; time until
 *    each client gives up on the dead connection and dials again, then time to a frame once the
 *    link is back
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkJpeg } from '@camrelay/common';
import { Child, rawFetch, ROOT, spawnChild } from '../../test-support';
import { freePort, killAll as killAllSshd, Sshd, SSH_BIN, startSshd } from '../../test-support/sshd';
import { BlackholeProxy } from './blackhole-proxy';
import { cpuSeconds, loadgen, LoadResult, median, nodeArgs, RefProc, sleep, startReference, stop } from './procs';

export const AUTOSSH_BIN = '/usr/bin/autossh';

export interface ThroughputRow {
  client: 'tunnel-agent' | 'openssh';
  inFlight: number;
  fps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU of the tunnel client process per second of run (1.0 = one core) */
  clientCpu: number;
  /** the load generator's CPU per second of run */
  loadgenCpu: number;
}

export interface RecoveryRow {
  outageS: number;
  /** ms from sshd listening again to the first whole frame; undefined = not within the cap */
  agentMs: number | undefined;
  autosshMs: number | undefined;
  capMs: number;
}

export interface BlackholeResult {
  keepalive: string;
  /** ms from the blackhole to the client dialling a new connection */
  agentDetectMs: number | undefined;
  autosshDetectMs: number | undefined;
  /** ms from the link coming back to the first whole frame */
  agentRecoverMs: number | undefined;
  autosshRecoverMs: number | undefined;
  capMs: number;
}

export interface TunnelResult {
  throughput: ThroughputRow[];
  /** median over repetitions of agent fps / openssh fps, per in-flight count */
  ratio: Record<number, number>;
  recovery: RecoveryRow[];
  blackhole: BlackholeResult | undefined;
  sshVersion: string;
}

export interface TunnelOptions {
  inFlight: number[];
  reps: number;
  durationS: number;
  outagesS: number[];
  recoveryCapS: number;
  blackhole: boolean;
  log: (s: string) => void;
}

export interface Client {
  child: Child;
  pid: number;
  port: number;
}

export function knownHosts(sshd: Sshd, ports: number[], dir: string): string {
  const [type, key] = sshd.hostPublicKey.split(/\s+/);
  const file = path.join(dir, 'bench_known_hosts');
  fs.writeFileSync(file, ports.map((p) => `[127.0.0.1]:${p} ${type} ${key}\n`).join(''));
  return file;
}

export function startAgent(sshd: Sshd, sshPort: number, khFile: string, forwardPort: number, targetPort: number, env: Record<string, string> = {}, profileName?: string): Client {
  const child = spawnChild(process.execPath, [...nodeArgs(profileName), path.join(ROOT, 'tunnel-agent', 'dist', 'main.js')], {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      SSH_HOST: '127.0.0.1',
      SSH_PORT: String(sshPort),
      SSH_USER: sshd.user,
      SSH_PRIVATE_KEY_FILE: sshd.clientKeyFile,
      SSH_KNOWN_HOSTS_FILE: khFile,
      TUNNEL_FORWARDS: `${forwardPort}:127.0.0.1:${targetPort}`,
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      // one sshd port per camera in production; here 50 fetches may be in flight at once
      FORWARD_MAX_CONNECTIONS: '256',
      ...env,
    },
  });
  return { child, pid: child.proc.pid!, port: forwardPort };
}

function opensshArgs(sshd: Sshd, sshPort: number, khFile: string, forwardPort: number, targetPort: number, extra: string[]): string[] {
  return [
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${khFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', 'LogLevel=ERROR',
    '-o', 'ExitOnForwardFailure=yes',
    ...extra,
    '-i', sshd.clientKeyFile,
    '-p', String(sshPort),
    '-N',
    '-R', `${forwardPort}:127.0.0.1:${targetPort}`,
    `${sshd.user}@127.0.0.1`,
  ];
}

export function startOpenssh(sshd: Sshd, sshPort: number, khFile: string, forwardPort: number, targetPort: number): Client {
  const child = spawnChild(SSH_BIN, opensshArgs(sshd, sshPort, khFile, forwardPort, targetPort, []));
  return { child, pid: child.proc.pid!, port: forwardPort };
}

/** autossh with its usual recommended settings (-M 0, ServerAlive*, ExitOnForwardFailure, GATETIME=0). */
function startAutossh(sshd: Sshd, sshPort: number, khFile: string, forwardPort: number, targetPort: number, aliveIntervalS: number, aliveCountMax: number): Client {
  const child = spawnChild(
    AUTOSSH_BIN,
    ['-M', '0', ...opensshArgs(sshd, sshPort, khFile, forwardPort, targetPort, ['-o', `ServerAliveInterval=${aliveIntervalS}`, '-o', `ServerAliveCountMax=${aliveCountMax}`])],
    { env: { ...process.env, AUTOSSH_GATETIME: '0', AUTOSSH_PATH: SSH_BIN } },
  );
  return { child, pid: child.proc.pid!, port: forwardPort };
}

async function frameFlows(port: number): Promise<boolean> {
  const r = await rawFetch(port, '127.0.0.1', 2000);
  return checkJpeg(r.data).ok;
}

/** ms (from `since`, a performance.now() value) until a whole frame comes through, or undefined at the cap. */
async function timeToFrame(port: number, since: number, capMs: number): Promise<number | undefined> {
  while (performance.now() - since < capMs) {
    if (await frameFlows(port)) return performance.now() - since;
    await sleep(20);
  }
  return undefined;
}

export async function waitFlowing(c: Client, what: string, capMs = 30_000): Promise<void> {
  const t = await timeToFrame(c.port, performance.now(), capMs);
  if (t === undefined) throw new Error(`${what}: no frame through the forward within ${capMs} ms\nstdout: ${c.child.stdout().slice(-2000)}\nstderr: ${c.child.stderr().slice(-2000)}`);
}

async function throughputRun(c: Client, inFlight: number, durationS: number): Promise<{ r: LoadResult; cpu: number }> {
  const cpu0 = cpuSeconds(c.pid);
  const t0 = Date.now();
  const r = await loadgen({ mode: 'raw', port: c.port, conns: inFlight, durationS, warmupS: 0.5, timeoutS: 20 });
  return { r, cpu: (cpuSeconds(c.pid) - cpu0) / ((Date.now() - t0) / 1000) };
}

function fmt(ms: number | undefined): string {
  return ms === undefined ? 'not recovered' : `${(ms / 1000).toFixed(2)} s`;
}

export async function runTunnel(o: TunnelOptions): Promise<TunnelResult> {
  let ref: RefProc | undefined;
  let sshd: Sshd | undefined;
  const clients: Client[] = [];
  const proxies: BlackholeProxy[] = [];
  const stopClients = async () => {
    await Promise.all(clients.splice(0).map((c) => c.child.kill('SIGTERM')));
  };
  try {
    ref = await startReference();
    const ports = { agent: await freePort(), ssh: await freePort() };
    sshd = await startSshd({ permitListenPorts: [ports.agent, ports.ssh] });
    const sshVersion = (await new Promise<string>((resolve) => {
      const c = spawnChild(SSH_BIN, ['-V']);
      void c.exited.then(() => resolve(c.stderr().trim()));
    })) || 'unknown';
    const pA = new BlackholeProxy(sshd.port);
    const pB = new BlackholeProxy(sshd.port);
    proxies.push(pA, pB);
    await pA.start();
    await pB.start();
    const kh = knownHosts(sshd, [sshd.port, pA.port, pB.port], sshd.dir);

    // ---- 3. throughput -------------------------------------------------------------------------
    const agent = startAgent(sshd, sshd.port, kh, ports.agent, ref.port, {}, 'tunnel-agent-throughput');
    const ssh = startOpenssh(sshd, sshd.port, kh, ports.ssh, ref.port);
    clients.push(agent, ssh);
    await waitFlowing(agent, 'tunnel-agent');
    await waitFlowing(ssh, 'openssh');
    const throughput: ThroughputRow[] = [];
    const ratio: Record<number, number> = {};
    for (const n of o.inFlight) {
      const a: { r: LoadResult; cpu: number }[] = [];
      const s: { r: LoadResult; cpu: number }[] = [];
      for (let i = 0; i < o.reps; i++) {
        if (i % 2 === 0) {
          a.push(await throughputRun(agent, n, o.durationS));
          s.push(await throughputRun(ssh, n, o.durationS));
        } else {
          s.push(await throughputRun(ssh, n, o.durationS));
          a.push(await throughputRun(agent, n, o.durationS));
        }
      }
      ratio[n] = median(a.map((x, i) => x.r.fps / s[i].r.fps));
      for (const [client, runs] of [['tunnel-agent', a], ['openssh', s]] as const) {
        throughput.push({
          client,
          inFlight: n,
          fps: median(runs.map((x) => x.r.fps)),
          p50Ms: median(runs.map((x) => x.r.p50_ms)),
          p99Ms: median(runs.map((x) => x.r.p99_ms)),
          errors: runs.reduce((k, x) => k + x.r.errors + x.r.timeouts + x.r.bad, 0),
          clientCpu: median(runs.map((x) => x.cpu)),
          loadgenCpu: median(runs.map((x) => x.r.cpu)),
        });
      }
      const [ra, rs] = throughput.slice(-2);
      o.log(`tunnel ${n} in flight: tunnel-agent ${ra.fps.toFixed(0)} fps (p99 ${ra.p99Ms.toFixed(1)} ms), openssh ${rs.fps.toFixed(0)} fps (p99 ${rs.p99Ms.toFixed(1)} ms), ratio ${ratio[n].toFixed(2)}`);
    }
    await stopClients();

    // ---- 4. recovery after sshd outages ---------------------------------------------------------
    const recovery: RecoveryRow[] = [];
    if (o.outagesS.length > 0) {
      const ra = startAgent(sshd, sshd.port, kh, ports.agent, ref.port);
      const rs = startAutossh(sshd, sshd.port, kh, ports.ssh, ref.port, 15, 3);
      clients.push(ra, rs);
      await waitFlowing(ra, 'tunnel-agent');
      await waitFlowing(rs, 'autossh');
      const capMs = o.recoveryCapS * 1000;
      for (const outageS of o.outagesS) {
        await sshd.kill();
        await sleep(outageS * 1000);
        await sshd.restart(); // resolves once sshd logs "Server listening"
        const up = performance.now();
        const [agentMs, autosshMs] = await Promise.all([timeToFrame(ra.port, up, capMs), timeToFrame(rs.port, up, capMs)]);
        recovery.push({ outageS, agentMs, autosshMs, capMs });
        o.log(`recovery after ${outageS} s sshd outage: tunnel-agent ${fmt(agentMs)}, autossh ${fmt(autosshMs)}`);
        // both must flow again before the next outage (autossh may still be sleeping)
        await Promise.all([timeToFrame(ra.port, performance.now(), capMs), timeToFrame(rs.port, performance.now(), capMs)]);
      }
      await stopClients();
    }

    // ---- 4b. dead-link detection (silent blackhole) ---------------------------------------------
    let blackhole: BlackholeResult | undefined;
    if (o.blackhole) {
      const kaS = 5;
      const kaCount = 3;
      const ba = startAgent(sshd, pA.port, kh, ports.agent, ref.port, { SSH_KEEPALIVE_INTERVAL_S: String(kaS), SSH_KEEPALIVE_COUNT_MAX: String(kaCount) });
      const bs = startAutossh(sshd, pB.port, kh, ports.ssh, ref.port, kaS, kaCount);
      clients.push(ba, bs);
      await waitFlowing(ba, 'tunnel-agent via proxy');
      await waitFlowing(bs, 'autossh via proxy');
      const capMs = 45_000;
      const nA = pA.arrivals.length;
      const nB = pB.arrivals.length;
      const t0 = performance.now();
      pA.freeze();
      pB.freeze();
      const detected = async (p: BlackholeProxy, n: number) => {
        while (performance.now() - t0 < capMs) {
          if (p.arrivals.length > n) return p.arrivals[n] - t0;
          await sleep(20);
        }
        return undefined;
      };
      const [agentDetectMs, autosshDetectMs] = await Promise.all([detected(pA, nA), detected(pB, nB)]);
      pA.thaw();
      pB.thaw();
      const back = performance.now();
      const [agentRecoverMs, autosshRecoverMs] = await Promise.all([timeToFrame(ba.port, back, capMs), timeToFrame(bs.port, back, capMs)]);
      blackhole = { keepalive: `${kaS} s x ${kaCount}`, agentDetectMs, autosshDetectMs, agentRecoverMs, autosshRecoverMs, capMs };
      o.log(
        `blackhole (keepalive ${blackhole.keepalive}): detected by tunnel-agent after ${fmt(agentDetectMs)}, autossh after ${fmt(autosshDetectMs)}; ` +
          `frame after the link is back: tunnel-agent ${fmt(agentRecoverMs)}, autossh ${fmt(autosshRecoverMs)}`,
      );
      await stopClients();
    }
    return { throughput, ratio, recovery, blackhole, sshVersion };
  } finally {
    await stopClients();
    for (const p of proxies) await p.stop();
    await stop(ref);
    await killAllSshd();
  }
}
