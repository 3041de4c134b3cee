/**
 * The plots of SOAK.md, drawn by gnuplot (Debian gnuplot-nox, pngcairo): RSS and open fds per daemon,
 * frames per second per camera as the steady viewers saw them, and disk use; every fault a shaded band
 * with its name. The data files and the script are plain functions of the results (testable); only
 * renderPlots() writes files and runs gnuplot.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { frameRate } from './analysis';
import { DAEMONS, JUDGED_DAEMONS, SoakResults } from './results';
import { FAULT_TEXT, FaultKind } from './schedule';

export const PLOTS = ['rss', 'fds', 'fps', 'disk'] as const;
export type PlotName = (typeof PLOTS)[number];

/** Fault bands by what they hit. */
const BAND: Record<FaultKind, string> = {
  'camera-hang': '#f5c28b',
  'camera-refused': '#f5c28b',
  'camera-flaky': '#f5c28b',
  'camera-frozen': '#f5c28b',
  'tunnel-server-restart': '#f2a0a0',
  'link-cut': '#f2a0a0',
  'link-cut-nat': '#e07070',
  'relay-restart': '#c9b3e6',
  'viewer-storm': '#a9c8ef',
  'archive-full': '#b5dfb0',
};

const min = (ms: number) => (ms / 60_000).toFixed(4);
const num = (v: number | undefined, scale = 1) => (v === undefined || !Number.isFinite(v) ? 'NaN' : String(v / scale));

/** The data files: name -> content (gnuplot columns, NaN where a sample lacks the value). */
export function plotData(r: SoakResults, binMs = 2000): Record<string, string> {
  const mem = ['# minutes ' + DAEMONS.join(' ') + ' ' + DAEMONS.map((d) => `${d}_anon`).join(' ')];
  const fds = ['# minutes ' + DAEMONS.join(' ')];
  const disk = ['# minutes archive prometheus prometheus_wal_head'];
  for (const s of r.samples) {
    mem.push([min(s.t), ...DAEMONS.map((d) => num(s.daemons[d]?.rss, 2 ** 20)), ...DAEMONS.map((d) => num(s.daemons[d]?.anon, 2 ** 20))].join(' '));
    fds.push([min(s.t), ...DAEMONS.map((d) => num(s.daemons[d]?.fds))].join(' '));
    disk.push([min(s.t), num(s.disk.archiveBytes, 2 ** 20), num(s.disk.prometheusBytes, 2 ** 20), num(s.disk.prometheusWalBytes, 2 ** 20)].join(' '));
  }
  const rates = r.viewers.map((v) => frameRate(v.arrivals, r.durationMs, binMs));
  const fps = ['# minutes ' + r.viewers.map((v) => v.camera).join(' ')];
  for (let i = 0; i < (rates[0]?.length ?? 0); i++) fps.push([min(rates[0][i].t * 1000), ...rates.map((x) => x[i].fps.toFixed(2))].join(' '));
  return { 'rss.dat': mem.join('\n') + '\n', 'fds.dat': fds.join('\n') + '\n', 'fps.dat': fps.join('\n') + '\n', 'disk.dat': disk.join('\n') + '\n' };
}

const quote = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** The gnuplot script that draws every plot from the data files in dataDir into outDir. */
export function gnuplotScript(r: SoakResults, dataDir: string, outDir: string, trendFromMs: number): string {
  const bands: string[] = [];
  r.faults.forEach((f, i) => {
    const to = Math.max(f.clearAt, f.injectAt + 1000);
    bands.push(`set object ${i + 1} rect from ${min(f.injectAt)}, graph 0 to ${min(to)}, graph 1 fc rgb ${quote(BAND[f.slot.kind])} fs solid 0.6 noborder behind`);
  });
  const labels = r.faults.map((f, i) =>
    `set label ${i + 1} ${quote(FAULT_TEXT[f.slot.kind].short + (f.slot.camera ? ` ${f.slot.camera}` : ''))} at ${min(f.injectAt)}, graph 0.98 rotate by 90 right font ",8" tc rgb "#555555"`);
  const xmax = min(r.durationMs);
  const common = [
    'set terminal pngcairo size 1400,520 font "DejaVu Sans,10" noenhanced',
    'set datafile missing "NaN"',
    'set key outside right top',
    'set grid ytics lc rgb "#dddddd"',
    `set xrange [0:${xmax}]`,
    'set xlabel "minutes since the start of the run"',
    'set style data lines',
    ...bands,
  ];
  const trendLine = `set arrow 1000 from ${min(trendFromMs)}, graph 0 to ${min(trendFromMs)}, graph 1 nohead dt 3 lc rgb "#333333"`;
  const cols = (file: string, names: readonly string[]) =>
    names.map((n, i) => `${quote(path.join(dataDir, file))} using 1:${i + 2} title ${quote(n)} lw 2`).join(', \\\n  ');
  const out = (name: string) => `set output ${quote(path.join(outDir, `${name}.png`))}`;
  return [
    ...common,
    '',
    out('rss'),
    `set title ${quote('RSS per daemon (MiB), solid; its anonymous part (RssAnon), dashed; shaded: faults; dotted: start of the judged trend window')}`,
    'set ylabel "MiB"',
    'set yrange [0:*]',
    trendLine,
    `plot ${cols('rss.dat', DAEMONS)}, \\\n  ${JUDGED_DAEMONS.map((d) => `${quote(path.join(dataDir, 'rss.dat'))} using 1:${DAEMONS.length + DAEMONS.indexOf(d) + 2} title ${quote(`${d} anon`)} lw 1.5 lt ${DAEMONS.indexOf(d) + 1} dt 2`).join(', \\\n  ')}`,
    '',
    out('fds'),
    `set title ${quote('open file descriptors per daemon; shaded: faults')}`,
    'set ylabel "fds"',
    `plot ${cols('fds.dat', DAEMONS)}`,
    '',
    'unset arrow 1000',
    ...labels,
    out('fps'),
    `set title ${quote('new frames per second per camera, as the steady MJPEG viewers saw them (2 s bins); shaded: faults')}`,
    'set ylabel "frames/s"',
    `plot ${cols('fps.dat', r.viewers.map((v) => v.camera))}`,
    '',
    out('disk'),
    `set title ${quote('disk used: archive (camera folders) and Prometheus (all; WAL + head chunks); log scale')}`,
    'set ylabel "MiB"',
    'set logscale y',
    'set yrange [0.01:*]',
    `plot ${cols('disk.dat', ['archive', 'prometheus', 'prometheus WAL + head'])}`,
    '',
  ].join('\n');
}

/** Writes the data and script to a temp dir and runs gnuplot; the PNGs land in outDir. */
export async function renderPlots(r: SoakResults, outDir: string, trendFromMs: number): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-soak-plots-'));
  try {
    fs.mkdirSync(outDir, { recursive: true });
    for (const [name, text] of Object.entries(plotData(r))) fs.writeFileSync(path.join(dataDir, name), text);
    const script = path.join(dataDir, 'plots.gp');
    fs.writeFileSync(script, gnuplotScript(r, dataDir, outDir, trendFromMs));
    await new Promise<void>((resolve, reject) => {
      execFile('gnuplot', [script], { timeout: 60_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`gnuplot: ${err.message} ${String(stderr).trim()}`)) : resolve()));
    });
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
