/**
 * A/B of the raw one-shot fan-out between two relay builds on the same camera, alternating A and B
 * so drift on a shared machine hits both alike. For a change's cost, not part of `make bench`:
 *
 *   cp -r relay/dist bench/build/relay-before      # at the old commit, after `npm run build`
 *   # ... new commit, `npm run build` ...
 *   unshare --net -- bash -c 'ip link set lo up && node -r ./bench/register.js bench/src/fanout-ab.ts \
 *     bench/build/relay-before/main.js relay/dist/main.js'
 *
 * Environment: AB_CLIENTS (default 200), AB_REPS per build (default 6), AB_SECONDS per run (2.5).
 * Prints frames/s and server CPU µs per frame per run, then the medians and B/A.
 */
import path from 'node:path';
import { cpuSeconds, FakeCameraProc, loadgen, median, RelayProc, startFakeCamera, startRelay, stop } from './procs';

async function run(relay: RelayProc, clients: number, durationS: number): Promise<{ fps: number; cpuUs: number }> {
  const cpu0 = cpuSeconds(relay.pid);
  const t0 = Date.now();
  const r = await loadgen({ mode: 'raw', port: relay.clientPort, conns: clients, durationS, warmupS: 0.5, timeoutS: 60, src: clients > 50 ? 8 : 1 });
  const cpu = (cpuSeconds(relay.pid) - cpu0) / ((Date.now() - t0) / 1000);
  return { fps: r.fps, cpuUs: (cpu / r.fps) * 1e6 };
}

async function main(): Promise<void> {
  const [a, b] = process.argv.slice(2).map((p) => path.resolve(p));
  if (!a || !b) throw new Error('usage: fanout-ab.ts <relay A main.js> <relay B main.js>');
  const clients = Number(process.env.AB_CLIENTS ?? 200);
  const reps = Number(process.env.AB_REPS ?? 6);
  const secs = Number(process.env.AB_SECONDS ?? 2.5);
  let cam: FakeCameraProc | undefined;
  let ra: RelayProc | undefined;
  let rb: RelayProc | undefined;
  try {
    cam = await startFakeCamera();
    ra = await startRelay(cam.port, {}, undefined, a);
    rb = await startRelay(cam.port, {}, undefined, b);
    const res: Record<'A' | 'B', { fps: number; cpuUs: number }[]> = { A: [], B: [] };
    for (let i = 0; i < reps; i++) {
      const order: ('A' | 'B')[] = i % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
      for (const k of order) {
        const m = await run(k === 'A' ? ra : rb, clients, secs);
        res[k].push(m);
        process.stdout.write(`${k} run ${i + 1}: ${m.fps.toFixed(0)} frames/s, ${m.cpuUs.toFixed(1)} µs CPU/frame\n`);
      }
    }
    const fa = median(res.A.map((m) => m.fps));
    const fb = median(res.B.map((m) => m.fps));
    const ca = median(res.A.map((m) => m.cpuUs));
    const cb = median(res.B.map((m) => m.cpuUs));
    process.stdout.write(
      `${clients} clients, ${reps} runs each of ${secs} s: A median ${fa.toFixed(0)} frames/s ${ca.toFixed(1)} µs/frame; ` +
        `B median ${fb.toFixed(0)} frames/s ${cb.toFixed(1)} µs/frame; B/A frames/s ${(fb / fa).toFixed(3)}, CPU/frame ${(cb / ca).toFixed(3)}\n`,
    );
  } finally {
    await Promise.all([stop(ra), stop(rb), stop(cam)]);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
