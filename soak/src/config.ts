/**
 * The soak's settings, one declaration each (environment variable, default, unit, why), read once.
 * A bad value exits 2 naming the variable, the value and what is allowed (the daemons' convention).
 */
import path from 'node:path';
import { ROOT } from '../../test-support';
import { FAULT_KINDS, FaultKind, RECOVERY_TARGET_S } from './schedule';

export interface SoakConfig {
  /** SOAK_MINUTES: length of the run in minutes (a run always holds every fault at least once) */
  minutes: number;
  /** SOAK_FAULT_PERIOD_S: one fault starts every this many seconds (a slot stretches when a fault needs longer) */
  periodS: number;
  /** SOAK_FAULT_HOLD_S: how long a fault is held before it is cleared (some faults need a minimum) */
  holdS: number;
  /** SOAK_WARMUP_S: healthy time before the first fault */
  warmupS: number;
  /** SOAK_SAMPLE_S: sampling interval */
  sampleS: number;
  /** SOAK_SETTLE_S: after a fault's recovery deadline, time until the stack counts as healthy again (log volume) */
  settleS: number;
  /** SOAK_STORM_CLIENTS: clients of one viewer storm */
  stormClients: number;
  /** SOAK_RECOVERY_TARGET_S: frames must flow again this soon after a fault clears (the issue: 5 s) */
  recoveryTargetS: number;
  /** SOAK_FAULTS: the faults in rotation (default: all nine, in the issue's order) */
  faults: FaultKind[];
  /** SOAK_OUTPUT: the report (default SOAK.md for a run of 30 minutes or more, else reports/soak/SOAK.md) */
  output: string;
  /** the plots' folder: soak/plots beside the root SOAK.md, else plots/ beside the report */
  plotsDir: string;
  /** SOAK_RESULTS: every sample and event as JSON, for SOAK_REPORT_ONLY=1 re-renders */
  resultsFile: string;
}

/** The length of the run that the issue's targets are stated for. */
export const FULL_MINUTES = 30;

export class SoakConfigError extends Error {}

function num(env: NodeJS.ProcessEnv, name: string, def: number, min: number, max: number, integer = false): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new SoakConfigError(`${name}=${raw}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return v;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): SoakConfig {
  const minutes = num(env, 'SOAK_MINUTES', FULL_MINUTES, 1, 7 * 24 * 60);
  let faults: FaultKind[] = [...FAULT_KINDS];
  if (env.SOAK_FAULTS?.trim()) {
    faults = env.SOAK_FAULTS.split(',').map((s) => s.trim()).filter(Boolean) as FaultKind[];
    const bad = faults.find((f) => !FAULT_KINDS.includes(f));
    if (bad !== undefined || faults.length === 0) {
      throw new SoakConfigError(`SOAK_FAULTS=${env.SOAK_FAULTS}: ${bad === undefined ? 'empty' : `unknown fault ${bad}`} (allowed: ${FAULT_KINDS.join(', ')})`);
    }
  }
  const output = path.resolve(ROOT, env.SOAK_OUTPUT || (minutes >= FULL_MINUTES ? 'SOAK.md' : 'reports/soak/SOAK.md'));
  const outDir = path.dirname(output);
  return {
    minutes,
    periodS: num(env, 'SOAK_FAULT_PERIOD_S', 60, 5, 3600),
    holdS: num(env, 'SOAK_FAULT_HOLD_S', 20, 1, 3600),
    warmupS: num(env, 'SOAK_WARMUP_S', 60, 0, 3600),
    sampleS: num(env, 'SOAK_SAMPLE_S', 10, 1, 600),
    settleS: num(env, 'SOAK_SETTLE_S', 15, 0, 600),
    stormClients: num(env, 'SOAK_STORM_CLIENTS', 300, 1, 5000, true),
    recoveryTargetS: num(env, 'SOAK_RECOVERY_TARGET_S', RECOVERY_TARGET_S, 1, 600),
    faults,
    output,
    plotsDir: outDir === ROOT ? path.join(ROOT, 'soak', 'plots') : path.join(outDir, 'plots'),
    resultsFile: path.resolve(ROOT, env.SOAK_RESULTS || path.join('soak', 'results', 'latest.json')),
  };
}
