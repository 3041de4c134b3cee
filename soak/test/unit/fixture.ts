/** Synthetic soak results for the unit tests: a healthy 30-minute run, built sample by sample. */
import type { FaultRecord, Sample, SoakResults } from '../../src/results';
import { buildSchedule } from '../../src/schedule';
import type { Slot } from '../../src/schedule';

export const MIN = 60_000;

export function sample(t: number, over: Partial<Sample> = {}): Sample {
  return {
    t,
    daemons: {
      relay: { rss: 60 * 2 ** 20, heap: 20 * 2 ** 20, fds: 30, handles: 12 },
      'tunnel-agent': { rss: 50 * 2 ** 20, heap: 15 * 2 ** 20, fds: 25, handles: 9 },
      'tunnel-server': { rss: 24 * 2 ** 20, fds: 31, handles: 3 },
      prometheus: { rss: 90 * 2 ** 20, heap: 30 * 2 ** 20, fds: 16, handles: 38 },
    },
    cameras: { front: { frames: t / 40, up: 1, frozen: 0, fetchErrors: 0, archiveFiles: 20 } },
    relay: {},
    agent: {},
    containers: { relay: { startedAt: 'a', restartCount: 0, running: true, oomKilled: false } },
    disk: { archiveBytes: 2 ** 20 },
    ...over,
  };
}

/** A fault that held from `injectAt` to `clearAt` (ms). */
export function fault(slot: Partial<Slot>, injectAt: number, clearAt: number): FaultRecord {
  return {
    slot: { index: 0, kind: 'camera-hang', startS: injectAt / 1000, holdS: (clearAt - injectAt) / 1000, recoveryTargetS: 5, endS: injectAt / 1000 + 60, ...slot },
    injectAt,
    clearAt,
    effect: { seen: true, evidence: 'test' },
    notes: [],
  };
}

/** Arrivals every `everyMs` from `from` to `to`, except inside the dark windows. */
export function arrivals(from: number, to: number, everyMs: number, dark: { from: number; to: number }[] = []): number[] {
  const out: number[] = [];
  for (let t = from; t < to; t += everyMs) if (!dark.some((d) => t >= d.from && t < d.to)) out.push(t);
  return out;
}

/** 30 minutes, a sample every 10 s, the real schedule, one camera at 25 fps dark only while each fault holds. */
export function healthyRun(): SoakResults {
  const durationMs = 30 * MIN;
  const slots = buildSchedule({ minutes: 30, periodS: 60, holdS: 20, warmupS: 60, faults: ['camera-hang', 'viewer-storm'] }, { cameras: ['front'], keepaliveWindowS: 6, frozenAfterS: 5 });
  const faults = slots.map((s) => ({ ...fault(s, s.startS * 1000, (s.startS + s.holdS) * 1000), slot: s }));
  const samples: Sample[] = [];
  for (let t = 0; t <= durationMs; t += 10_000) samples.push(sample(t));
  return {
    startedAt: '2026-01-01T00:00:00.000Z',
    startedAtMs: 0,
    durationMs,
    command: 'make soak',
    commit: 'abc1234',
    machine: { cpus: 2, model: 'test', memGiB: 4, kernel: '6', node: 'v24', loadAvgStart: [1, 1, 1], loadAvgEnd: [1, 1, 1] },
    config: { minutes: 30, periodS: 60, holdS: 20, warmupS: 60, sampleS: 10, settleS: 15, stormClients: 300, recoveryTargetS: 5 },
    cameras: ['front'],
    stack: { keepaliveWindowS: 6, frozenAfterS: 5, snapshotKeep: 20, prometheusRetentionS: 360, prometheusBlockS: 180, env: { SNAPSHOT_CRON: '*/5 * * * * *' } },
    samples,
    faults,
    viewers: [{
      camera: 'front',
      arrivals: arrivals(0, durationMs, 40, faults.map((f) => ({ from: f.injectAt, to: f.clearAt + 500 }))),
      backwards: 0,
      reconnects: [],
      maxFrameBytes: 52_000,
      polls: [{ t: 1000, kind: 'raw', ok: true }],
    }],
    logs: { relay: { lines: faults.flatMap((f) => [{ t: f.injectAt + 3000, msg: 'warn camera down' }, { t: f.clearAt + 600, msg: 'info camera up again' }]), firstAt: -30_000 } },
    errors: [],
  };
}
