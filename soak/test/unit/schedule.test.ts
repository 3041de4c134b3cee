import { readConfig } from '../../src/config';
import { buildSchedule, FAULT_KINDS, ISSUE_FAULTS } from '../../src/schedule';

const ctx = { cameras: ['front', 'garden', 'printer'], keepaliveWindowS: 6, frozenAfterS: 5 };
const full = { minutes: 30, periodS: 60, holdS: 20, warmupS: 60, faults: FAULT_KINDS };

describe('fault schedule', () => {
  test('30 minutes: one fault a minute after the warm-up, in rotation, each held 20 s', () => {
    const slots = buildSchedule(full, ctx);
    expect(slots).toHaveLength(29);
    expect(slots.map((s) => s.startS)).toEqual(Array.from({ length: 29 }, (_, i) => 60 + 60 * i));
    expect(slots.slice(0, 10).map((s) => s.kind)).toEqual([...FAULT_KINDS]);
    expect(slots[10].kind).toBe('camera-hang');
    expect(slots.filter((s) => s.kind !== 'relay-restart').every((s) => s.holdS === 20)).toBe(true);
    expect(slots.find((s) => s.kind === 'relay-restart')!.holdS).toBe(0);
    expect(slots[28].endS).toBe(1800);
  });

  test('recovery targets: 5 s, and for the silent cut 5 s plus the keepalive window', () => {
    const slots = buildSchedule(full, ctx);
    const cuts = slots.filter((s) => s.kind.startsWith('link-cut'));
    expect(cuts.map((s) => s.recoveryTargetS)).toEqual(cuts.map(() => 11));
    expect(slots.filter((s) => !cuts.includes(s)).every((s) => s.recoveryTargetS === 5)).toBe(true);
  });

  test('camera faults move to the next camera every round, so every camera meets every camera fault', () => {
    const slots = buildSchedule({ ...full, minutes: 90 }, ctx);
    const hang = slots.filter((s) => s.kind === 'camera-hang').map((s) => s.camera);
    expect(hang.slice(0, 3)).toEqual(['front', 'garden', 'printer']);
    expect(slots.filter((s) => s.kind === 'camera-frozen').map((s) => s.camera).slice(0, 3)).toEqual(['front', 'garden', 'printer']);
    expect(slots.filter((s) => s.kind === 'camera-refused')[0].camera).toBe('garden');
    expect(slots.filter((s) => !s.kind.startsWith('camera-')).every((s) => s.camera === undefined)).toBe(true);
  });

  test('a short run still holds every fault once, stretching slots that need longer than the period', () => {
    const short = { minutes: 2, periodS: 5, holdS: 5, warmupS: 5, faults: FAULT_KINDS };
    const slots = buildSchedule(short, ctx);
    expect(slots.map((s) => s.kind)).toEqual([...FAULT_KINDS]);
    const cut = slots.find((s) => s.kind === 'link-cut')!;
    expect(cut.holdS).toBe(9); // longer than the 6 s keepalive window: the frozen-session case
    expect(cut.endS - cut.startS).toBe(9 + 11 + 3);
    expect(slots.find((s) => s.kind === 'camera-frozen')!.holdS).toBe(7); // the relay must declare it frozen (5 s)
    for (let i = 1; i < slots.length; i++) expect(slots[i].startS).toBe(slots[i - 1].endS);
  });

  test("the smoke's rotation is the issue's nine faults, without the NAT-loss variant of the cut", () => {
    expect(ISSUE_FAULTS).toEqual(['camera-hang', 'camera-refused', 'camera-flaky', 'camera-frozen', 'tunnel-server-restart', 'link-cut', 'relay-restart', 'viewer-storm', 'archive-full']);
  });

  test('a looser recovery target (the smoke on a busy machine) moves every target and slot', () => {
    const slots = buildSchedule({ ...full, minutes: 2, recoveryTargetS: 15 }, ctx);
    expect(slots.find((s) => s.kind === 'camera-hang')!.recoveryTargetS).toBe(15);
    expect(slots.find((s) => s.kind === 'link-cut')!.recoveryTargetS).toBe(21);
  });

  test('SOAK_FAULTS picks the rotation', () => {
    const slots = buildSchedule({ ...full, minutes: 5, faults: ['link-cut', 'viewer-storm'] }, ctx);
    expect(slots.map((s) => s.kind)).toEqual(['link-cut', 'viewer-storm', 'link-cut', 'viewer-storm']);
  });
});

describe('settings', () => {
  test('defaults: 30 minutes, SOAK.md at the root and its plots in soak/plots', () => {
    const c = readConfig({});
    expect(c).toMatchObject({ minutes: 30, periodS: 60, holdS: 20, warmupS: 60, sampleS: 10, stormClients: 300 });
    expect(c.output).toMatch(/\/SOAK\.md$/);
    expect(c.output).not.toMatch(/reports/);
    expect(c.plotsDir).toMatch(/\/soak\/plots$/);
  });

  test('a short run never writes the root SOAK.md', () => {
    const c = readConfig({ SOAK_MINUTES: '2' });
    expect(c.output).toMatch(/\/reports\/soak\/SOAK\.md$/);
    expect(c.plotsDir).toMatch(/\/reports\/soak\/plots$/);
  });

  test('a bad value names the variable, the value and what is allowed', () => {
    expect(() => readConfig({ SOAK_MINUTES: 'soon' })).toThrow('SOAK_MINUTES=soon: expected a number from 1 to 10080');
    expect(() => readConfig({ SOAK_STORM_CLIENTS: '2.5' })).toThrow(/SOAK_STORM_CLIENTS=2.5: expected an integer/);
    expect(() => readConfig({ SOAK_FAULTS: 'camera-hang,meteor' })).toThrow(/unknown fault meteor \(allowed: camera-hang, /);
  });
});
