/**
 * Multi-camera (issue 9): one relay, several fake cameras on loopback, one CAMERAS_FILE.
 *
 * (a) 1, 4 and 8 pull cameras, each paced at MAX_FPS=20 (the fake camera needs 40 ms per capture, so
 *     it could do 25), MJPEG viewers on every camera's /cam/<name>/stream.mjpg plus a few paced raw
 *     clients on every camera's raw port. Per camera: fetch rate (frames the fake camera sent, and the
 *     relay's relay_frames_total{camera} delta as a cross-check), viewer frame rate and p99 delivery.
 *     Pass: every camera keeps >= 90 % of its target fetch rate while all of them fan out.
 * (b) Isolation: cam1 gets a heavy fan-out (500 MJPEG viewers), cam2 a handful; cam2's fetch rate must
 *     stay at its target (compared with a run where both have a handful).
 * (c) 1000 MJPEG viewers spread over 4 cameras at 20 fps: p99 delivery < 100 ms on every camera and
 *     each camera's viewers get >= 90 % of the frames.
 * (d) RSS per idle camera: relay RSS with 1 and with 32 configured cameras, no viewers, IDLE_FPS=1
 *     (all 32 point at one fast fake camera: host/port may repeat in the list, raw ports may not).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, relayNodeFlags, spawnChild } from '../../test-support';
import { cpuSeconds, FakeCameraProc, httpJson, loadgen, LoadResult, median, nodeArgs, Proc, rssKb, runqueueWaitSeconds, sleep, startFakeCamera, stop } from './procs';

export const TARGET_FPS = 20;
/** every camera must keep at least this share of its target fetch rate */
const MIN_FETCH_SHARE = 0.9;
/** a viewer must get at least this share of the frames */
const MIN_VIEWER_SHARE = 0.9;
const P99_TARGET_MS = 100;

export interface CameraRate {
  name: string;
  mjpegViewers: number;
  rawClients: number;
  /** frames per second the fake camera sent to the relay during the measured window */
  fetchFps: number;
  /** relay_frames_total{camera=name} per second over the same window (NaN if the relay lacks the label) */
  relayFramesPerS: number;
  /** frames per second per reading MJPEG viewer */
  viewerFps: number;
  p50Ms: number;
  p99Ms: number;
  viewersWithFrames: number;
  disconnects: number;
  errors: number;
  /** whole frames per second the paced raw clients got (all clients of this camera together) */
  rawFps: number;
  rawBad: number;
}

export interface CamerasStep {
  cameras: number;
  perCamera: CameraRate[];
  /** lowest fetch rate of any camera */
  minFetchFps: number;
  relayCpu: number;
  relayCpuWait: number;
  relayRssKb: number;
  ok: boolean;
}

export interface IsolationResult {
  heavyViewers: number;
  lightViewers: number;
  /** both cameras with light load */
  baseline: CameraRate[];
  /** cam1 heavy, cam2 light */
  heavy: CameraRate[];
  ok: boolean;
}

export interface ThousandResult {
  cameras: number;
  viewers: number;
  perCamera: CameraRate[];
  /** worst camera's figures */
  minViewerFps: number;
  maxP99Ms: number;
  minFetchFps: number;
  relayCpu: number;
  relayCpuWait: number;
  ok: boolean;
}

export interface IdleRssResult {
  idleFps: number;
  rss1Kb: number;
  rss32Kb: number;
  perCameraKb: number;
  /** cameras the relay reported in /status.json for the 32-camera run */
  reported32: number;
}

export interface CamerasResult {
  targetFps: number;
  steps: CamerasStep[];
  isolation?: IsolationResult;
  thousand?: ThousandResult;
  idleRss?: IdleRssResult;
}

export interface CamerasOptions {
  counts: number[];
  viewersPerCamera: number;
  rawPerCamera: number;
  heavyViewers: number;
  thousandViewers: number;
  thousandCameras: number;
  durationS: number;
  log: (s: string) => void;
}

interface CameraDef {
  name: string;
  host: string;
  port: number;
  rawPort: number;
}

interface MultiRelay extends Proc {
  httpPort: number;
  metricsPort: number;
  dir: string;
  metrics(): Promise<string>;
}

/** A port on 127.0.0.1 nothing listens on, from a range below the ephemeral one (so no listen(0) takes it). */
async function freePorts(n: number, from = 21000): Promise<number[]> {
  const out: number[] = [];
  for (let p = from; out.length < n && p < 32000; p++) {
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) out.push(p);
  }
  if (out.length < n) throw new Error(`only ${out.length} free ports in 21000-32000`);
  return out;
}

export function camerasYaml(defs: CameraDef[]): string {
  return 'cameras:\n' + defs.map((d) => `  ${d.name}:\n    host: ${d.host}\n    port: ${d.port}\n    raw_port: ${d.rawPort}\n`).join('');
}

/** The relay with a CAMERAS_FILE, its image's node flags and limits raised as in startRelay() (everything comes from 127.0.0.1). */
async function startMultiRelay(defs: CameraDef[], env: Record<string, string>, profileName: string): Promise<MultiRelay> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-bench-cams-'));
  const file = path.join(dir, 'cameras.yml');
  fs.writeFileSync(file, camerasYaml(defs));
  const child = spawnChild(process.execPath, [...nodeArgs(profileName), ...relayNodeFlags(), path.join(ROOT, 'relay', 'dist', 'main.js')], {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      CAMERAS_FILE: file,
      HTTP_PORT: '0',
      METRICS_PORT: '0',
      BIND_HOST: '127.0.0.1',
      METRICS_HOST: '127.0.0.1',
      MAX_CLIENTS: '100000',
      MAX_CLIENTS_PER_IP: '100000',
      MAX_FPS: String(TARGET_FPS),
      ...env,
    },
  });
  const line = await child.waitForLog((l) => l.msg === 'relay started', 30_000);
  const metricsPort = line.metricsPort as number;
  return {
    child,
    pid: child.proc.pid!,
    httpPort: line.httpPort as number,
    metricsPort,
    dir,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
  };
}

async function stopRelay(r: MultiRelay | undefined): Promise<void> {
  if (!r) return;
  await stop(r);
  fs.rmSync(r.dir, { recursive: true, force: true });
}

/** Sum of relay_frames_total samples carrying camera="<name>" (NaN when there is none). */
export function framesTotal(metrics: string, name: string): number {
  let sum = NaN;
  for (const line of metrics.split('\n')) {
    const m = /^relay_frames_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (m && new RegExp(`(^|,)camera="${name}"`).test(m[1])) sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[2]);
  }
  return sum;
}

/**
 * Paced raw clients (like `nc vps 8080 > frame.jpg` in a loop): each connects every `periodMs`, reads
 * to EOF and checks the JPEG markers. Unlike the C load generator's closed loop, this does not turn
 * the raw port into a CPU stress test that would starve every camera on a 2-core machine.
 */
function rawClients(port: number, clients: number, periodMs: number): { stop(): Promise<{ frames: number; bad: number }> } {
  let running = true;
  let frames = 0;
  let bad = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect(port, '127.0.0.1');
      s.setTimeout(5000, () => s.destroy());
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => undefined);
      s.on('close', () => {
        const b = Buffer.concat(chunks);
        if (b.length > 4 && b[0] === 0xff && b[1] === 0xd8 && b[b.length - 2] === 0xff && b[b.length - 1] === 0xd9) frames++;
        else bad++;
        resolve();
      });
    });
  const loops = Array.from({ length: clients }, async (_, i) => {
    await sleep((periodMs * i) / Math.max(1, clients));
    while (running) {
      const t = Date.now();
      await one();
      await sleep(Math.max(0, periodMs - (Date.now() - t)));
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { frames, bad };
    },
  };
}

interface Load {
  name: string;
  mjpeg: number;
  raw: number;
}

interface Window {
  rates: CameraRate[];
  relayCpu: number;
  relayCpuWait: number;
  relayRssKb: number;
}

/** Runs the given load on every camera at once; fetch rates are measured after the warm-up only. */
async function measureWindow(relay: MultiRelay, cams: Map<string, FakeCameraProc>, defs: CameraDef[], loads: Load[], durationS: number, warmupS = 2): Promise<Window> {
  const gens = loads.map((l) =>
    l.mjpeg > 0 ? loadgen({ mode: 'mjpeg', port: relay.httpPort, conns: l.mjpeg, durationS, warmupS, path: `/cam/${l.name}/stream.mjpg` }) : Promise.resolve(undefined as LoadResult | undefined),
  );
  const raws = loads.map((l) => (l.raw > 0 ? rawClients(defs.find((d) => d.name === l.name)!.rawPort, l.raw, 200) : undefined));
  // a rejected load generator must not leave the other promises unobserved
  const all = Promise.allSettled(gens);
  await sleep(warmupS * 1000);
  const sent0 = await Promise.all(loads.map(async (l) => (await cams.get(l.name)!.stats()).framesSent));
  const m0 = await relay.metrics();
  const cpu0 = cpuSeconds(relay.pid);
  const w0 = runqueueWaitSeconds(relay.pid);
  const t0 = Date.now();
  const rss: number[] = [];
  while (Date.now() - t0 < durationS * 1000 - 300) {
    await sleep(250);
    rss.push(rssKb(relay.pid));
  }
  const secs = (Date.now() - t0) / 1000;
  const sent1 = await Promise.all(loads.map(async (l) => (await cams.get(l.name)!.stats()).framesSent));
  const m1 = await relay.metrics();
  const cpu = (cpuSeconds(relay.pid) - cpu0) / secs;
  const wait = (runqueueWaitSeconds(relay.pid) - w0) / secs;
  const rawResults = await Promise.all(raws.map((r) => r?.stop()));
  const settled = await all;
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const rates = loads.map((l, i): CameraRate => {
    const r = (settled[i] as PromiseFulfilledResult<LoadResult | undefined>).value;
    const raw = rawResults[i];
    return {
      name: l.name,
      mjpegViewers: l.mjpeg,
      rawClients: l.raw,
      fetchFps: (sent1[i] - sent0[i]) / secs,
      relayFramesPerS: (framesTotal(m1, l.name) - framesTotal(m0, l.name)) / secs,
      viewerFps: r ? r.frames / r.duration_s / Math.max(1, r.reading) : NaN,
      p50Ms: r ? r.p50_ms : NaN,
      p99Ms: r ? r.p99_ms : NaN,
      viewersWithFrames: r ? r.viewers_with_frames : 0,
      disconnects: r ? r.disconnects : 0,
      errors: r ? r.errors + r.http_errors : 0,
      // the raw clients ran for warm-up + window
      rawFps: raw ? raw.frames / (warmupS + secs) : NaN,
      rawBad: raw ? raw.bad : 0,
    };
  });
  return { rates, relayCpu: cpu, relayCpuWait: wait, relayRssKb: median(rss) };
}

const fetchOk = (c: CameraRate) => c.fetchFps >= TARGET_FPS * MIN_FETCH_SHARE;
const viewersOk = (c: CameraRate) =>
  c.mjpegViewers === 0 ||
  (c.p99Ms >= 0 && c.p99Ms < P99_TARGET_MS && c.viewerFps >= TARGET_FPS * MIN_VIEWER_SHARE && c.viewersWithFrames >= c.mjpegViewers * 0.99 && c.disconnects === 0);

function fmt(c: CameraRate): string {
  return `${c.name} fetch ${c.fetchFps.toFixed(1)}/s (relay ${Number.isFinite(c.relayFramesPerS) ? c.relayFramesPerS.toFixed(1) : 'n/a'}), ${c.mjpegViewers} viewers ${c.viewerFps.toFixed(1)} fps p99 ${c.p99Ms.toFixed(1)} ms, raw ${c.rawFps.toFixed(1)}/s`;
}

async function withCameras<T>(n: number, captureMs: number, fn: (defs: CameraDef[], cams: Map<string, FakeCameraProc>) => Promise<T>): Promise<T> {
  const cams = new Map<string, FakeCameraProc>();
  try {
    const ports = await freePorts(n);
    const defs: CameraDef[] = [];
    for (let i = 0; i < n; i++) {
      const cam = await startFakeCamera(['--capture-ms', String(captureMs)]);
      const name = `cam${i + 1}`;
      cams.set(name, cam);
      defs.push({ name, host: '127.0.0.1', port: cam.port, rawPort: ports[i] });
    }
    return await fn(defs, cams);
  } finally {
    await Promise.all([...cams.values()].map((c) => stop(c)));
  }
}

async function stepRun(n: number, o: CamerasOptions): Promise<CamerasStep> {
  return withCameras(n, 40, async (defs, cams) => {
    let relay: MultiRelay | undefined;
    try {
      relay = await startMultiRelay(defs, {}, `relay-cameras-${n}`);
      const w = await measureWindow(relay, cams, defs, defs.map((d) => ({ name: d.name, mjpeg: o.viewersPerCamera, raw: o.rawPerCamera })), o.durationS);
      const ok = w.rates.every((c) => fetchOk(c) && c.rawBad === 0);
      const step: CamerasStep = { cameras: n, perCamera: w.rates, minFetchFps: Math.min(...w.rates.map((c) => c.fetchFps)), relayCpu: w.relayCpu, relayCpuWait: w.relayCpuWait, relayRssKb: w.relayRssKb, ok };
      o.log(`cameras ${n}: min fetch ${step.minFetchFps.toFixed(1)}/s, relay CPU ${w.relayCpu.toFixed(2)} (wait ${(w.relayCpuWait * 100).toFixed(0)} %) ${ok ? 'OK' : 'MISSED'}; ${w.rates.map(fmt).join('; ')}`);
      return step;
    } finally {
      await stopRelay(relay);
    }
  });
}

async function isolationRun(o: CamerasOptions): Promise<IsolationResult> {
  return withCameras(2, 40, async (defs, cams) => {
    let relay: MultiRelay | undefined;
    try {
      relay = await startMultiRelay(defs, {}, 'relay-cameras-isolation');
      const light = 5;
      const baseline = await measureWindow(relay, cams, defs, [{ name: 'cam1', mjpeg: light, raw: 0 }, { name: 'cam2', mjpeg: light, raw: 0 }], o.durationS);
      const heavy = await measureWindow(relay, cams, defs, [{ name: 'cam1', mjpeg: o.heavyViewers, raw: 0 }, { name: 'cam2', mjpeg: light, raw: 0 }], o.durationS);
      const cam2 = heavy.rates[1];
      const ok = fetchOk(cam2) && viewersOk(cam2);
      o.log(`cameras isolation: baseline ${baseline.rates.map(fmt).join('; ')} | heavy ${heavy.rates.map(fmt).join('; ')} ${ok ? 'OK' : 'MISSED'}`);
      return { heavyViewers: o.heavyViewers, lightViewers: light, baseline: baseline.rates, heavy: heavy.rates, ok };
    } finally {
      await stopRelay(relay);
    }
  });
}

async function thousandRun(o: CamerasOptions): Promise<ThousandResult> {
  const n = o.thousandCameras;
  return withCameras(n, 40, async (defs, cams) => {
    let relay: MultiRelay | undefined;
    try {
      relay = await startMultiRelay(defs, {}, 'relay-cameras-1000');
      // spread the viewers as evenly as possible; the first cameras take the remainder
      const loads = defs.map((d, i) => ({ name: d.name, mjpeg: Math.floor(o.thousandViewers / n) + (i < o.thousandViewers % n ? 1 : 0), raw: 0 }));
      const w = await measureWindow(relay, cams, defs, loads, o.durationS);
      const ok = w.rates.every(viewersOk);
      const res: ThousandResult = {
        cameras: n,
        viewers: o.thousandViewers,
        perCamera: w.rates,
        minViewerFps: Math.min(...w.rates.map((c) => c.viewerFps)),
        maxP99Ms: Math.max(...w.rates.map((c) => c.p99Ms)),
        minFetchFps: Math.min(...w.rates.map((c) => c.fetchFps)),
        relayCpu: w.relayCpu,
        relayCpuWait: w.relayCpuWait,
        ok,
      };
      o.log(`cameras ${o.thousandViewers} viewers on ${n} cameras: worst ${res.minViewerFps.toFixed(1)} fps/viewer, worst p99 ${res.maxP99Ms.toFixed(1)} ms, relay CPU ${w.relayCpu.toFixed(2)} ${ok ? 'OK' : 'MISSED'}`);
      return res;
    } finally {
      await stopRelay(relay);
    }
  });
}

async function idleRssRun(o: CamerasOptions): Promise<IdleRssResult> {
  const idleFps = 1;
  // one fast fake camera serves every idle camera's 1 fetch/s
  let cam: FakeCameraProc | undefined;
  try {
    cam = await startFakeCamera(['--capture-ms', '5']);
    const ports = await freePorts(32);
    const defs = (k: number): CameraDef[] => Array.from({ length: k }, (_, i) => ({ name: `idle${i + 1}`, host: '127.0.0.1', port: cam!.port, rawPort: ports[i] }));
    const measure = async (k: number): Promise<{ rss: number; reported: number }> => {
      let relay: MultiRelay | undefined;
      try {
        relay = await startMultiRelay(defs(k), { IDLE_FPS: String(idleFps) }, `relay-cameras-idle-${k}`);
        await sleep(4000); // every camera has fetched a few frames and the heap has settled
        const samples: number[] = [];
        for (let i = 0; i < 8; i++) {
          samples.push(rssKb(relay.pid));
          await sleep(250);
        }
        const st = await httpJson(`http://127.0.0.1:${relay.httpPort}/status.json`);
        const camerasList = (st.body as { cameras?: unknown[] } | undefined)?.cameras;
        return { rss: median(samples), reported: Array.isArray(camerasList) ? camerasList.length : NaN };
      } finally {
        await stopRelay(relay);
      }
    };
    const one = await measure(1);
    const many = await measure(32);
    const res: IdleRssResult = { idleFps, rss1Kb: one.rss, rss32Kb: many.rss, perCameraKb: (many.rss - one.rss) / 31, reported32: many.reported };
    o.log(`cameras idle RSS: 1 camera ${one.rss} KiB, 32 cameras ${many.rss} KiB (${res.perCameraKb.toFixed(1)} KiB per idle camera; status.json lists ${many.reported})`);
    return res;
  } finally {
    await stop(cam);
  }
}

export async function runCameras(o: CamerasOptions): Promise<CamerasResult> {
  const res: CamerasResult = { targetFps: TARGET_FPS, steps: [] };
  for (const n of o.counts) res.steps.push(await stepRun(n, o));
  res.isolation = await isolationRun(o);
  res.thousand = await thousandRun(o);
  res.idleRss = await idleRssRun(o);
  return res;
}

export const camerasPass = { fetchOk, viewersOk, MIN_FETCH_SHARE, MIN_VIEWER_SHARE, P99_TARGET_MS };
