/**
 * One sample every SOAK_SAMPLE_S: per daemon RSS (and its anonymous part), heap, fds and handles; per camera frames, up,
 * frozen, fetch errors and archive files; the tunnel's counters; every container's start time and
 * restart count; the archive's and Prometheus's disk use. A part that cannot be read (its daemon is
 * restarting) is left out of that sample, never guessed.
 */
import fs from 'node:fs';
import type { Stack } from './docker';
import { Series, sum } from './metrics';
import type { ContainerSample, ProcessStats, Sample } from './results';

export interface SamplerSources {
  stack: Stack;
  cameras: string[];
  now(): number;
  relayMetrics(): Promise<Series[] | undefined>;
  agentMetrics(): Promise<Series[] | undefined>;
  prometheusMetrics(): Promise<Series[] | undefined>;
}

/** prom-client's default metrics, which our daemons export with their own prefix (relay_, tunnel_agent_). */
const nodeStats = (m: Series[], prefix: string): ProcessStats => ({
  rss: sum(m, `${prefix}process_resident_memory_bytes`),
  heap: sum(m, `${prefix}nodejs_heap_size_used_bytes`),
  fds: sum(m, `${prefix}process_open_fds`),
  handles: sum(m, `${prefix}nodejs_active_handles_total`),
  fullGcs: sum(m, `${prefix}nodejs_gc_duration_seconds_count`, { kind: 'major' }),
});

/**
 * The daemon's processes together (sshd and its sessions; Caddy), from the host's /proc (the soak runs
 * as root); not what `docker exec` runs beside it (health checks, the soak's own commands).
 */
async function processTree(stack: Stack, service: string): Promise<ProcessStats | undefined> {
  const pids = await stack.pids(service);
  let rss = 0;
  let anon = 0;
  let fds = 0;
  let n = 0;
  const kib = (status: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  for (const pid of pids) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      rss += kib(status, 'VmRSS');
      anon += kib(status, 'RssAnon');
      fds += fs.readdirSync(`/proc/${pid}/fd`).length;
      n++;
    } catch {
      // the process ended between `docker top` and now
    }
  }
  return n ? { rss, anon, fds, handles: n } : undefined;
}

/** Per camera folder: KiB and files; the fault's filler in the root is not a camera's. */
async function archive(stack: Stack): Promise<{ bytes: number; files: Record<string, number> }> {
  const out = await stack.exec('relay', ['sh', '-c',
    'cd /var/lib/camrelay/snapshots && for d in */; do [ -d "$d" ] && printf "%s %s %s\\n" "${d%/}" "$(du -sk "$d" | cut -f1)" "$(find "$d" -type f | wc -l)"; done; true']);
  let bytes = 0;
  const files: Record<string, number> = {};
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [name, kb, n] = line.split(' ');
    bytes += Number(kb) * 1024;
    files[name] = Number(n);
  }
  return { bytes, files };
}

/**
 * du of Prometheus's data folder, entry by entry: the WAL and head chunks, the blocks, and apart from
 * them a block being written or deleted (`*.tmp-for-*`), whose chunk file is preallocated at 512 MiB
 * while compaction runs: it says how much room compaction needs, not how much data is kept.
 */
async function prometheusDisk(stack: Stack): Promise<{ bytes: number; wal: number; tmp: number }> {
  const out = await stack.exec('prometheus', ['sh', '-c', 'du -sk /prometheus/* 2>/dev/null; true']);
  let bytes = 0;
  let wal = 0;
  let tmp = 0;
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [kb, p] = line.split(/\s+/);
    const b = Number(kb) * 1024;
    if (/\.tmp-for-/.test(p)) {
      tmp += b;
      continue;
    }
    bytes += b;
    if (p.endsWith('/wal') || p.endsWith('/chunks_head')) wal += b;
  }
  return { bytes, wal, tmp };
}

const settle = <T>(p: Promise<T>): Promise<T | undefined> => p.catch(() => undefined);

export async function takeSample(src: SamplerSources): Promise<Sample> {
  const t = src.now();
  const services = src.stack.services;
  const [relay, agent, prom, inspect, sshd, caddy, arch, pdisk, relayProc, agentProc, promProc] = await Promise.all([
    src.relayMetrics(),
    src.agentMetrics(),
    src.prometheusMetrics(),
    settle(src.stack.inspect(services)),
    settle(processTree(src.stack, 'tunnel-server')),
    services.includes('caddy') ? settle(processTree(src.stack, 'caddy')) : undefined,
    settle(archive(src.stack)),
    settle(prometheusDisk(src.stack)),
    settle(processTree(src.stack, 'relay')),
    settle(processTree(src.stack, 'tunnel-agent-demo')),
    settle(processTree(src.stack, 'prometheus')),
  ]);
  const s: Sample = { t, daemons: {}, cameras: {}, relay: {}, agent: {}, containers: {}, disk: {} };
  if (relay) {
    s.daemons.relay = { ...nodeStats(relay, 'relay_'), anon: relayProc?.anon };
    for (const c of src.cameras) {
      const cam = { camera: c };
      s.cameras[c] = {
        frames: sum(relay, 'relay_frames_total', cam),
        up: sum(relay, 'relay_camera_up', cam),
        frozen: sum(relay, 'relay_camera_frozen', cam),
        fetchErrors: sum(relay, 'relay_fetch_errors_total', cam),
      };
    }
    s.relay = {
      clients: sum(relay, 'relay_clients'),
      connections: sum(relay, 'relay_client_connections_total'),
      archiveErrors: sum(relay, 'relay_archive_errors_total'),
      archiveSnapshots: sum(relay, 'relay_archive_snapshots_total'),
      rejected: sum(relay, 'relay_clients_rejected_total'),
    };
  }
  if (agent) {
    s.daemons['tunnel-agent'] = { ...nodeStats(agent, 'tunnel_agent_'), anon: agentProc?.anon };
    s.agent = {
      up: sum(agent, 'tunnel_agent_up'),
      reconnects: sum(agent, 'tunnel_agent_reconnects_total'),
      keepaliveTimeouts: sum(agent, 'tunnel_agent_keepalive_timeouts_total'),
      disconnects: sum(agent, 'tunnel_agent_disconnects_total'),
    };
  }
  if (prom) {
    s.daemons.prometheus = {
      rss: sum(prom, 'process_resident_memory_bytes'),
      anon: promProc?.anon,
      heap: sum(prom, 'go_memstats_heap_inuse_bytes'),
      fds: sum(prom, 'process_open_fds'),
      handles: sum(prom, 'go_goroutines'),
      fullGcs: sum(prom, 'go_gc_duration_seconds_count'),
    };
    s.disk.prometheusBlocks = sum(prom, 'prometheus_tsdb_blocks_loaded');
    s.disk.prometheusRetentions = sum(prom, 'prometheus_tsdb_time_retentions_total');
    s.disk.prometheusBlocksBytes = sum(prom, 'prometheus_tsdb_storage_blocks_bytes');
  }
  if (sshd) s.daemons['tunnel-server'] = sshd;
  if (caddy) s.daemons.caddy = caddy;
  if (arch) {
    s.disk.archiveBytes = arch.bytes;
    for (const c of src.cameras) (s.cameras[c] ??= {}).archiveFiles = arch.files[c] ?? 0;
  }
  if (pdisk) {
    s.disk.prometheusBytes = pdisk.bytes;
    s.disk.prometheusWalBytes = pdisk.wal;
    s.disk.prometheusCompactingBytes = pdisk.tmp;
  }
  if (inspect) {
    for (const [service, c] of inspect) {
      const cs: ContainerSample = { startedAt: c.State.StartedAt, restartCount: c.RestartCount, running: c.State.Running, oomKilled: c.State.OOMKilled };
      s.containers[service] = cs;
    }
  }
  return s;
}
