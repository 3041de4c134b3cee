/**
 * Structural checks of prometheus/ that promtool does not make: every alert carries what the on-call
 * person needs and has BOTH a firing and a not-firing promtool unit test; scrape targets match the
 * compose services. (promtool itself runs in the promtool tier: scripts/promtool-test.sh.)
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const DIR = path.resolve(__dirname, '../..');
const rulesText = fs.readFileSync(path.join(DIR, 'rules/camrelay.yml'), 'utf8');
const testsText = fs
  .readdirSync(path.join(DIR, 'rule-tests'))
  .filter((f) => f.endsWith('.yml'))
  .map((f) => fs.readFileSync(path.join(DIR, 'rule-tests', f), 'utf8'))
  .join('\n');

/** Alert name -> its YAML block (from "- alert:" to the next rule). */
function alertBlocks(): Map<string, string> {
  const out = new Map<string, string>();
  const parts = rulesText.split(/\n(?=\s+- (?:alert|record):)/);
  for (const p of parts) {
    const m = /^\s+- alert: (\w+)/.exec(p);
    if (m) out.set(m[1], p);
  }
  return out;
}

const ALERTS = [...alertBlocks().keys()];
interface AlertRule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}
const parsedRules = (YAML.parse(rulesText) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules);
function parsedAlert(name: string): AlertRule {
  const r = parsedRules.find((x) => x.alert === name);
  if (!r) throw new Error(`no alert ${name}`);
  return r;
}
/** Alerts about one camera: they fire per camera, with the `camera` label. */
const PER_CAMERA = ['CameraDown', 'CameraFrozen', 'FramesStale', 'FrameRateLow', 'FetchErrorsRising', 'ArchiveFailing'];
const docsText = fs.readFileSync(path.resolve(DIR, '..', 'docs', 'monitoring.md'), 'utf8');

/** The promtool test cases (from "- name:" to the next) whose expectations name `alertname: <name>`. */
function testCasesOf(name: string): string[] {
  return testsText.split(/\n(?= {2}- name: )/).filter((c) => new RegExp(`alertname: ${name}\\n`).test(c));
}

describe('alert rules', () => {
  test('the alerts the issue asks for all exist', () => {
    for (const a of ['CameraDown', 'CameraFrozen', 'TunnelDown', 'ForwardNotBound', 'FrameRateLow', 'FramesStale', 'FetchErrorsRising', 'ClientRejections']) {
      expect(ALERTS).toContain(a);
    }
  });

  test.each(ALERTS)('%s has for:, a severity, summary, description and runbook', (name) => {
    const b = alertBlocks().get(name) ?? '';
    expect(b).toMatch(/\n\s+for: \d+[smh]\n/);
    expect(b).toMatch(/\n\s+severity: (critical|warning|info)\n/);
    for (const a of ['summary', 'description', 'runbook']) expect(b).toMatch(new RegExp(`\\n\\s+${a}: `));
  });

  test.each(ALERTS)('%s has a promtool test where it fires and one where it stays quiet', (name) => {
    const cases = [...testsText.matchAll(new RegExp(`alertname: ${name}\\n\\s+exp_alerts:( \\[\\])?\\n`, 'g'))];
    expect(cases.some((c) => c[1] === undefined)).toBe(true); // exp_alerts: <list> = fires
    expect(cases.some((c) => c[1] === ' []')).toBe(true); // exp_alerts: [] = quiet
  });

  test.each(ALERTS)('%s: its runbook annotation ends with its section of docs/monitoring.md, which exists', (name) => {
    const rule = parsedAlert(name);
    expect(rule.annotations.runbook.trim().endsWith(`docs/monitoring.md#${name.toLowerCase()}`)).toBe(true);
    expect(docsText).toMatch(new RegExp(`^### ${name}$`, 'm')); // GitHub's anchor of "### CameraDown" is #cameradown
    expect(rulesText).not.toMatch(/README, section/);
  });

  test('every per-camera alert is one, and the recording rules that aggregate keep `camera`', () => {
    for (const a of PER_CAMERA) expect(ALERTS).toContain(a);
    const records = (YAML.parse(rulesText) as { groups: { rules: { record?: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules).filter((r) => r.record?.startsWith('instance:'));
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) for (const m of r.expr.matchAll(/\b(?:on|by) \(([^)]*)\)/g)) expect(m[1].split(/,\s*/)).toContain('camera');
  });

  test.each(PER_CAMERA)('%s fires per camera: joins and sums keep `camera`, annotations name it', (name) => {
    const rule = parsedAlert(name);
    const lists = [...rule.expr.matchAll(/\b(?:on|by) \(([^)]*)\)/g)].map((m) => m[1].split(/,\s*/));
    for (const l of lists) expect(l).toContain('camera');
    expect(rule.annotations.summary).toContain('$labels.camera');
    expect(rule.annotations.description).toContain('$labels.camera');
  });

  test.each(PER_CAMERA)('%s has a promtool test with two cameras where it fires for the failing one only', (name) => {
    const twoCameras = testCasesOf(name).filter((c) => {
      const cams = new Set([...c.matchAll(/series: '[^']*camera="([^"]+)"/g)].map((m) => m[1]));
      return cams.size >= 2 && /exp_labels: \{[^}]*camera: /.test(c);
    });
    expect(twoCameras.length).toBeGreaterThan(0);
    for (const c of twoCameras) {
      const firing = new Set([...c.matchAll(/exp_labels: \{[^}]*camera: '?([^,' }]+)/g)].map((m) => m[1]));
      const all = new Set([...c.matchAll(/series: '[^']*camera="([^"]+)"/g)].map((m) => m[1]));
      expect(firing.size).toBeLessThan(all.size); // some camera in the input does NOT fire
    }
  });

  test('the FrameRateLow and FramesStale thresholds are set in exactly one place each', () => {
    expect(rulesText.match(/record: camrelay:frame_rate_min:fps\n\s+expr: vector\([\d.]+\)/g)).toHaveLength(1);
    expect(rulesText.match(/record: camrelay:frame_age_max:seconds\n\s+expr: vector\([\d.]+\)/g)).toHaveLength(1);
    // the alerts read the threshold series, they do not repeat the number
    expect(alertBlocks().get('FramesStale')).toContain('scalar(camrelay:frame_age_max:seconds)');
    expect(rulesText).toContain('scalar(camrelay:frame_rate_min:fps)');
  });
});

describe('prometheus.yml', () => {
  const cfg = fs.readFileSync(path.join(DIR, 'prometheus.yml'), 'utf8');

  test('scrapes the relay, the tunnel-agent THROUGH the tunnel-server, and itself', () => {
    expect(cfg).toMatch(/job_name: relay\n[\s\S]*?targets: \['relay:9100'\]/);
    expect(cfg).toMatch(/job_name: tunnel-agent\n[\s\S]*?targets: \['tunnel-server:9101'\]/);
    expect(cfg).toMatch(/job_name: prometheus\n[\s\S]*?targets: \['localhost:9090'\]/);
    expect(cfg).toMatch(/rule_files:\n\s+- rules\/\*\.yml/);
  });

  test('the targets are services of docker-compose.yml, and the agent forwards its metrics port to tunnel-server:9101', () => {
    const composeFile = path.resolve(DIR, '..', 'docker-compose.yml');
    if (!fs.existsSync(composeFile)) return; // the stack is optional for this check
    const compose = fs.readFileSync(composeFile, 'utf8');
    for (const svc of ['relay', 'tunnel-server', 'prometheus']) expect(compose).toMatch(new RegExp(`\\n  ${svc}:\\n`));
    expect(compose).toMatch(/TUNNEL_FORWARDS: [^\n]*0\.0\.0\.0:9101:127\.0\.0\.1:9101/);
    expect(compose).toContain('./prometheus:/etc/prometheus');
  });
});
