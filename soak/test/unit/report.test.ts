import { analyse } from '../../src/analysis';
import { evidence } from '../../src/faults';
import { parseLogLines, shortForm } from '../../src/logs';
import { parseMetrics, sum } from '../../src/metrics';
import { gnuplotScript, plotData } from '../../src/plots';
import { renderReport, summary } from '../../src/report';
import { fault, healthyRun, MIN } from './fixture';

describe('SOAK.md', () => {
  test('a full run: result line, targets, plots, trend rules, every fault, logs, settings', () => {
    const r = healthyRun();
    const md = renderReport(r, analyse(r), { plotsRel: 'soak/plots' });
    expect(md).not.toMatch(/Short run/);
    expect(md).toMatch(/\*\*Result: PASS: 7 targets met, 0 missed, 1 not judged\.\*\*/);
    expect(md).toMatch(/\| rss-flat \| memory \(anonymous RSS\) of relay, tunnel-agent, tunnel-server flat within noise \(second half, per process lifetime\) \|/);
    expect(md).toContain('![RSS per daemon](soak/plots/rss.png)');
    expect(md).toContain('![frames per second per camera, faults marked](soak/plots/fps.png)');
    expect(md).toMatch(/RISING\*\* when drift > bound = max\(3 x noise, floor\)/);
    for (const f of r.faults) expect(md).toContain(`| ${f.slot.index} | `);
    expect(md).toMatch(/\| camera-hang \| the camera accepts and never sends .* \| 15 \|/);
    expect(md).toMatch(/\| relay \| \d+ \| \d+ \| 0\.\d\d \| /);
    expect(md).toMatch(/SNAPSHOT_CRON=\*\/5 \* \* \* \* \*/);
  });

  test('a daemon restarted during the run gets a row per lifetime; without restarts there is no such table', () => {
    const r = healthyRun();
    expect(renderReport(r, analyse(r), { plotsRel: 'plots' })).not.toContain('Each lifetime of a daemon restarted');
    for (const x of r.samples) {
      x.containers.relay = { ...x.containers.relay!, startedAt: new Date(x.t >= 10 * MIN ? 10 * MIN : -MIN).toISOString() };
      x.daemons.relay = { ...x.daemons.relay!, anon: 40 * 2 ** 20 };
    }
    const md = renderReport(r, analyse(r), { plotsRel: 'plots' });
    expect(md).toContain('Each lifetime of a daemon restarted');
    expect(md).toContain('| relay | before the run | 2.0 min - 9.8 min | 40.0 MiB -> 40.0 MiB | +0.0 MiB (0.0 MiB) | +0.0 MiB |');
    expect(md).toContain('| relay | 10.0 min | 12.0 min - 30.0 min | 40.0 MiB -> 40.0 MiB | +0.0 MiB (0.0 MiB) | +0.0 MiB |');
  });

  test('a short run says so first, and a failed target is marked', () => {
    const r = healthyRun();
    r.config.minutes = 2;
    r.faults[0].effect = { seen: false, evidence: 'front: up 1 at the clear' };
    const md = renderReport(r, analyse(r), { plotsRel: 'plots', plotsError: 'gnuplot: not found' });
    expect(md.split('\n')[2]).toMatch(/^> \*\*Short run: SOAK_MINUTES=2 .*NOT the 30-minute soak/);
    expect(md).toMatch(/\| faults-effective \| .* \| #0 camera-hang: front: up 1 at the clear \| \*\*FAIL\*\* \|/);
    expect(md).toContain('Not rendered: gnuplot: not found');
    expect(md).not.toContain('.png');
  });

  test('the console summary has one line per target', () => {
    const lines = summary(analyse(healthyRun())).split('\n');
    expect(lines).toHaveLength(8);
    expect(lines[0]).toMatch(/^no-unexpected-restart\s+pass\s+0 unexpected/);
  });
});

describe('plots', () => {
  test('data files hold a row per sample and per 2 s bin; the script shades every fault', () => {
    const r = healthyRun();
    const data = plotData(r);
    expect(data['rss.dat'].trim().split('\n')).toHaveLength(1 + r.samples.length);
    // RSS of each daemon, then its anonymous part (not in this fixture); no Caddy in this run
    expect(data['rss.dat'].split('\n')[1]).toBe('0.0000 60 50 24 NaN 90 NaN NaN NaN NaN NaN');
    expect(data['fps.dat'].trim().split('\n')).toHaveLength(1 + 30 * 60 / 2);
    const script = gnuplotScript(r, '/d', '/out', 15 * MIN);
    expect(script.match(/set object \d+ rect/g)).toHaveLength(r.faults.length);
    expect(script).toContain('set output "/out/rss.png"');
    expect(script).toContain('set arrow 1000 from 15.0000, graph 0');
    expect(script).toMatch(/set label 1 "hang front" at 1\.0000, graph 0\.98/);
  });
});

describe('logs', () => {
  test('pino lines become level, module, camera and message; others have their numbers masked', () => {
    expect(shortForm('{"level":40,"module":"pull-source","camera":"front","msg":"camera down","err":"x"}')).toBe('warn pull-source front: camera down');
    expect(shortForm('Accepted publickey for tunnel from 172.24.0.6 port 32902 ssh2')).toBe('Accepted publickey for tunnel from #.#.#.# port # ssh#');
    expect(shortForm('{not json')).toBe('{not json');
  });

  test('docker timestamps become ms since the start, in order', () => {
    const rec = parseLogLines([
      '2026-01-01T00:00:02.500000000Z {"level":30,"msg":"b"}',
      '2026-01-01T00:00:01.000000000Z {"level":30,"msg":"a"}',
      'garbage',
    ], Date.parse('2026-01-01T00:00:00Z'));
    expect(rec.lines).toEqual([{ t: 1000, msg: 'info a' }, { t: 2500, msg: 'info b' }]);
    expect(rec.firstAt).toBe(1000);
  });
});

describe('metrics and fault evidence', () => {
  const text = [
    '# HELP relay_camera_up x',
    'relay_camera_up{camera="front"} 0',
    'relay_camera_up{camera="garden"} 1',
    'relay_fetch_errors_total{camera="front",reason="idle_timeout"} 2',
    'relay_fetch_errors_total{camera="front",reason="refused"} 1',
    'relay_camera_frozen{camera="front"} 1',
    'tunnel_agent_reconnects_total 3',
    'tunnel_agent_keepalive_timeouts_total 1',
    'tunnel_agent_disconnects_total{reason="keepalive"} 1',
  ].join('\n');
  const m = parseMetrics(text);

  test('parse and sum by labels', () => {
    expect(sum(m, 'relay_fetch_errors_total', { camera: 'front' })).toBe(3);
    expect(sum(m, 'relay_camera_up')).toBe(1);
    expect(sum(m, 'nope')).toBeUndefined();
  });

  test('a camera fault took effect when the camera went down or its fetches failed', () => {
    const before = parseMetrics('relay_fetch_errors_total{camera="front",reason="refused"} 1\nrelay_camera_up{camera="front"} 1');
    const slot = fault({ kind: 'camera-hang', camera: 'front' }, 0, 1).slot;
    expect(evidence(slot, { before: { relay: before }, atClear: { relay: m }, after: {} })).toEqual({ seen: true, evidence: 'front: up 0 at the clear, fetch errors +2' });
    expect(evidence(slot, { before: { relay: before }, atClear: { relay: before }, after: {} }).seen).toBe(false);
  });

  test('the silent cut took effect only when keepalive found it and the agent reconnected', () => {
    const before = parseMetrics('tunnel_agent_reconnects_total 2\ntunnel_agent_keepalive_timeouts_total 0\ntunnel_agent_disconnects_total{reason="x"} 0');
    const slot = fault({ kind: 'link-cut' }, 0, 1).slot;
    expect(evidence(slot, { before: { agent: before }, atClear: {}, after: { agent: m } })).toEqual({ seen: true, evidence: 'agent: keepalive timeouts +1, sessions ended +1, reconnects +1' });
    expect(evidence(slot, { before: { agent: m }, atClear: {}, after: { agent: m } }).seen).toBe(false);
  });
});
