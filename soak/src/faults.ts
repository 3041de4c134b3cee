/**
 * The nine faults: how each is injected into the running stack and cleared, and what shows that it
 * took effect. A fault runs as inject -> hold -> clear; `injectAt` is when the fault is in place (the
 * hold counts from there), `clearAt` when the clearing action has finished (for the tunnel faults:
 * when the link is back). A restart and a storm are one action: they are held while it runs. The evidence compares the relay's and the
 * agent's metrics before the fault, at the clear and after the recovery deadline.
 */
import type { Stack } from './docker';
import { ok } from './docker';
import { Series, sum } from './metrics';
import type { FaultRecord } from './results';
import type { Slot } from './schedule';
import { viewerStorm } from './storm';
import type { Endpoints } from './viewers';

export interface CameraInfo {
  name: string;
  /** the fake camera's compose service */
  service: string;
}

export interface FaultContext {
  stack: Stack;
  endpoints: Endpoints;
  cameras: CameraInfo[];
  stormClients: number;
  now(): number;
  relayMetrics(): Promise<Series[] | undefined>;
  agentMetrics(): Promise<Series[] | undefined>;
  /** the relay's address may change when it restarts */
  relayRestarted(): Promise<void>;
  log(msg: string): void;
  /** clears the fault in place, while one is (for Ctrl-C) */
  active?: () => Promise<void>;
}

/** Metrics at the three moments the evidence compares (undefined: the scrape failed). */
export interface Moments {
  before: { relay?: Series[]; agent?: Series[] };
  atClear: { relay?: Series[]; agent?: Series[] };
  after: { relay?: Series[]; agent?: Series[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ARCHIVE = '/var/lib/camrelay/snapshots';
const FILLER = `${ARCHIVE}/.soak-fill`;
/** After a full archive is freed, the next snapshots (every 5 s) must be written within this. */
const ARCHIVE_AGAIN_WITHIN_MS = 12_000;

/** One fault as it runs: `inject` returns when the fault is in place, `clear` when it is gone. */
interface Injection {
  inject(): Promise<void>;
  /** for faults whose hold is the action itself (storm, restart): returns at the clear */
  holdAndClear?(holdMs: number): Promise<void>;
  clear(): Promise<void>;
  /** what is left of the fault after the clear, undone once the cameras flow again (link-cut-nat) */
  release?(): Promise<void>;
  notes: string[];
}

function injection(slot: Slot, ctx: FaultContext): Injection {
  const notes: string[] = [];
  const cam = ctx.cameras.find((c) => c.name === slot.camera);
  const cameraMode = (mode: string) => async () => {
    if (!cam) throw new Error(`no camera for ${slot.kind}`);
    await ctx.stack.cameraMode(cam.service, mode);
  };
  switch (slot.kind) {
    case 'camera-hang':
      return { inject: cameraMode('hang-accept'), clear: cameraMode('ok'), notes };
    case 'camera-refused':
      return { inject: cameraMode('refused'), clear: cameraMode('ok'), notes };
    case 'camera-flaky':
      return { inject: cameraMode('flaky'), clear: cameraMode('ok'), notes };
    case 'camera-frozen':
      return { inject: cameraMode('frozen'), clear: cameraMode('ok'), notes };
    case 'tunnel-server-restart': {
      return {
        inject: async () => void (await ctx.stack.docker(['stop', '-t', '5'], 'tunnel-server')),
        // the link is back when sshd listens again, not when its container starts (its entrypoint runs first)
        clear: async () => {
          await ctx.stack.docker(['start'], 'tunnel-server');
          const started = ctx.now();
          while (!(await ctx.stack.listening('tunnel-server', 2222).catch(() => false))) {
            if (ctx.now() - started > 60_000) throw new Error('sshd does not listen 60 s after its container started');
            await sleep(100);
          }
          notes.push(`sshd listening ${((ctx.now() - started) / 1000).toFixed(1)} s after its container started`);
        },
        notes,
      };
    }
    case 'link-cut':
      return linkCut(ctx, notes, false);
    case 'link-cut-nat':
      return linkCut(ctx, notes, true);
    case 'relay-restart':
      return {
        inject: async () => undefined,
        holdAndClear: async () => {
          await ctx.stack.docker(['restart', '-t', '15'], 'relay');
          await ctx.relayRestarted();
        },
        clear: async () => undefined,
        notes,
      };
    case 'viewer-storm':
      return {
        inject: async () => undefined,
        holdAndClear: async (holdMs) => {
          const s = await viewerStorm(ctx.endpoints, ctx.cameras.map((c) => c.name), ctx.stormClients, holdMs);
          notes.push(`storm: ${s.clients} clients, ${s.neverRead} never read, ${s.served} served, ${s.failed} not served`);
        },
        clear: async () => undefined,
        notes,
      };
    case 'archive-full':
      return {
        inject: async () => {
          // dd stops at ENOSPC (exit 1): the volume is then full to the last block
          await ctx.stack.exec('relay', ['sh', '-c', `dd if=/dev/zero of=${FILLER} bs=1M 2>/dev/null; df -k ${ARCHIVE} | tail -1`]).then((df) => notes.push(`filled: ${df.trim().split(/\s+/).slice(1, 5).join(' ')} (df -k)`));
        },
        clear: async () => void (await ctx.stack.exec('relay', ['rm', '-f', FILLER])),
        notes,
      };
  }
}

/**
 * The silent cut: every packet in and out of the agent's interface on the `vps` network dropped by
 * iptables inside the agent container's network namespace. DROP sends nothing back: both ends see
 * only silence, exactly a dead NAT entry or a frozen link. When it clears, the old connection's
 * packets get through again (its retransmissions end it cleanly) - unless `natLoss`: then the old
 * connection alone stays dropped, as after a home router reboot, and only the server's own dead-peer
 * detection can free the forwarded ports it holds. That rule goes once the cameras flow again.
 */
function linkCut(ctx: FaultContext, notes: string[], natLoss: boolean): Injection {
  let pid = 0;
  let wide: string[][] = [];
  let old: string[][] = [];
  const iptables = (rule: string[]) => ok('nsenter', ['-t', String(pid), '-n', 'iptables', '-w', '5', ...rule], 15_000);
  return {
    inject: async () => {
      pid = await ctx.stack.pid('tunnel-agent-demo');
      const ip = await ctx.stack.ip('tunnel-agent-demo', 'vps');
      const addrs = await ok('nsenter', ['-t', String(pid), '-n', 'ip', '-o', '-4', 'addr', 'show']);
      const dev = addrs.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[3]?.split('/')[0] === ip)?.[1];
      if (!dev) throw new Error(`no interface with ${ip} in the agent's network namespace`);
      if (natLoss) {
        // the agent's SSH connection: local port of the one established connection to the server's 2222
        const ss = await ok('nsenter', ['-t', String(pid), '-n', 'ss', '-Htn', 'state', 'established', 'dport', '=', ':2222']);
        const port = ss.trim().split('\n')[0]?.trim().split(/\s+/)[2]?.split(':').pop();
        if (!port) throw new Error('the agent has no SSH connection to cut');
        old = [['INPUT', '-i', dev, '-p', 'tcp', '--dport', port, '-j', 'DROP'], ['OUTPUT', '-o', dev, '-p', 'tcp', '--sport', port, '-j', 'DROP']];
        notes.push(`old connection from port ${port} stays dropped after the clear`);
      }
      wide = [['INPUT', '-i', dev, '-j', 'DROP'], ['OUTPUT', '-o', dev, '-j', 'DROP']];
      for (const r of [...old, ...wide]) await iptables(['-I', ...r]);
      notes.push(`DROP in and out of ${dev} (${ip}) in the agent's namespace`);
    },
    clear: async () => {
      for (const r of wide) await iptables(['-D', ...r]);
      wide = [];
    },
    release: async () => {
      for (const r of old) await iptables(['-D', ...r]);
      old = [];
    },
    notes,
  };
}

/** Whether the fault was seen to take effect, and the figures that say so. */
export function evidence(slot: Slot, m: Moments): { seen: boolean; evidence: string } {
  const d = (a: Series[] | undefined, b: Series[] | undefined, name: string, labels: Record<string, string> = {}) => {
    const x = a && sum(a, name, labels);
    const y = b && sum(b, name, labels);
    return x === undefined || y === undefined ? undefined : x - y;
  };
  const cam: Record<string, string> = slot.camera ? { camera: slot.camera } : {};
  const fmt = (n: number | undefined) => (n === undefined ? '?' : n >= 0 ? `+${n}` : String(n));
  switch (slot.kind) {
    case 'camera-hang':
    case 'camera-refused':
    case 'camera-flaky': {
      const up = m.atClear.relay && sum(m.atClear.relay, 'relay_camera_up', cam);
      const errors = d(m.atClear.relay, m.before.relay, 'relay_fetch_errors_total', cam);
      return { seen: up === 0 || (errors ?? 0) > 0, evidence: `${slot.camera}: up ${up ?? '?'} at the clear, fetch errors ${fmt(errors)}` };
    }
    case 'camera-frozen': {
      const frozen = m.atClear.relay && sum(m.atClear.relay, 'relay_camera_frozen', cam);
      return { seen: frozen === 1, evidence: `${slot.camera}: relay_camera_frozen ${frozen ?? '?'} at the clear` };
    }
    case 'tunnel-server-restart':
    case 'link-cut':
    case 'link-cut-nat': {
      const timeouts = d(m.after.agent, m.before.agent, 'tunnel_agent_keepalive_timeouts_total');
      const ended = d(m.after.agent, m.before.agent, 'tunnel_agent_disconnects_total');
      const reconnects = d(m.after.agent, m.before.agent, 'tunnel_agent_reconnects_total');
      const seen = (reconnects ?? 0) > 0 && (slot.kind === 'tunnel-server-restart' ? (ended ?? 0) > 0 : (timeouts ?? 0) > 0);
      return { seen, evidence: `agent: keepalive timeouts ${fmt(timeouts)}, sessions ended ${fmt(ended)}, reconnects ${fmt(reconnects)}` };
    }
    case 'relay-restart': {
      const a = m.after.relay && sum(m.after.relay, 'relay_process_start_time_seconds');
      const b = m.before.relay && sum(m.before.relay, 'relay_process_start_time_seconds');
      return { seen: a !== undefined && b !== undefined && a > b, evidence: `relay process start ${b ?? '?'} -> ${a ?? '?'}` };
    }
    case 'viewer-storm': {
      const conns = d(m.after.relay, m.before.relay, 'relay_client_connections_total');
      return { seen: (conns ?? 0) > 0, evidence: `relay accepted connections ${fmt(conns)}` };
    }
    case 'archive-full': {
      const errors = d(m.atClear.relay, m.before.relay, 'relay_archive_errors_total');
      return { seen: (errors ?? 0) > 0, evidence: `archive errors ${fmt(errors)} while full` };
    }
  }
}

/**
 * Runs one slot: inject, hold, clear, then the evidence. Returns when the evidence is in, with what
 * must be undone once the cameras flow again; the caller waits for that and for the next slot.
 */
export async function runFault(slot: Slot, ctx: FaultContext): Promise<{ record: FaultRecord; release?: () => Promise<void> }> {
  const inj = injection(slot, ctx);
  const m: Moments = { before: {}, atClear: {}, after: {} };
  const both = async () => ({ relay: await ctx.relayMetrics(), agent: await ctx.agentMetrics() });
  m.before = await both();
  const t0 = ctx.now();
  const rec: FaultRecord = { slot, startAt: t0, injectAt: t0, clearAt: t0, effect: { seen: false, evidence: '' }, notes: inj.notes };
  try {
    ctx.log(`#${slot.index} ${slot.kind}${slot.camera ? ` on ${slot.camera}` : ''}: inject (hold ${slot.holdS} s)`);
    if (inj.holdAndClear) {
      await inj.holdAndClear(slot.holdS * 1000);
    } else {
      ctx.active = inj.clear;
      await inj.inject();
      // the fault is in place now: the hold counts from here
      rec.injectAt = ctx.now();
      await sleep(Math.max(0, rec.injectAt + slot.holdS * 1000 - ctx.now()));
      m.atClear = await both();
      await inj.clear();
      ctx.active = undefined;
    }
    rec.clearAt = ctx.now();
  } catch (e) {
    rec.error = (e as Error).message;
    rec.clearAt = ctx.now();
    ctx.log(`#${slot.index} ${slot.kind}: ${rec.error}`);
    await inj.clear().catch((err: Error) => ctx.log(`#${slot.index} ${slot.kind}: clearing failed too: ${err.message}`));
    ctx.active = undefined;
  }
  ctx.log(`#${slot.index} ${slot.kind}: cleared after ${((rec.clearAt - rec.injectAt) / 1000).toFixed(1)} s`);
  if (slot.kind === 'archive-full' && !rec.error) {
    const t = await archiveWritingAgain(ctx, rec.clearAt, rec.clearAt + ARCHIVE_AGAIN_WITHIN_MS);
    rec.notes.push(t === undefined ? `archive: **no snapshot written within ${ARCHIVE_AGAIN_WITHIN_MS / 1000} s after the clear**` : `archive: writing again ${(t / 1000).toFixed(1)} s after the clear`);
  }
  // The evidence, as soon as it shows (the agent's counters move when it has reconnected), at the
  // latest at the recovery deadline + 2 s. A fault that is one action (restart, storm) has no moment
  // between inject and clear: its figures "at the clear" are the ones after.
  const atClearMissing = !m.atClear.relay;
  const deadline = rec.clearAt + slot.recoveryTargetS * 1000 + 2000;
  for (;;) {
    m.after = await both();
    if (inj.holdAndClear || atClearMissing) m.atClear = m.after;
    rec.effect = evidence(slot, m);
    if (rec.effect.seen || ctx.now() >= deadline) break;
    await sleep(500);
  }
  ctx.log(`#${slot.index} ${slot.kind}: ${rec.effect.seen ? 'took effect' : 'NO EFFECT SEEN'}: ${rec.effect.evidence}`);
  return { record: rec, release: inj.release };
}

/** ms after the clear when relay_archive_snapshots_total grew again (polled every 500 ms until `untilMs`, run time). */
async function archiveWritingAgain(ctx: FaultContext, clearAt: number, untilMs: number): Promise<number | undefined> {
  const count = async () => {
    const r = await ctx.relayMetrics();
    return r && sum(r, 'relay_archive_snapshots_total');
  };
  const start = await count();
  while (ctx.now() < untilMs) {
    await sleep(500);
    const c = await count();
    if (start !== undefined && c !== undefined && c > start) return ctx.now() - clearAt;
  }
  return undefined;
}
