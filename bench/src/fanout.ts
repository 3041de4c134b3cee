/**
 * Item 1: raw one-shot fan-out. N clients each connect, read one ~50 KB frame to EOF, reconnect —
 * against the relay, the reference server (plain Node writing a fixed buffer) and the fake camera
 * directly, in the same run. Relay and reference runs alternate and repeat; ratios are per pair.
 */
import { FakeCameraProc, loadgen, LoadResult, median, RefProc, RelayProc, runqueueWaitSeconds, startFakeCamera, startReference, startRelay, stop, cpuSeconds } from './procs';

export interface FanoutRow {
  target: 'reference' | 'relay' | 'camera';
  clients: number;
  fps: number;
  p50Ms: number;
  p99Ms: number;
  bad: number;
  errors: number;
  /** camera fetches per second while the run lasted */
  cameraFetchesPerS: number;
  /** CPU seconds the server process used per second of run (1.0 = one core) */
  serverCpu: number;
  /** server CPU time (user + system) per frame served, µs: less sensitive to a busy machine than frames/s */
  cpuUsPerFrame: number;
  /** the load generator's CPU per second of run */
  loadgenCpu: number;
  /** share of the run the server's JS thread was ready to run but waited for a CPU */
  serverCpuWait: number;
  runs: number;
}

export interface FanoutResult {
  rows: FanoutRow[];
  /** median over repetitions of relay fps / reference fps, per client count */
  ratio: Record<number, number>;
  frameBytes: number;
}

export interface FanoutOptions {
  clients: number[];
  reps: number;
  durationS: number;
  log: (s: string) => void;
}

interface Measured {
  r: LoadResult;
  camPerS: number;
  cpu: number;
  wait: number;
}

async function measure(target: FanoutRow['target'], port: number, clients: number, durationS: number, serverPid: number, camera: FakeCameraProc | undefined): Promise<Measured> {
  const c0 = camera ? (await camera.stats()).framesSent : NaN;
  const cpu0 = cpuSeconds(serverPid);
  const w0 = runqueueWaitSeconds(serverPid);
  const t0 = Date.now();
  const r = await loadgen({ mode: 'raw', port, conns: clients, durationS, warmupS: target === 'camera' ? 0 : 0.5, timeoutS: 60, src: clients > 50 ? 8 : 1 });
  const secs = (Date.now() - t0) / 1000;
  const cpu = (cpuSeconds(serverPid) - cpu0) / secs;
  const wait = (runqueueWaitSeconds(serverPid) - w0) / secs;
  const c1 = camera ? (await camera.stats()).framesSent : NaN;
  return { r, camPerS: (c1 - c0) / secs, cpu, wait };
}

function row(target: FanoutRow['target'], clients: number, ms: Measured[]): FanoutRow {
  return {
    target,
    clients,
    fps: median(ms.map((m) => m.r.fps)),
    p50Ms: median(ms.map((m) => m.r.p50_ms)),
    p99Ms: median(ms.map((m) => m.r.p99_ms)),
    bad: ms.reduce((n, m) => n + m.r.bad, 0),
    errors: ms.reduce((n, m) => n + m.r.errors + m.r.timeouts, 0),
    cameraFetchesPerS: median(ms.map((m) => m.camPerS)),
    serverCpu: median(ms.map((m) => m.cpu)),
    cpuUsPerFrame: median(ms.map((m) => (m.cpu / m.r.fps) * 1e6)),
    loadgenCpu: median(ms.map((m) => m.r.cpu)),
    serverCpuWait: median(ms.map((m) => m.wait)),
    runs: ms.length,
  };
}

export async function runFanout(o: FanoutOptions): Promise<FanoutResult> {
  let ref: RefProc | undefined;
  let relayCam: FakeCameraProc | undefined;
  let directCam: FakeCameraProc | undefined;
  let relay: RelayProc | undefined;
  try {
    ref = await startReference();
    relayCam = await startFakeCamera();
    directCam = await startFakeCamera();
    relay = await startRelay(relayCam.port, {}, 'relay-fanout');
    const rows: FanoutRow[] = [];
    const ratio: Record<number, number> = {};
    for (const clients of o.clients) {
      const refs: Measured[] = [];
      const relays: Measured[] = [];
      for (let i = 0; i < o.reps; i++) {
        // alternate the order so drift on a shared machine hits both alike
        if (i % 2 === 0) {
          refs.push(await measure('reference', ref.port, clients, o.durationS, ref.pid, undefined));
          relays.push(await measure('relay', relay.clientPort, clients, o.durationS, relay.pid, relayCam));
        } else {
          relays.push(await measure('relay', relay.clientPort, clients, o.durationS, relay.pid, relayCam));
          refs.push(await measure('reference', ref.port, clients, o.durationS, ref.pid, undefined));
        }
      }
      ratio[clients] = median(relays.map((r, i) => r.r.fps / refs[i].r.fps));
      // The camera serves one client at a time at ~25 fps: with N clients each waits ~N/25 s.
      const camDuration = Math.max(o.durationS, (clients / 20) * 2.5);
      const cam = [await measure('camera', directCam.port, clients, camDuration, directCam.pid, directCam)];
      rows.push(row('reference', clients, refs), row('relay', clients, relays), row('camera', clients, cam));
      o.log(
        `fan-out ${clients} clients: reference ${rows[rows.length - 3].fps.toFixed(0)} fps, relay ${rows[rows.length - 2].fps.toFixed(0)} fps ` +
          `(ratio ${ratio[clients].toFixed(2)}), camera direct ${rows[rows.length - 1].fps.toFixed(1)} fps; ` +
          `camera fetches/s during relay runs ${rows[rows.length - 2].cameraFetchesPerS.toFixed(1)}`,
      );
    }
    return { rows, ratio, frameBytes: ref.frameBytes };
  } finally {
    await Promise.all([stop(relay), stop(ref), stop(relayCam), stop(directCam)]);
  }
}
