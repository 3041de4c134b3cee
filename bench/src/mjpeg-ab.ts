/**
 * A/B of MJPEG viewers between two relay builds (same camera set-up as `make bench`'s MJPEG suite:
 * 20 fps paced camera with 40 ms capture), alternating A and B. For a change's effect, not part of
 * `make bench`. Usage as bench/src/fanout-ab.ts:
 *
 *   unshare --net -- bash -c 'ip link set lo up && node -r ./bench/register.js bench/src/mjpeg-ab.ts \
 *     bench/build/relay-before/main.js relay/dist/main.js'
 *
 * Environment: AB_VIEWERS (default 1000), AB_REPS per build (default 3), AB_SECONDS per run (4).
 */
import path from 'node:path';
import { cpuSeconds, FakeCameraProc, loadgen, median, RelayProc, runqueueWaitSeconds, startFakeCamera, startRelay, stop } from './procs';

interface Run {
  fpsPerViewer: number;
  p50: number;
  p99: number;
  cameraFps: number;
  cpu: number;
  wait: number;
  disconnects: number;
}

async function run(relay: RelayProc, cam: FakeCameraProc, viewers: number, durationS: number): Promise<Run> {
  const f0 = (await cam.stats()).framesSent;
  const cpu0 = cpuSeconds(relay.pid);
  const w0 = runqueueWaitSeconds(relay.pid);
  const t0 = Date.now();
  const r = await loadgen({ mode: 'mjpeg', port: relay.httpPort, conns: viewers, durationS, warmupS: 2, path: '/stream.mjpg' });
  const secs = (Date.now() - t0) / 1000;
  return {
    fpsPerViewer: r.frames / r.duration_s / Math.max(1, r.reading),
    p50: r.p50_ms,
    p99: r.p99_ms,
    cameraFps: ((await cam.stats()).framesSent - f0) / secs,
    cpu: (cpuSeconds(relay.pid) - cpu0) / secs,
    wait: (runqueueWaitSeconds(relay.pid) - w0) / secs,
    disconnects: r.disconnects,
  };
}

const fmt = (m: Run) =>
  `${m.fpsPerViewer.toFixed(1)} fps/viewer (camera ${m.cameraFps.toFixed(1)}), p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms, ` +
  `relay CPU ${m.cpu.toFixed(2)} (waited ${(m.wait * 100).toFixed(0)} %), ${m.disconnects} disconnects`;

async function main(): Promise<void> {
  const [a, b] = process.argv.slice(2).map((p) => path.resolve(p));
  if (!a || !b) throw new Error('usage: mjpeg-ab.ts <relay A main.js> <relay B main.js>');
  const viewers = Number(process.env.AB_VIEWERS ?? 1000);
  const reps = Number(process.env.AB_REPS ?? 3);
  const secs = Number(process.env.AB_SECONDS ?? 4);
  let cam: FakeCameraProc | undefined;
  let relay: RelayProc | undefined;
  const res: Record<'A' | 'B', Run[]> = { A: [], B: [] };
  try {
    cam = await startFakeCamera(['--capture-ms', '40']);
    for (let i = 0; i < reps; i++) {
      for (const k of (i % 2 === 0 ? ['A', 'B'] : ['B', 'A']) as ('A' | 'B')[]) {
        // one relay at a time: the camera serves one connection at a time
        relay = await startRelay(cam.port, { MAX_FPS: '20' }, undefined, k === 'A' ? a : b);
        const m = await run(relay, cam, viewers, secs);
        await stop(relay);
        relay = undefined;
        res[k].push(m);
        process.stdout.write(`${k} run ${i + 1}, ${viewers} viewers: ${fmt(m)}\n`);
      }
    }
    for (const k of ['A', 'B'] as const) {
      const ms = res[k];
      process.stdout.write(
        `${k} median: ${median(ms.map((m) => m.fpsPerViewer)).toFixed(1)} fps/viewer, p99 ${median(ms.map((m) => m.p99)).toFixed(1)} ms, ` +
          `camera ${median(ms.map((m) => m.cameraFps)).toFixed(1)} fps, relay CPU ${median(ms.map((m) => m.cpu)).toFixed(2)}\n`,
      );
    }
  } finally {
    await Promise.all([stop(relay), stop(cam)]);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
