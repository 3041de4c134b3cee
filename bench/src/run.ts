/**
 * `make bench` entry point (via bench/run.sh): runs every benchmark suite in one go on this machine,
 * prints a summary table and writes BENCHMARKS.md (plus bench/results/latest.json).
 *
 * Environment:
 *   BENCH_QUICK=1        short runs and only the 3 s outage (a smoke test of the harness, ~2 min)
 *   BENCH_ONLY=a,b       run only some suites: fanout, mjpeg, tunnel, cameras (multi-camera relay)
 *   BENCH_CPU_PROF=1     run the relay and the reference server under --cpu-prof
 *                        (profiles in bench/results/profiles/, open them in Chrome DevTools or speedscope)
 *   BENCH_OUTPUT=path    where to write the report (default BENCHMARKS.md at the repo root)
 *   BENCH_REPORT_ONLY=1  run nothing: re-render the report from bench/results/latest.json and
 *                        bench/findings.md (after editing the findings)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gitCommit, killAllChildren, ROOT } from '../../test-support';
import { CamerasResult, runCameras } from './cameras';
import { FanoutResult, runFanout } from './fanout';
import { MjpegResult, runMjpeg } from './mjpeg';
import { RESULTS_DIR } from './procs';
import { renderReport, Results } from './report';
import { runTunnel, TunnelResult } from './tunnel';

const quick = process.env.BENCH_QUICK === '1';
const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const want = (s: string) => only.length === 0 || only.includes(s);
const started = Date.now();

function log(s: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stdout.write(`[bench ${t}s] ${s}\n`);
}


function writeReport(results: Results): void {
  const findingsFile = path.join(ROOT, 'bench', 'findings.md');
  const findings = fs.existsSync(findingsFile) ? fs.readFileSync(findingsFile, 'utf8') : '';
  const { markdown, summary } = renderReport(results, findings);
  const out = process.env.BENCH_OUTPUT ?? path.join(ROOT, 'BENCHMARKS.md');
  fs.writeFileSync(out, markdown);
  process.stdout.write(`\n${summary}\n\nWrote ${path.relative(process.cwd(), out) || out} (run took ${results.durationS ?? '?'} s).\n`);
}

async function main(): Promise<number> {
  if (process.env.BENCH_REPORT_ONLY === '1') {
    writeReport(JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, 'latest.json'), 'utf8')) as Results);
    return 0;
  }
  const results: Results = {
    startedAt: new Date().toISOString(),
    command: quick ? 'BENCH_QUICK=1 make bench' : 'make bench',
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model ?? 'unknown',
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      kernel: os.release(),
      loadAvgStart: os.loadavg().map((x) => Number(x.toFixed(2))),
      loadAvgEnd: [],
    },
    commit: gitCommit(),
    quick,
    errors: {},
  };
  const suite = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    if (!want(name)) return undefined;
    log(`--- ${name}`);
    try {
      return await fn();
    } catch (e) {
      results.errors[name] = (e as Error).stack ?? String(e);
      log(`${name} FAILED: ${(e as Error).message}`);
      await killAllChildren();
      return undefined;
    }
  };

  results.fanout = await suite<FanoutResult>('fanout', () => runFanout({ clients: [1, 50, 200], reps: quick ? 1 : 3, durationS: quick ? 1.5 : 2.5, log }));
  results.mjpeg = await suite<MjpegResult>('mjpeg', () =>
    runMjpeg({ steps: quick ? [100, 500] : [100, 250, 500, 750, 1000, 1500], durationS: quick ? 3 : 4, memoryViewers: quick ? 300 : 1000, log }),
  );
  results.tunnel = await suite<TunnelResult>('tunnel', () =>
    runTunnel({ inFlight: [1, 10, 50], reps: quick ? 1 : 3, durationS: quick ? 1.5 : 2.5, outagesS: quick ? [3] : [3, 30, 120], recoveryCapS: quick ? 30 : 75, blackhole: true, log }),
  );
  results.cameras = await suite<CamerasResult>('cameras', () =>
    runCameras({
      counts: [1, 4, 8],
      viewersPerCamera: quick ? 20 : 50,
      rawPerCamera: 2,
      heavyViewers: quick ? 300 : 500,
      thousandViewers: 1000,
      thousandCameras: 4,
      durationS: quick ? 3 : 5,
      log,
    }),
  );
  results.machine.loadAvgEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  results.durationS = Math.round((Date.now() - started) / 1000);

  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
  writeReport(results);
  return Object.keys(results.errors).length > 0 ? 1 : 0;
}

main()
  .then(async (code) => {
    await killAllChildren();
    process.exit(code);
  })
  .catch(async (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    await killAllChildren();
    process.exit(1);
  });
