/**
 * The soak harness (`make soak` -> soak/run.sh -> scripts/test-compose.sh -> soak/checks.sh -> here),
 * run on the host once the stack is up: steady viewers on every camera, one fault a period in
 * rotation (faults.ts), a sample every SOAK_SAMPLE_S (sampler.ts); at the end every container's log,
 * the analysis (analysis.ts), the plots (plots.ts) and SOAK.md (report.ts).
 *
 *   node -r ./bench/register.js soak/src/main.ts --report-json REPORT   run (called by soak/checks.sh)
 *   node -r ./bench/register.js soak/src/main.ts --report-only          re-render from SOAK_RESULTS
 *
 * Exit code: 0 when no target is missed, 1 when one is, 2 for a bad setting.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keysOnly, loadCameraList } from '@camrelay/common';
import { gitCommit } from '../../test-support';
import { analyse } from './analysis';
import { readConfig, SoakConfig, SoakConfigError } from './config';
import { Stack } from './docker';
import { CameraInfo, FaultContext, runFault } from './faults';
import { collectLogs } from './logs';
import { scrape, Series } from './metrics';
import { renderPlots } from './plots';
import { renderReport, summary } from './report';
import type { FaultRecord, Sample, SoakResults, StackSettings } from './results';
import { takeSample } from './sampler';
import { buildSchedule } from './schedule';
import { Endpoints, Poller, SteadyViewer } from './viewers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long the schedule waits past a slot's end for every camera to have a new frame. */
const RECOVERY_WAIT_CAP_MS = 300_000;
const wallStart = Date.now();
function log(s: string): void {
  process.stderr.write(`[soak ${((Date.now() - wallStart) / 1000).toFixed(0).padStart(5)}s] ${s}\n`);
}


/** A /metrics source on a container's network address, looked up again after a failure (restarts). */
function metricsSource(stack: Stack, service: string, network: 'home' | 'vps', port: number): () => Promise<Series[] | undefined> {
  let url: string | undefined;
  return async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        url ??= `http://${await stack.ip(service, network)}:${port}/metrics`;
        return await scrape(url);
      } catch {
        url = undefined;
      }
    }
    return undefined;
  };
}

/** Prometheus duration flag value (`6m`, `2h`, `90s`) in seconds. */
function durationS(v: string | undefined, def: number): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(v ?? '');
  return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'] : def;
}

async function stackSettings(stack: Stack): Promise<StackSettings> {
  const [relay, agent, sshd, prom] = await Promise.all([stack.env('relay'), stack.env('tunnel-agent-demo'), stack.env('tunnel-server'), stack.inspectOne('prometheus')]);
  const args = ((prom as unknown as { Args?: string[] }).Args ?? []).join(' ');
  const flag = (name: string) => new RegExp(`--${name.replace(/\./g, '\\.')}=(\\S+)`).exec(args)?.[1];
  const env: Record<string, string> = {};
  const pick = (from: Record<string, string>, keys: string[]) => keys.forEach((k) => from[k] && (env[k] = from[k]));
  pick(relay, ['RETRY_BASE_MS', 'RETRY_MAX_MS', 'CAMERA_IDLE_TIMEOUT_MS', 'CAMERA_FROZEN_AFTER_MS', 'MAX_CLIENTS', 'MAX_CLIENTS_PER_IP', 'SNAPSHOT_CRON', 'SNAPSHOT_KEEP', 'LOG_LEVEL']);
  pick(agent, ['SSH_KEEPALIVE_INTERVAL_MS', 'SSH_KEEPALIVE_COUNT_MAX', 'RECONNECT_MIN_MS', 'RECONNECT_MAX_MS']);
  pick(sshd, ['SSHD_CLIENT_ALIVE_INTERVAL', 'SSHD_CLIENT_ALIVE_COUNT_MAX']);
  return {
    keepaliveWindowS: (Number(agent.SSH_KEEPALIVE_INTERVAL_MS || 15000) * (Number(agent.SSH_KEEPALIVE_COUNT_MAX || 3) + 1)) / 1000,
    frozenAfterS: Number(relay.CAMERA_FROZEN_AFTER_MS || 60000) / 1000,
    snapshotKeep: Number(relay.SNAPSHOT_KEEP || 0),
    prometheusRetentionS: durationS(flag('storage.tsdb.retention.time'), 15 * 86400),
    prometheusBlockS: durationS(flag('storage.tsdb.min-block-duration'), 7200),
    env,
  };
}

function machine(): SoakResults['machine'] {
  return {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model ?? 'unknown',
    memGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    node: process.version,
    loadAvgStart: os.loadavg(),
    loadAvgEnd: [],
  };
}

/** Writes SOAK.md and the plots from results; returns the analysis's counts. */
async function writeReport(r: SoakResults, cfg: SoakConfig): Promise<{ passed: number; failed: number }> {
  const a = analyse(r);
  let plotsError: string | undefined;
  try {
    await renderPlots(r, cfg.plotsDir, a.trendFromMs);
  } catch (e) {
    plotsError = (e as Error).message;
    log(`plots: ${plotsError}`);
  }
  fs.mkdirSync(path.dirname(cfg.output), { recursive: true });
  const plotsRel = path.relative(path.dirname(cfg.output), cfg.plotsDir) || '.';
  fs.writeFileSync(cfg.output, renderReport(r, a, { plotsRel, plotsError }));
  process.stdout.write(`\n${summary(a)}\n\nWrote ${path.relative(process.cwd(), cfg.output)} (${a.passed} met, ${a.failed} missed).\n`);
  return { passed: a.passed, failed: a.failed + (plotsError ? 1 : 0) };
}

async function run(cfg: SoakConfig): Promise<SoakResults> {
  const stack = Stack.fromEnv();
  const list = loadCameraList(process.env.CAMERAS_FILE ?? '', { validate: keysOnly() });
  // the demo's fake cameras: a pull camera's `lan` host is its compose service; the push camera is fake-camera-push
  const cameras: CameraInfo[] = list.map((e) => ({ name: e.name, service: e.lan?.host ?? 'fake-camera-push' }));
  const names = cameras.map((c) => c.name);
  // every container id now: a compose lookup (seconds on a busy machine) must not delay a fault
  await Promise.all(stack.services.map((s) => stack.cid(s)));
  const settings = await stackSettings(stack);
  const endpoints = new Endpoints(stack, Object.fromEntries(list.map((e) => [e.name, e.rawPort])));
  await endpoints.refresh();

  let t0 = Date.now();
  const now = () => Date.now() - t0;
  const viewers = names.map((c) => new SteadyViewer(c, endpoints, now));
  const pollers = viewers.map((v) => new Poller(v, endpoints, now));
  viewers.forEach((v) => v.start());
  log(`waiting for frames of ${names.join(', ')}`);
  const deadline = Date.now() + 180_000;
  while (viewers.some((v) => v.record.arrivals.length < 3)) {
    if (Date.now() > deadline) throw new Error(`no frames after 180 s from ${viewers.filter((v) => v.record.arrivals.length < 3).map((v) => v.camera).join(', ')}`);
    await sleep(500);
  }
  // the run starts now: frames before it are the warm-up's
  t0 = Date.now();
  for (const v of viewers) v.record.arrivals.length = 0;
  pollers.forEach((p) => p.start());

  const schedOpts = { minutes: cfg.minutes, periodS: cfg.periodS, holdS: cfg.holdS, warmupS: cfg.warmupS, faults: cfg.faults, recoveryTargetS: cfg.recoveryTargetS };
  const slots = buildSchedule(schedOpts, { cameras: names, keepaliveWindowS: settings.keepaliveWindowS, frozenAfterS: settings.frozenAfterS });
  // SOAK_MINUTES, or longer when the faults (at least one round) take longer
  const lengthMs = cfg.minutes * 60_000;
  log(`run: ${cfg.minutes} min or until the last of ${slots.length} faults has recovered, a sample every ${cfg.sampleS} s`);

  const relayMetrics = metricsSource(stack, 'relay', 'vps', 9100);
  const agentMetrics = metricsSource(stack, 'tunnel-agent-demo', 'home', 9101);
  const prometheusMetrics = metricsSource(stack, 'prometheus', 'vps', 9090);
  const samples: Sample[] = [];
  const errors: string[] = [];
  let sampling = true;
  const sampler = (async () => {
    for (let i = 0; sampling; i++) {
      try {
        samples.push(await takeSample({ stack, cameras: names, now, relayMetrics, agentMetrics, prometheusMetrics }));
      } catch (e) {
        errors.push(`sample at ${now()} ms: ${(e as Error).message}`);
      }
      const next = (i + 1) * cfg.sampleS * 1000;
      while (sampling && now() < next) await sleep(Math.min(250, next - now()));
    }
  })();

  const ctx: FaultContext = {
    stack,
    endpoints,
    cameras,
    stormClients: cfg.stormClients,
    now,
    relayMetrics,
    agentMetrics,
    relayRestarted: async () => {
      for (let i = 0; i < 20; i++) {
        try {
          await endpoints.refresh();
          return;
        } catch {
          await sleep(500);
        }
      }
    },
    log,
  };
  const faults: FaultRecord[] = [];
  const startedAtMs = t0;
  const results: SoakResults = {
    startedAt: new Date(t0).toISOString(),
    startedAtMs,
    durationMs: lengthMs,
    command: `SOAK_MINUTES=${cfg.minutes} make soak`,
    commit: gitCommit(),
    machine: machine(),
    config: { minutes: cfg.minutes, periodS: cfg.periodS, holdS: cfg.holdS, warmupS: cfg.warmupS, sampleS: cfg.sampleS, settleS: cfg.settleS, stormClients: cfg.stormClients, recoveryTargetS: cfg.recoveryTargetS },
    cameras: names,
    stack: settings,
    samples,
    faults,
    viewers: viewers.map((v) => v.record),
    logs: {},
    errors,
  };
  onSignal = async () => {
    log('interrupted: clearing the fault in place (scripts/test-compose.sh removes the stack, unless KEEP_STACK=1)');
    await ctx.active?.().catch(() => undefined);
  };
  // The next fault starts one period after this one did, and not before every camera has a new frame
  // again (waiting at most RECOVERY_WAIT_CAP_MS): a slow recovery then holds the schedule back rather
  // than spilling into the next fault's figures. A period shorter than a fault needs (the smoke) lets
  // the faults follow each other as fast as the stack recovers.
  let nextAt = cfg.warmupS * 1000;
  for (const slot of slots) {
    await sleep(Math.max(0, nextAt - now()));
    const startedAt = now();
    const { record, release } = await runFault(slot, ctx);
    faults.push(record);
    ctx.active = release; // Ctrl-C while waiting: undo what is left of the fault too
    const waitFrom = now();
    const newFrame = (v: SteadyViewer) => (v.record.arrivals.at(-1) ?? -Infinity) > record.clearAt;
    while (now() - waitFrom < RECOVERY_WAIT_CAP_MS && !viewers.every(newFrame)) await sleep(250);
    const late = now() - Math.max(startedAt + cfg.periodS * 1000, record.clearAt + slot.recoveryTargetS * 1000);
    if (late > 1000) {
      record.notes.push(`the next fault waited ${(late / 1000).toFixed(0)} s, until every camera had a new frame${now() - waitFrom >= RECOVERY_WAIT_CAP_MS ? ' (gave up)' : ''}`);
      log(`#${slot.index} ${slot.kind}: the next fault waited ${(late / 1000).toFixed(1)} s for every camera to flow again`);
    }
    await release?.().catch((e: Error) => errors.push(`#${slot.index} ${slot.kind}: undoing the rest of the fault: ${e.message}`));
    ctx.active = undefined;
    nextAt = Math.max(startedAt + cfg.periodS * 1000, now() + 1000);
  }
  await sleep(Math.max(0, lengthMs - now()));
  sampling = false;
  await sampler;
  await Promise.all([...pollers.map((p) => p.stop()), ...viewers.map((v) => v.stop())]);
  results.durationMs = now();
  results.machine.loadAvgEnd = os.loadavg();
  log('collecting the containers\' logs');
  results.logs = await collectLogs(stack, stack.services, startedAtMs);
  return results;
}

let onSignal: (() => Promise<void>) | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void (onSignal?.() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const reportJson = args.includes('--report-json') ? args[args.indexOf('--report-json') + 1] : undefined;
  let cfg: SoakConfig;
  try {
    cfg = readConfig();
  } catch (e) {
    if (e instanceof SoakConfigError) {
      process.stderr.write(`soak: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let counts = { passed: 0, failed: 1 };
  try {
    let results: SoakResults;
    if (args.includes('--report-only')) {
      results = JSON.parse(fs.readFileSync(cfg.resultsFile, 'utf8')) as SoakResults;
    } else {
      results = await run(cfg);
      fs.mkdirSync(path.dirname(cfg.resultsFile), { recursive: true });
      fs.writeFileSync(cfg.resultsFile, JSON.stringify(results));
      log(`results: ${path.relative(process.cwd(), cfg.resultsFile)}`);
    }
    counts = await writeReport(results, cfg);
  } catch (e) {
    log(`FAILED: ${(e as Error).stack ?? String(e)}`);
  }
  if (reportJson) fs.writeFileSync(reportJson, JSON.stringify(counts) + '\n');
  return counts.failed > 0 ? 1 : 0;
}

void main().then((code) => process.exit(code));
