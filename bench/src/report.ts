/** Turns benchmark results into BENCHMARKS.md and a console summary table. */
import type { CamerasResult } from './cameras';
import type { FanoutResult } from './fanout';
import type { MjpegResult } from './mjpeg';
import type { TunnelResult } from './tunnel';

export interface Results {
  startedAt: string;
  command: string;
  machine: { cpus: number; model: string; memGiB: number; node: string; kernel: string; loadAvgStart: number[]; loadAvgEnd: number[] };
  commit: string;
  quick: boolean;
  durationS?: number;
  fanout?: FanoutResult;
  mjpeg?: MjpegResult;
  tunnel?: TunnelResult;
  cameras?: CamerasResult;
  errors: Record<string, string>;
}

interface TargetRow {
  item: string;
  what: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

const n0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const n1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const n2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const secs = (ms: number | undefined) => (ms === undefined ? 'not within cap' : `${(ms / 1000).toFixed(2)} s`);
const mark = (m: boolean | undefined) => (m === undefined ? 'n/a' : m ? 'yes' : '**NO**');

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function plainTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ');
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

export function targets(r: Results): TargetRow[] {
  const rows: TargetRow[] = [];
  const f = r.fanout;
  if (f) {
    const ratio = f.ratio[200];
    rows.push({ item: '1', what: 'raw fan-out: relay / reference frames/s, 200 clients', target: '>= 0.9x', measured: `${n2(ratio)}x`, met: ratio >= 0.9 });
    const one = f.rows.find((x) => x.target === 'relay' && x.clients === 1)?.cameraFetchesPerS ?? NaN;
    const many = f.rows.find((x) => x.target === 'relay' && x.clients === 200)?.cameraFetchesPerS ?? NaN;
    rows.push({ item: '1', what: 'camera fetches/s through the relay, 1 vs 200 clients', target: 'independent of clients', measured: `${n1(one)} vs ${n1(many)}`, met: many <= one * 1.5 + 1 });
  }
  const m = r.mjpeg;
  if (m) {
    rows.push({
      item: '2',
      what: `MJPEG viewers at a ${m.nominalFps ?? 20} fps camera: p99 < 100 ms and >= 90 % of the frames each`,
      target: '>= 500',
      measured: String(m.maxViewers),
      met: m.maxViewers >= 500,
    });
    rows.push({
      item: '2',
      what: `relay RSS per idle connected viewer (${m.memory.viewers} viewers, camera down)`,
      target: '<= 20 KiB',
      measured: `${n1(m.memory.perIdleViewerKb)} KiB`,
      met: m.memory.perIdleViewerKb <= 20 && m.memory.idleHttpErrors === 0,
    });
    rows.push({ item: '2', what: `relay RSS per viewer while streaming`, target: 'report', measured: `${n1(m.memory.perViewerKb)} KiB`, met: undefined });
    const growth = m.memory.stalledLateKb - m.memory.stalledEarlyKb;
    const unbounded = m.memory.unboundedGrowthKb ?? NaN;
    rows.push({
      item: '2',
      what: `RSS growth over ${n0(m.memory.stalledSpanS ?? NaN)} s with 10 % of viewers not reading (vs buffering every frame for them)`,
      target: 'bounded: < 10 % of buffering',
      measured: `${growth >= 0 ? '+' : ''}${n0(growth)} KiB (vs ${n0(unbounded)} KiB)`,
      met: growth < 0.1 * unbounded,
    });
    rows.push({ item: '2', what: 'extra RSS per viewer that stops reading', target: 'report', measured: `${n1(m.memory.perStalledViewerKb ?? NaN)} KiB`, met: undefined });
  }
  const t = r.tunnel;
  if (t) {
    for (const k of Object.keys(t.ratio).map(Number)) {
      rows.push({ item: '3', what: `tunnel-agent / OpenSSH frames/s, ${k} in flight`, target: '>= 1.0x', measured: `${n2(t.ratio[k])}x`, met: t.ratio[k] >= 1.0 });
    }
    for (const rec of t.recovery) {
      rows.push({
        item: '4',
        what: `frame again after a ${rec.outageS} s sshd outage (tunnel-agent; autossh)`,
        target: '<= 1.5 s',
        measured: `${secs(rec.agentMs)}; ${secs(rec.autosshMs)}`,
        met: rec.agentMs !== undefined && rec.agentMs <= 1500,
      });
    }
    if (t.blackhole) {
      const b = t.blackhole;
      rows.push({ item: '4', what: `dead-link detection, silent blackhole, keepalive ${b.keepalive} (tunnel-agent; autossh)`, target: 'report', measured: `${secs(b.agentDetectMs)}; ${secs(b.autosshDetectMs)}`, met: undefined });
    }
  }
  if (r.cameras) rows.push(...camerasTargets(r.cameras));
  return rows;
}

function camerasTargets(c: CamerasResult): TargetRow[] {
  const rows: TargetRow[] = [];
  const floor = c.targetFps * 0.9;
  for (const s of c.steps) {
    rows.push({ item: 'mc', what: `${s.cameras} camera(s) with viewers on each: lowest camera fetch rate (target ${c.targetFps}/s each)`, target: `>= ${n1(floor)}/s`, measured: `${n1(s.minFetchFps)}/s`, met: s.ok });
  }
  const iso = c.isolation;
  if (iso) {
    const base = iso.baseline[1]?.fetchFps ?? NaN;
    const heavy = iso.heavy[1]?.fetchFps ?? NaN;
    rows.push({
      item: 'mc',
      what: `cam2 fetch rate while cam1 fans out to ${iso.heavyViewers} MJPEG viewers (vs both light)`,
      target: `>= ${n1(floor)}/s`,
      measured: `${n1(heavy)}/s (vs ${n1(base)}/s; cam1 ${n1(iso.heavy[0]?.fetchFps ?? NaN)}/s)`,
      met: iso.ok,
    });
  }
  const t = c.thousand;
  if (t) {
    rows.push({
      item: 'mc',
      what: `MJPEG ${t.viewers} viewers over ${t.cameras} cameras at ${c.targetFps} fps: worst p99; worst frames/s per viewer`,
      target: `< 100 ms; >= ${n1(floor)}`,
      measured: `${n1(t.maxP99Ms)} ms; ${n1(t.minViewerFps)}`,
      met: t.ok,
    });
  }
  const m = c.idleRss;
  if (m) rows.push({ item: 'mc', what: `relay RSS per idle camera ((RSS 32 - RSS 1) / 31, IDLE_FPS=${m.idleFps})`, target: 'report', measured: `${n0(m.perCameraKb)} KiB`, met: undefined });
  return rows;
}

function camerasSection(c: CamerasResult): string[] {
  const md: string[] = ['', '## Multi-camera', ''];
  md.push(
    `One relay with a \`CAMERAS_FILE\` (\`cameras: { cam1: { host: 127.0.0.1, port: P, raw_port: R }, ... }\`), one fake camera per entry (40 ms capture, so it ` +
      `could do 25 fps; the relay paces it at MAX_FPS=${c.targetFps}). Viewers: the C load generator on each camera's \`/cam/<name>/stream.mjpg\`; raw clients: ` +
      'paced Node clients (one connection every 200 ms each, reading one frame to EOF) on each camera\'s raw port. "fetch/s" = frames the fake camera sent ' +
      'to the relay per second after a 2 s warm-up; "relay frames/s" = the delta of `relay_frames_total{camera}` over the same window (a cross-check). ' +
      `A camera passes when its fetch rate is >= 90 % of ${c.targetFps}/s; viewers pass with p99 < 100 ms, >= 90 % of the frames each (the load generator reports ` +
      'the average per reading viewer), every viewer with frames, no disconnects. The delivery latency includes the camera-to-relay transfer.',
  );
  const head = ['camera', 'MJPEG viewers', 'raw clients', 'fetch/s', 'relay frames/s', 'frames/s per viewer', 'p50 ms', 'p99 ms', 'viewers with frames', 'disconnects', 'raw frames/s', 'raw bad'];
  const cam = (x: CamerasResult['steps'][number]['perCamera'][number]) => [
    x.name,
    x.mjpegViewers,
    x.rawClients,
    n1(x.fetchFps),
    n1(x.relayFramesPerS),
    n1(x.viewerFps),
    n1(x.p50Ms),
    n1(x.p99Ms),
    x.viewersWithFrames,
    x.disconnects,
    n1(x.rawFps),
    x.rawBad,
  ];
  for (const s of c.steps) {
    md.push('', `**${s.cameras} camera(s)** (relay CPU ${n2(s.relayCpu)}, waited for a CPU ${n0(s.relayCpuWait * 100)} % of the time, RSS ${s.relayRssKb} KiB; ${s.ok ? 'pass' : '**miss**'}):`, '', table(head, s.perCamera.map(cam)));
  }
  if (c.isolation) {
    const iso = c.isolation;
    md.push(
      '',
      `**Isolation**: two cameras, first both with ${iso.lightViewers} viewers, then cam1 with ${iso.heavyViewers} viewers while cam2 keeps ${iso.lightViewers} ` +
        `(pass: cam2's fetch rate >= 90 % of target and its viewers pass; ${iso.ok ? 'pass' : '**miss**'}):`,
      '',
      table(['run', ...head], [...iso.baseline.map((x) => ['both light', ...cam(x)]), ...iso.heavy.map((x) => ['cam1 heavy', ...cam(x)])]),
    );
  }
  if (c.thousand) {
    const t = c.thousand;
    md.push('', `**${t.viewers} MJPEG viewers over ${t.cameras} cameras** (relay CPU ${n2(t.relayCpu)}, waited for a CPU ${n0(t.relayCpuWait * 100)} %; ${t.ok ? 'pass' : '**miss**'}):`, '', table(head, t.perCamera.map(cam)));
  }
  if (c.idleRss) {
    const m = c.idleRss;
    md.push(
      '',
      `**RSS per idle camera**: relay RSS ${m.rss1Kb} KiB with 1 camera, ${m.rss32Kb} KiB with 32 (status.json listed ${m.reported32}), no viewers, ` +
        `IDLE_FPS=${m.idleFps}, all pointing at one fast fake camera; (RSS32 - RSS1) / 31 = ${n1(m.perCameraKb)} KiB per camera (median of 8 samples after 4 s).`,
    );
  }
  return md;
}

export function renderReport(r: Results, findings: string): { markdown: string; summary: string } {
  const tr = targets(r);
  const md: string[] = [];
  md.push('# Benchmarks');
  md.push('');
  md.push(`Generated by \`${r.command}\` (harness in \`bench/\`, see docs/benchmarks.md) on ${r.startedAt}, commit ${r.commit}, in ${r.durationS ?? '?'} s.`);
  md.push(
    `Machine: ${r.machine.cpus} x ${r.machine.model}, ${r.machine.memGiB} GiB, Linux ${r.machine.kernel}, Node ${r.machine.node}. ` +
      `Load average at start ${r.machine.loadAvgStart.join(' / ')}, at end ${r.machine.loadAvgEnd.join(' / ')} ` +
      '(a shared machine: compare the side-by-side ratios and medians, not absolute figures). ' +
      'Everything runs on the loopback of a private network namespace (`unshare --net`), away from the host\'s connection tracking.',
  );
  if (r.quick) md.push('', '**Quick mode (BENCH_QUICK=1): short runs, one repetition, only the 3 s outage. Not a full result.**');
  md.push('', '## Targets', '', table(['item', 'what', 'target', 'measured', 'met'], tr.map((x) => [x.item, x.what, x.target, x.measured, mark(x.met)])));
  for (const [name, err] of Object.entries(r.errors)) md.push('', `**Suite ${name} failed:**`, '', '```', err.slice(0, 3000), '```');

  if (r.fanout) {
    const f = r.fanout;
    md.push('', '## 1. Raw one-shot fan-out', '');
    md.push(
      `Each client connects, reads one ${n0(f.frameBytes / 1024)} KiB JPEG to EOF, checks it is whole, reconnects (C load generator \`bench/loadgen.c\`, ` +
        'a separate process). Reference: plain Node writing a fixed buffer and closing (`bench/src/reference-server.ts`). Relay: `relay/dist/main.js` ' +
        'as deployed (metrics, limits, logging), pulling from a fake camera at 25 fps. Camera: the fake camera served directly (one client at a time). ' +
        'Relay and reference runs alternate; figures are medians over the repetitions, the ratio is the median of per-pair ratios. ' +
        '"server CPU" is the server process\'s CPU time (user + system) per second of run (1.0 = one core); "CPU µs/frame" divides it by frames/s, ' +
        'which a busy machine disturbs less than frames/s; "server CPU wait" is the share of the run its JS thread waited for a CPU.',
    );
    md.push(
      '',
      table(
        ['clients', 'target', 'frames/s', 'p50 ms', 'p99 ms', 'bad frames', 'errors', 'camera fetches/s', 'server CPU', 'server CPU wait', 'CPU µs/frame', 'loadgen CPU', 'runs'],
        f.rows.map((x) => [
          x.clients,
          x.target,
          n0(x.fps),
          n1(x.p50Ms),
          n1(x.p99Ms),
          x.bad,
          x.errors,
          x.target === 'reference' ? '-' : n1(x.cameraFetchesPerS),
          n2(x.serverCpu),
          x.serverCpuWait === undefined ? 'n/a' : `${n0(x.serverCpuWait * 100)} %`,
          x.target === 'camera' ? '-' : n0(x.cpuUsPerFrame),
          n2(x.loadgenCpu ?? NaN),
          x.runs,
        ]),
      ),
    );
    md.push('', `Relay / reference frames/s: ${Object.entries(f.ratio).map(([k, v]) => `${k} clients ${n2(v)}x`).join(', ')}.`);
  }
  if (r.mjpeg) {
    const m = r.mjpeg;
    md.push('', '## 2. MJPEG viewers', '');
    md.push(
      'Viewers of `/stream.mjpg` (C load generator). Delivery latency = the moment a frame\'s last byte reaches the viewer minus the moment the fake ' +
        'camera made it (its COM segment carries the time), so it includes the camera-to-relay transfer and over-states the relay\'s own share. ' +
        `The relay paces the camera at ${m.nominalFps ?? 20} fps (MAX_FPS; the fake camera could do 25). A step passes when p99 < 100 ms, each viewer got at least ` +
        `90 % of ${m.nominalFps ?? 20} fps, every viewer got frames and none was disconnected. "relay CPU wait" is the share of the run the relay's JS ` +
        'thread was ready to run but waited for a CPU (/proc schedstat); high values mean the machine, not the relay, was the limit. ' +
        'The search goes one step past the first miss; the result is the largest step below the first miss.',
    );
    md.push(
      '',
      table(
        ['viewers', 'frames/s per viewer', 'p50 ms', 'p99 ms', 'max ms', 'viewers with frames', 'disconnects', 'relay CPU', 'relay CPU wait', 'loadgen CPU', 'camera fps', 'pass'],
        m.steps.map((s) => [
          s.viewers,
          n1(s.fpsPerViewer),
          n1(s.p50Ms),
          n1(s.p99Ms),
          n1(s.maxMs),
          s.viewersWithFrames,
          s.disconnects,
          n2(s.relayCpu),
          s.relayCpuWait === undefined ? 'n/a' : `${n0(s.relayCpuWait * 100)} %`,
          n2(s.loadgenCpu ?? NaN),
          n1(s.cameraFps),
          s.ok ? 'yes' : 'no',
        ]),
      ),
    );
    const mem = m.memory;
    md.push(
      '',
      `Memory (fresh relay, ${mem.viewers} viewers): RSS ${mem.baselineKb} KiB with no viewer; ${mem.idleKb} KiB with every viewer connected while ` +
        `the camera is down, nothing flowing (${n1(mem.perIdleViewerKb)} KiB per idle viewer, ${mem.idleHttpErrors} failed connections); ${mem.readingKb} KiB with all reading ` +
        `(${n1(mem.perViewerKb)} KiB per viewer); with 10 % never reading ${mem.stalledEarlyKb} KiB early and ${mem.stalledLateKb} KiB late in a 10 s run ` +
        `(${n1(mem.perStalledViewerKb ?? NaN)} KiB more per non-reading viewer than with all reading; a frame is ${n0(mem.frameKb ?? NaN)} KiB), ` +
        `${mem.stalledDisconnects} reading viewers disconnected.`,
    );
  }
  if (r.tunnel) {
    const t = r.tunnel;
    md.push('', '## 3. Tunnel throughput', '');
    md.push(
      `Same sshd (Debian OpenSSH with the project's \`tunnel-server/sshd_config\`, via \`test-support/sshd.ts\`), same target (the reference server), ` +
        `on loopback. tunnel-agent (\`tunnel-agent/dist/main.js\`) vs \`ssh -N -R\` (${t.sshVersion}); each client uses its default cipher preference. ` +
        'Load: N connections in flight to the forwarded port, each reading one frame to EOF. "client CPU" is the tunnel client process\'s CPU per second of run.',
    );
    md.push(
      '',
      table(
        ['in flight', 'client', 'frames/s', 'p50 ms', 'p99 ms', 'errors', 'client CPU', 'CPU µs/frame', 'loadgen CPU'],
        t.throughput.map((x) => [x.inFlight, x.client, n0(x.fps), n1(x.p50Ms), n1(x.p99Ms), x.errors, n2(x.clientCpu), n0((x.clientCpu / x.fps) * 1e6), n2(x.loadgenCpu ?? NaN)]),
      ),
    );
    md.push('', `tunnel-agent / OpenSSH frames/s: ${Object.entries(t.ratio).map(([k, v]) => `${k} in flight ${n2(v)}x`).join(', ')}.`);
    md.push('', '## 4. Tunnel recovery', '');
    md.push(
      'sshd is killed (SIGKILL, sessions too), kept down, then started again on the same port. Time from sshd listening again to the first whole frame through ' +
        'the forward. tunnel-agent (default settings) and autossh (`autossh -M 0`, `ServerAliveInterval=15`, `ServerAliveCountMax=3`, `ExitOnForwardFailure=yes`, ' +
        '`AUTOSSH_GATETIME=0`) run side by side through the same outages.',
    );
    md.push('', table(['outage', 'tunnel-agent', 'autossh'], t.recovery.map((x) => [`${x.outageS} s`, secs(x.agentMs), secs(x.autosshMs)])));
    if (t.blackhole) {
      const b = t.blackhole;
      md.push(
        '',
        `Dead link: a proxy between each client and sshd silently drops everything (no FIN, no RST). Both clients use keepalive ${b.keepalive} ` +
          '(tunnel-agent `SSH_KEEPALIVE_INTERVAL_S`/`SSH_KEEPALIVE_COUNT_MAX`, OpenSSH `ServerAliveInterval`/`ServerAliveCountMax`). Detection = the client dials a new ' +
          'connection. Then the link comes back and the frozen connections end.',
      );
      md.push(
        '',
        table(
          ['', 'tunnel-agent', 'autossh'],
          [
            ['dead link detected after', secs(b.agentDetectMs), secs(b.autosshDetectMs)],
            ['frame again after the link is back', secs(b.agentRecoverMs), secs(b.autosshRecoverMs)],
          ],
        ),
      );
    }
  }
  if (r.cameras) md.push(...camerasSection(r.cameras));
  if (findings.trim()) md.push('', findings.trim());
  md.push('');

  const summary = plainTable(
    ['item', 'what', 'target', 'measured', 'met'],
    tr.map((x) => [x.item, x.what, x.target, x.measured, x.met === undefined ? '-' : x.met ? 'yes' : 'NO']),
  );
  return { markdown: md.join('\n'), summary };
}
