import {
  analyse, archiveCheck, cameraRecovery, daemonTrend, healthyWindows, lifeTrends, logRates, longestDark, median, prometheusCheck, ratePerMin, restarts, RESTART_WARMUP_S, robustSpread,
  theilSen, trend,
} from '../../src/analysis';
import { arrivals, fault, healthyRun, MIN, sample } from './fixture';

/** Deterministic noise in [-1, 1] (no Math.random in tests). */
function noise(i: number): number {
  const x = Math.sin(i * 12.9898) * 43758.5453;
  return 2 * (x - Math.floor(x)) - 1;
}

describe('robust statistics', () => {
  test('median and spread', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNaN();
    // 1.4826 x MAD is the standard deviation for normal data; a single outlier does not move it
    expect(robustSpread([1, 2, 3, 4, 5])).toBeCloseTo(1.4826, 4);
    expect(robustSpread([1, 2, 3, 4, 1000])).toBeCloseTo(1.4826, 4);
  });

  test('Theil-Sen finds the line and ignores spikes that least squares would follow', () => {
    const points = Array.from({ length: 100 }, (_, i) => ({ t: i, v: 3 * i + 7 + (i % 10 === 0 ? 500 : 0) }));
    const { slope, intercept } = theilSen(points);
    expect(slope).toBeCloseTo(3, 6);
    expect(intercept).toBeCloseTo(7, 6);
  });
});

describe('trend: flat within noise', () => {
  const series = (slopePerS: number, amp: number, n = 90, stepS = 10) =>
    Array.from({ length: n }, (_, i) => ({ t: 900 + i * stepS, v: 60e6 + slopePerS * i * stepS + amp * noise(i) }));

  test('a noisy flat series is flat', () => {
    const t = trend(series(0, 2e6), { rel: 0.02, abs: 0 });
    expect(t.verdict).toBe('flat');
    expect(Math.abs(t.drift)).toBeLessThan(t.bound);
    expect(t.windowS).toBe(890);
  });

  test('a leak well above the noise is RISING; its slope is reported per hour', () => {
    // 10 MB over 15 minutes: 40 MB an hour, noise 1 MB
    const t = trend(series(10e6 / 900, 1e6), { rel: 0.02, abs: 0 });
    expect(t.verdict).toBe('RISING');
    expect(t.slopePerHour).toBeGreaterThan(35e6);
    expect(t.slopePerHour).toBeLessThan(45e6);
  });

  test('a slow rise inside the noise is flat, a fall is "falling" (memory given back is no leak)', () => {
    expect(trend(series(1e6 / 900, 2e6), { rel: 0.02, abs: 0 }).verdict).toBe('flat');
    expect(trend(series(-20e6 / 900, 1e6), { rel: 0.02, abs: 0 }).verdict).toBe('falling');
  });

  test('a constant count with fault spikes stays flat (the absolute floor and the robust line)', () => {
    const fds = Array.from({ length: 90 }, (_, i) => ({ t: i * 10, v: i % 6 === 0 ? 330 : 30 }));
    const t = trend(fds, { rel: 0, abs: 2 });
    expect(t.noise).toBe(0);
    expect(t.bound).toBe(2);
    expect(t.verdict).toBe('flat');
  });

  test('one more fd every minute over 15 minutes is RISING', () => {
    const fds = Array.from({ length: 90 }, (_, i) => ({ t: i * 10, v: 30 + Math.floor(i / 6) }));
    expect(trend(fds, { rel: 0, abs: 2 }).verdict).toBe('RISING');
  });

  test('no verdict for a window shorter than the minimum or without values', () => {
    expect(trend(series(10e6, 1e6, 30), { rel: 0.02, abs: 0 }).verdict).toBe('n/a');
    expect(trend([{ t: 0, v: NaN }, { t: 1000, v: NaN }], { rel: 0, abs: 2 }).verdict).toBe('n/a');
  });
});

describe('trend: a restart is not a trend', () => {
  const START = Date.UTC(2026, 0, 1);
  const iso = (ms: number) => new Date(START + ms).toISOString();
  /**
   * 30 minutes of relay samples every 10 s with a restart at 8, 18 and 28 minutes; each lifetime
   * starts at `fresh` MB and climbs `warmMb` over its first two minutes (paging in, heap growing to
   * size), then rises `perMinMb` a minute.
   */
  const sawtooth = (perMinMb: number, fresh = 94, warmMb = 12) => {
    const starts = [-60_000, 8 * MIN, 18 * MIN, 28 * MIN];
    return Array.from({ length: 180 }, (_, i) => {
      const t = i * 10_000;
      const start = starts.filter((s) => s <= t).pop()!;
      const age = (t - start) / 60_000;
      const mb = fresh + Math.min(age, 2) / 2 * warmMb + perMinMb * age + 0.3 * noise(i);
      return sample(t, {
        daemons: { relay: { rss: mb * 2 ** 20 } },
        containers: { relay: { startedAt: iso(start), restartCount: 0, running: true, oomKilled: false } },
      });
    });
  };

  test('flat lifetimes cut by restarts, each with its warm-up, are flat', () => {
    const samples = sawtooth(0);
    const judged = daemonTrend(samples, 'relay', 'rss', 15 * MIN, undefined, START);
    expect(judged.verdict).toBe('flat');
    expect(judged.lifetimes).toBe(2); // 15-18 min and 20-28 min; 28-30 is warm-up
    // the warm-up after each restart is left out: nothing from 18:00-19:59 or 28:00-29:59
    expect(judged.n).toBe(18 + 48);
  });

  test('a leak inside every lifetime is RISING although each restart resets it', () => {
    // 0.5 MB a minute: 7.5 MB over the 15-minute window, noise 0.3 MB
    const judged = daemonTrend(sawtooth(0.5), 'relay', 'rss', 15 * MIN, undefined, START);
    expect(judged.verdict).toBe('RISING');
    expect(judged.slopePerHour / 2 ** 20).toBeCloseTo(30, 0);
  });

  test('a lifetime that began before the run keeps its samples; the warm-up only follows a start inside it', () => {
    const samples = sawtooth(0);
    const all = daemonTrend(samples, 'relay', 'rss', 0, undefined, START);
    // 180 samples, less 12 for each of the three restarts' warm-up
    expect(all.n).toBe(180 - 3 * (RESTART_WARMUP_S / 10));
    expect(all.lifetimes).toBe(3);
  });
});

describe('lifeTrends: each lifetime on its own', () => {
  const START = Date.UTC(2026, 0, 1);
  const MiB = 2 ** 20;
  // a relay started before the run and restarted at 8 and 18 minutes; only the second life rises,
  // 0.25 MiB a minute; heap flat; a full GC every 10 s in the first life, every 20 s after that
  const samples = Array.from({ length: 180 }, (_, i) => {
    const t = i * 10_000;
    const start = [-60_000, 8 * MIN, 18 * MIN].filter((x) => x <= t).pop()!;
    const rising = start === 8 * MIN ? 0.25 * ((t - start) / MIN) : 0;
    return sample(t, {
      daemons: { relay: { rss: 100 * MiB, anon: (40 + rising + 0.05 * noise(i)) * MiB, heap: 12 * MiB, fullGcs: (t - start) / (start < 0 ? 10_000 : 20_000) } },
      containers: { relay: { startedAt: new Date(START + start).toISOString(), restartCount: 0, running: true, oomKilled: false } },
    });
  });

  test('one entry per lifetime, each from 2 minutes after its start (or the run\'s), with its own drift', () => {
    const lives = lifeTrends(samples, 'relay', START);
    expect(lives.map((l) => [l.startedAtMs, l.fromMs, l.toMs])).toEqual([
      [-60_000, RESTART_WARMUP_S * 1000, 8 * MIN - 10_000],
      [8 * MIN, 8 * MIN + RESTART_WARMUP_S * 1000, 18 * MIN - 10_000],
      [18 * MIN, 18 * MIN + RESTART_WARMUP_S * 1000, 29 * MIN + 50_000],
    ]);
    // the rising life: 0.25 MiB/min over its 7 min 50 s after the warm-up
    expect(lives[1].anon.drift / MiB).toBeCloseTo(0.25 * (470 / 60), 1);
    expect(lives[1].anon.verdict).toBe('RISING');
    for (const l of [lives[0], lives[2]]) expect(Math.abs(l.anon.drift / MiB)).toBeLessThan(0.1);
    for (const l of lives) expect(l.heap.drift).toBeCloseTo(0, 6);
    expect(lives.map((l) => l.fullGcsPerMin.toFixed(6))).toEqual(['6.000000', '3.000000', '3.000000']);
  });

  test('no full-GC rate where the counter is missing or has one sample', () => {
    expect(ratePerMin([])).toBeNaN();
    expect(ratePerMin([{ t: 0, v: NaN }, { t: 10, v: 4 }])).toBeNaN();
    expect(ratePerMin([{ t: 0, v: 1 }, { t: 30, v: NaN }, { t: 120, v: 9 }])).toBe(4);
  });

  test('analyse() lists the lifetimes of a judged daemon restarted during the run, and no others', () => {
    const r = healthyRun();
    expect(analyse(r).lives).toEqual([]);
    for (const x of r.samples) {
      if (x.t >= 10 * MIN) x.containers.relay = { ...x.containers.relay!, startedAt: new Date(10 * MIN).toISOString() };
    }
    const lives = analyse(r).lives;
    expect(lives.map((d) => [d.daemon, d.lives.length])).toEqual([['relay', 2]]);
    expect(lives[0].lives[1].fromMs).toBe(10 * MIN + RESTART_WARMUP_S * 1000);
  });
});

describe('frames after a fault', () => {
  const a = [0, 100, 200, 5000, 5100, 5200, 9000, 9100];

  test('longestDark counts from the start of the window and up to its end', () => {
    expect(longestDark(a, 150, 5150)).toBe(4800); // 200 -> 5000
    expect(longestDark(a, 5250, 8000)).toBe(2750); // no frame inside: the whole window
    expect(longestDark(a, 0, 250)).toBe(100);
  });

  test('recovery is the first new frame after the clear; the worst gap runs to the next fault', () => {
    const f = fault({ recoveryTargetS: 5 }, 300, 1000);
    const r = cameraRecovery({ camera: 'front', arrivals: a }, f, 9050);
    expect(r.recoveryMs).toBe(4000);
    expect(r.worstGapAfterMs).toBe(3800); // 5200 -> 9000
    expect(r.darkDuringMs).toBe(700);
    expect(r.met).toBe(true);
    expect(cameraRecovery({ camera: 'front', arrivals: a }, fault({ recoveryTargetS: 3 }, 300, 1000), 9050).met).toBe(false);
  });

  test('no frame before the next fault: not recovered', () => {
    const r = cameraRecovery({ camera: 'front', arrivals: a }, fault({}, 5300, 5400), 8000);
    expect(r.recoveryMs).toBeUndefined();
    expect(r.met).toBe(false);
  });
});

describe('healthy time and log volume', () => {
  test('healthy windows start settle after each recovery deadline and end at the next fault', () => {
    const faults = [fault({ recoveryTargetS: 5 }, 60_000, 80_000), fault({ recoveryTargetS: 11 }, 120_000, 130_000)];
    expect(healthyWindows(faults, 180_000, 15_000)).toEqual([
      { from: 15_000, to: 60_000 },
      { from: 100_000, to: 120_000 },
      { from: 156_000, to: 180_000 },
    ]);
  });

  test('healthy time ends when injecting began, not when the fault was in place', () => {
    const f = { ...fault({ recoveryTargetS: 5 }, 60_000, 80_000), startAt: 58_000 };
    expect(healthyWindows([f], 120_000, 15_000)[0]).toEqual({ from: 15_000, to: 58_000 });
  });

  test('a fault that recovered late, or never, delays or removes the healthy time after it', () => {
    const faults = [fault({ recoveryTargetS: 5 }, 60_000, 80_000), fault({ recoveryTargetS: 5 }, 120_000, 130_000)];
    expect(healthyWindows(faults, 180_000, 15_000, [90_000, Infinity])).toEqual([
      { from: 15_000, to: 60_000 },
      { from: 105_000, to: 120_000 },
    ]);
  });

  test('lines per healthy minute, the most frequent first; a rotated log is flagged', () => {
    const windows = [{ from: 0, to: 2 * MIN }];
    const rates = logRates({
      relay: { lines: [{ t: 1000, msg: 'a' }, { t: 2000, msg: 'b' }, { t: 3000, msg: 'b' }, { t: 5 * MIN, msg: 'outside' }], firstAt: -1000 },
      agent: { lines: [], firstAt: 10 * MIN },
    }, windows);
    expect(rates[0]).toMatchObject({ service: 'relay', total: 4, healthyLines: 3, perMinute: 1.5, truncated: false });
    expect(rates[0].top).toEqual([{ msg: 'b', count: 2 }, { msg: 'a', count: 1 }]);
    expect(rates[1]).toMatchObject({ service: 'agent', perMinute: 0, truncated: true });
  });
});

describe('restarts', () => {
  const started = (t: number, startedAt: string, restartCount = 0) =>
    sample(t, { containers: { relay: { startedAt, restartCount, running: true, oomKilled: false } } });

  test('a start during a relay-restart fault is expected, any other is not', () => {
    const samples = [started(0, 'a'), started(10_000, 'b'), started(20_000, 'b'), started(30_000, 'c')];
    const rs = restarts(samples, [fault({ kind: 'relay-restart' }, 5000, 8000)], 10_000);
    expect(rs.map((r) => [r.seenAt, r.expected])).toEqual([[10_000, true], [30_000, false]]);
  });

  test('the restart policy bringing a crashed container back is never expected', () => {
    const rs = restarts([started(0, 'a'), started(10_000, 'b', 1)], [fault({ kind: 'relay-restart' }, 5000, 8000)], 10_000);
    expect(rs[0].expected).toBe(false);
    expect(rs[0].how).toMatch(/restart count 0 -> 1/);
  });
});

describe('disk', () => {
  test('archive: at most SNAPSHOT_KEEP + 1 files per camera and their bytes', () => {
    const ok = archiveCheck([sample(0)], 20, [52_000]);
    expect(ok.verdict).toBe('pass');
    expect(ok.boundBytes).toBe(21 * (52_000 + 4096) + 4096);
    const over = archiveCheck([sample(0, { cameras: { front: { archiveFiles: 40 } } })], 20, [52_000]);
    expect(over.verdict).toBe('fail');
    expect(archiveCheck([sample(0)], 0, [52_000]).verdict).toBe('n/a');
  });

  test('Prometheus: judged only once retention can have acted; blocks bounded and deleted', () => {
    const disk = (blocks: number, retentions: number) => ({ prometheusBytes: 5e6, prometheusBlocks: blocks, prometheusRetentions: retentions, prometheusWalBytes: 1e6 });
    const run = (blocks: number, retentions: number) => [0, 1, 2].map((i) => sample(i * 10 * MIN, { disk: disk(blocks, retentions) }));
    expect(prometheusCheck(run(3, 2), 360, 180, 10 * MIN).verdict).toBe('n/a');
    expect(prometheusCheck(run(3, 2), 360, 180, 30 * MIN).verdict).toBe('pass');
    expect(prometheusCheck(run(3, 0), 360, 180, 30 * MIN).verdict).toBe('fail');
    expect(prometheusCheck(run(9, 2), 360, 180, 30 * MIN).verdict).toBe('fail');
  });
});

describe('analyse', () => {
  test('a healthy 30-minute run meets every target it can judge', () => {
    const a = analyse(healthyRun());
    const v = Object.fromEntries(a.targets.map((t) => [t.id, t.verdict]));
    expect(v).toEqual({
      'no-unexpected-restart': 'pass',
      'rss-flat': 'pass',
      'fds-flat': 'pass',
      recovery: 'pass',
      'faults-effective': 'pass',
      'log-volume': 'pass',
      'archive-bounded': 'pass',
      'prometheus-bounded': 'n/a', // the fixture has no Prometheus disk figures
    });
    expect(a.failed).toBe(0);
    expect(a.outcomes.length).toBe(healthyRun().faults.length);
  });

  test('a leaking relay, a fault without recovery and a log flood each fail their target', () => {
    const r = healthyRun();
    r.samples.forEach((s, i) => (s.daemons.relay!.rss = 60 * 2 ** 20 + i * 200_000));
    r.viewers[0].arrivals = r.viewers[0].arrivals.filter((t) => t < r.faults[3].injectAt || t > r.faults[4].injectAt);
    for (let t = 0; t < r.durationMs; t += 1000) r.logs.relay.lines.push({ t, msg: 'info client connected' });
    r.logs.relay.lines.sort((x, y) => x.t - y.t);
    const a = analyse(r);
    const get = (id: string) => a.targets.find((t) => t.id === id)!;
    expect(get('rss-flat').verdict).toBe('fail');
    expect(get('rss-flat').measured).toMatch(/^relay \+/);
    expect(get('recovery').verdict).toBe('fail');
    expect(get('recovery').measured).toMatch(/missed: #3 viewer-storm never/);
    expect(get('log-volume').verdict).toBe('fail');
    expect(a.logs.find((l) => l.service === 'relay')!.top[0].msg).toBe('info client connected');
  });

  test('memory is judged on the anonymous RSS: file pages paged in are not a leak, anonymous growth is', () => {
    const r = healthyRun();
    // RSS rises 15 MB over the run as code is paged in; the anonymous part stays flat
    r.samples.forEach((s, i) => Object.assign(s.daemons.relay!, { rss: 60 * 2 ** 20 + i * 90_000, anon: 30 * 2 ** 20 + 50_000 * noise(i) }));
    let a = analyse(r);
    expect(a.targets.find((t) => t.id === 'rss-flat')).toMatchObject({ verdict: 'pass', measured: expect.stringMatching(/^relay anon \+?-?0\.\d MiB/) });
    expect(a.trends.find((x) => x.daemon === 'relay' && x.metric === 'rss')!.trend.verdict).toBe('RISING'); // shown, not judged
    r.samples.forEach((s, i) => (s.daemons.relay!.anon = 30 * 2 ** 20 + i * 90_000));
    a = analyse(r);
    expect(a.targets.find((t) => t.id === 'rss-flat')!.verdict).toBe('fail');
  });

  test('a short run judges no trend and says why', () => {
    const r = healthyRun();
    r.durationMs = 3 * MIN;
    r.samples = r.samples.filter((s) => s.t <= r.durationMs);
    r.faults = r.faults.filter((f) => f.clearAt < r.durationMs);
    const a = analyse(r);
    expect(a.targets.find((t) => t.id === 'rss-flat')).toMatchObject({ verdict: 'n/a', measured: expect.stringMatching(/< 600 s/) });
    expect(a.targets.find((t) => t.id === 'log-volume')!.verdict).toBe('n/a');
  });

  test('arrivals helper leaves the dark windows out', () => {
    expect(arrivals(0, 100, 20, [{ from: 40, to: 70 }])).toEqual([0, 20, 80]);
  });
});
