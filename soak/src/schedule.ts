/**
 * The fault schedule: which fault starts when, on what, for how long, and how soon frames must flow
 * again after it clears. Pure: the run (faults.ts) follows it, the analysis judges against it.
 */

/**
 * The faults, in the order of the issue, plus `link-cut-nat` (the silent cut as a home router reboot
 * makes it: the old connection stays dead when the link comes back); the run goes through them in
 * rotation.
 */
export const FAULT_KINDS = [
  'camera-hang',
  'camera-refused',
  'camera-flaky',
  'camera-frozen',
  'tunnel-server-restart',
  'link-cut',
  'link-cut-nat',
  'relay-restart',
  'viewer-storm',
  'archive-full',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The nine faults of the issue (#11): what the smoke in `make test-compose` runs. */
export const ISSUE_FAULTS: readonly FaultKind[] = FAULT_KINDS.filter((k) => k !== 'link-cut-nat');

export const CAMERA_FAULTS: readonly FaultKind[] = ['camera-hang', 'camera-refused', 'camera-flaky', 'camera-frozen'];

/** What each fault does, for the report (docs/soak.md has the long version). */
export const FAULT_TEXT: Record<FaultKind, { short: string; what: string }> = {
  'camera-hang': { short: 'hang', what: 'the camera accepts and never sends (fake camera mode hang-accept)' },
  'camera-refused': { short: 'refused', what: 'the camera is off: its port refuses (a push camera pushes nothing)' },
  'camera-flaky': { short: 'flaky', what: 'the camera fails a random share of its connections in every way it can (mode flaky)' },
  'camera-frozen': { short: 'frozen', what: 'the camera sends the very same JPEG every time (a locked-up ESP32-CAM)' },
  'tunnel-server-restart': { short: 'sshd down', what: 'the tunnel-server container is stopped for the hold time, then started' },
  'link-cut': { short: 'cut', what: 'every packet between tunnel-agent and tunnel-server dropped (iptables DROP in the agent\'s network namespace): no FIN, no RST' },
  'link-cut-nat': { short: 'cut, NAT lost', what: 'the silent cut, then the link back for new connections only: the old connection stays dropped, as after a home router reboot' },
  'relay-restart': { short: 'relay restart', what: 'docker restart of the relay (SIGTERM, then a fresh process)' },
  'viewer-storm': { short: 'storm', what: 'hundreds of raw, snapshot and MJPEG clients connect and leave; a quarter never read' },
  'archive-full': { short: 'disk full', what: "the relay's archive volume filled to the last byte, then freed" },
};

/** What the schedule needs to know about the running stack. */
export interface ScheduleContext {
  cameras: string[];
  /** tunnel-agent keepalive interval x (count + 1): how long a silent link takes to be declared dead */
  keepaliveWindowS: number;
  /** relay CAMERA_FROZEN_AFTER_MS in seconds */
  frozenAfterS: number;
}

export interface ScheduleOptions {
  minutes: number;
  periodS: number;
  holdS: number;
  warmupS: number;
  faults: readonly FaultKind[];
  /** frames must flow again this soon after a fault clears [RECOVERY_TARGET_S] */
  recoveryTargetS?: number;
}

export interface Slot {
  index: number;
  kind: FaultKind;
  /** the camera of a camera fault */
  camera?: string;
  /** seconds after the start of the run */
  startS: number;
  /** how long the fault is held (a restart takes what it takes: 0 here) */
  holdS: number;
  /** frames of every camera must flow again within this many seconds after the fault clears */
  recoveryTargetS: number;
  /** the next slot starts here */
  endS: number;
}

/** Frames must flow again this soon after a fault clears (the issue's target; SOAK_RECOVERY_TARGET_S). */
export const RECOVERY_TARGET_S = 5;
/** Time a slot leaves after the recovery deadline, to see the recovery hold. */
const OBSERVE_S = 3;
/** A camera fault must outlast the relay's 3 s idle timeout and the push camera's 5 s up window to be seen. */
const CAMERA_FAULT_MIN_HOLD_S = 7;

export function minHoldS(kind: FaultKind, ctx: ScheduleContext): number {
  switch (kind) {
    case 'camera-frozen':
      return ctx.frozenAfterS + 2; // the relay must have declared it frozen
    case 'link-cut':
    case 'link-cut-nat':
      return ctx.keepaliveWindowS + 3; // the frozen-session case: cut longer than keepalive detection
    case 'relay-restart':
      return 0;
    case 'viewer-storm':
      return 5;
    case 'archive-full':
      return 6; // a snapshot every 5 s must hit the full disk at least once
    case 'tunnel-server-restart':
      return 3;
    default:
      return CAMERA_FAULT_MIN_HOLD_S;
  }
}

export function recoveryTargetS(kind: FaultKind, ctx: ScheduleContext, baseS = RECOVERY_TARGET_S): number {
  // A silent cut is only noticed by keepalive: the target adds its detection time.
  return kind === 'link-cut' || kind === 'link-cut-nat' ? baseS + ctx.keepaliveWindowS : baseS;
}

/**
 * One fault a period, in rotation, after the warm-up, for as long as the run lasts; at least one of
 * each fault. The n-th round of a camera fault hits camera (fault index + n) mod cameras, so over
 * `cameras` rounds every camera meets every camera fault. A slot is longer than the period when its
 * hold plus recovery deadline need more.
 */
export function buildSchedule(o: ScheduleOptions, ctx: ScheduleContext): Slot[] {
  if (o.faults.length === 0) throw new Error('no faults to schedule');
  const runS = o.minutes * 60;
  const slots: Slot[] = [];
  let t = o.warmupS;
  for (let i = 0; ; i++) {
    const kind = o.faults[i % o.faults.length];
    const holdS = Math.max(kind === 'relay-restart' ? 0 : o.holdS, minHoldS(kind, ctx));
    const target = recoveryTargetS(kind, ctx, o.recoveryTargetS);
    const lengthS = Math.max(o.periodS, holdS + target + OBSERVE_S);
    if (i >= o.faults.length && t + lengthS > runS) break;
    const round = Math.floor(i / o.faults.length);
    const camera = CAMERA_FAULTS.includes(kind) && ctx.cameras.length > 0
      ? ctx.cameras[(o.faults.indexOf(kind) + round) % ctx.cameras.length]
      : undefined;
    slots.push({ index: i, kind, camera, startS: t, holdS, recoveryTargetS: target, endS: t + lengthS });
    t += lengthS;
  }
  return slots;
}
