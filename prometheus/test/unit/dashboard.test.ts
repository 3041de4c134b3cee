/**
 * Static checks of the provisioned Grafana dashboard (scripts/check-dashboard.js) against the metric
 * names the daemons REALLY export (their prom-client registries, built from source here), and tests
 * that the checker catches each defect it is meant to catch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RelayMetrics } from '../../../relay/src/metrics';
import { AgentMetrics } from '../../../tunnel-agent/src/metrics';
import {
  DASHBOARD_UID,
  DEFAULT_DASHBOARD,
  Dashboard,
  checkDashboard,
  dashboardVariableValues,
  flattenPanels,
  metricNamesInExpr,
  parseDuration,
  provisionedDatasourceUids,
  recordingRuleNames,
  rowGroups,
  seriesNamesFromRegistries,
  substitute,
  unfilteredPerCameraSelectors,
  variablesIn,
} from '../../../scripts/check-dashboard';

const ROOT = path.resolve(__dirname, '../../..');
const DS_UID = 'camrelay-prometheus';

function daemonNames(): Set<string> {
  const relay = new RelayMetrics({ version: 't', mode: 'pull', frameAgeSeconds: () => 0, clients: () => 0 });
  const agent = new AgentMetrics({ forwards: ['1234:cam:1234'], version: 't', sessionUptime: () => 0 });
  return seriesNamesFromRegistries([relay.registry, agent.registry]);
}

function load(): Dashboard {
  return JSON.parse(fs.readFileSync(DEFAULT_DASHBOARD, 'utf8'));
}

function check(d: Dashboard): string[] {
  return checkDashboard(d, { datasourceUid: DS_UID, metricNames: daemonNames(), recordingRules: recordingRuleNames(), vars: dashboardVariableValues(d) }).errors;
}

describe('grafana provisioning', () => {
  test('exactly one datasource, provisioned with the fixed uid the dashboard uses, pointing at the compose service', () => {
    expect(provisionedDatasourceUids()).toEqual([DS_UID]);
    const text = fs.readFileSync(path.join(ROOT, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8');
    expect(text).toMatch(/^\s+url: http:\/\/prometheus:9090$/m);
    expect(text).toMatch(/^\s+type: prometheus$/m);
  });

  test('the dashboard provider loads the folder docker-compose.yml mounts the dashboards into', () => {
    const provider = fs.readFileSync(path.join(ROOT, 'grafana/provisioning/dashboards/camrelay.yml'), 'utf8');
    const dir = /^\s+path: (\S+)$/m.exec(provider)?.[1];
    expect(dir).toBe('/var/lib/grafana/dashboards');
    const compose = path.join(ROOT, 'docker-compose.yml');
    if (fs.existsSync(compose)) expect(fs.readFileSync(compose, 'utf8')).toContain(`./grafana/dashboards:${dir}`);
  });
});

describe('dashboard grafana/dashboards/camrelay.json', () => {
  test('passes every static check: uid, ids, gridPos, datasource by uid, exprs, metric names', () => {
    expect(check(load())).toEqual([]);
  });

  test('has a fixed uid and the panels the issue asks for', () => {
    const d = load();
    expect(d.uid).toBe(DASHBOARD_UID);
    const titles = flattenPanels(d.panels).map((p: { title: string }) => p.title);
    for (const t of [
      'Frame rate', 'Fetch latency percentiles', 'Frame age', 'Frame size', 'Clients by protocol', 'Bytes out by camera and protocol',
      'Frames dropped and stale frames discarded', 'Client rejections by reason', 'Cameras up', 'Frame rate per camera', 'Tunnel',
      'Reconnects and connect attempts', 'Forward binding state', 'Fetch errors by reason',
    ]) expect(titles).toContain(t);
  });

  test('a $camera variable: multi-select with All, its values the camera label of relay_camera_up', () => {
    const v = load().templating.list.find((x: { name: string }) => x.name === 'camera');
    expect(v).toMatchObject({ type: 'query', multi: true, includeAll: true, allValue: '.*', datasource: { type: 'prometheus', uid: DS_UID } });
    expect(v.query.query).toMatch(/^label_values\(relay_camera_up\{[^}]*\},\s*camera\)$/);
    expect(v.definition).toBe(v.query.query);
  });

  test('the top row is the overview: one stat per camera for up/down, frozen and fps', () => {
    const groups = rowGroups(load().panels);
    const top = groups.find((g) => g.row !== null);
    expect(top?.row.gridPos.y).toBe(0);
    expect(top?.row.repeat).toBeUndefined();
    const stats = (top?.panels ?? []).filter((p: { type: string }) => p.type === 'stat');
    const perCamera = (metric: string) => stats.find((p: Dashboard) => p.targets.some((t: { expr: string; legendFormat: string }) =>
      t.expr.includes(metric) && t.legendFormat.includes('{{camera}}') && !/\b(sum|max|min|avg)\((?!.*by \(camera\))/.test(t.expr)));
    expect(perCamera('relay_camera_up')).toBeDefined(); // up/down per camera
    expect(perCamera('relay_camera_frozen')).toBeDefined(); // frozen per camera
    expect(perCamera('relay_frames_total')).toBeDefined(); // fps per camera
    for (const p of [perCamera('relay_camera_up'), perCamera('relay_camera_frozen'), perCamera('relay_frames_total')]) expect(p.options.textMode).toBe('value_and_name');
    // frozen reads as words, not as 0/1
    const frozen = perCamera('relay_camera_frozen').fieldConfig.defaults.mappings[0].options;
    expect([frozen['0'].text, frozen['1'].text]).toEqual(['OK', 'FROZEN']);
  });

  test('a row repeated by $camera holds the per-camera panels, every query of them filtered to that camera', () => {
    const groups = rowGroups(load().panels);
    const repeated = groups.filter((g) => g.row?.repeat === 'camera');
    expect(repeated).toHaveLength(1);
    const titles = repeated[0].panels.map((p: { title: string }) => p.title);
    for (const t of ['Frame rate', 'Fetch latency percentiles', 'Frame age', 'Frame size', 'Fetch errors by reason']) expect(titles).toContain(t);
    expect(variablesIn(repeated[0].row.title).has('camera')).toBe(true);
    for (const p of repeated[0].panels) {
      for (const t of p.targets) if (!t.expr.startsWith('camrelay:')) expect(t.expr).toContain('camera=~"$camera"');
    }
  });

  test('fetch latency shows p50, p90 and p99 from the histogram', () => {
    const p = flattenPanels(load().panels).find((x: { title: string }) => x.title === 'Fetch latency percentiles');
    const exprs = p.targets.map((t: { expr: string }) => t.expr).join('\n');
    for (const q of ['0.5', '0.9', '0.99']) expect(exprs).toContain(`histogram_quantile(${q}, sum by (le) (rate(relay_fetch_duration_seconds_bucket`);
  });

  test('every metric the daemons define that an alert relies on is on the dashboard', () => {
    const text = fs.readFileSync(DEFAULT_DASHBOARD, 'utf8');
    for (const m of ['relay_camera_up', 'relay_camera_frozen', 'relay_frame_age_seconds', 'relay_frames_total', 'relay_fetch_errors_total', 'relay_clients_rejected_total',
      'tunnel_agent_up', 'tunnel_agent_forward_bound', 'tunnel_agent_reconnects_total']) expect(text).toContain(m);
  });
});

describe('check-dashboard catches', () => {
  const mutate = (f: (d: Dashboard) => void): string[] => {
    const d = load();
    f(d);
    return check(d);
  };
  const firstQueryPanel = (d: Dashboard) => flattenPanels(d.panels).find((p: { type: string }) => p.type !== 'row');

  test('a datasource referenced by name on a panel or a target', () => {
    expect(mutate((d) => (firstQueryPanel(d).datasource = 'Prometheus')).join()).toMatch(/datasource referenced by name "Prometheus"/);
    expect(mutate((d) => (firstQueryPanel(d).targets[0].datasource = { type: 'prometheus', uid: 'other' })).join()).toMatch(/uid "other" is not the provisioned/);
    expect(mutate((d) => delete firstQueryPanel(d).targets[0].datasource).join()).toMatch(/no datasource/);
  });

  test('a ${DS_...} import input or a datasource variable', () => {
    expect(mutate((d) => (firstQueryPanel(d).datasource = { type: 'prometheus', uid: '${DS_PROMETHEUS}' })).join()).toMatch(/DS_/);
    expect(mutate((d) => d.templating.list.push({ name: 'ds', type: 'datasource', query: 'prometheus' })).join()).toMatch(/datasource variable/);
  });

  test('a changed dashboard uid', () => {
    expect(mutate((d) => (d.uid = 'abc123')).join()).toMatch(/uid is "abc123", must be fixed/);
  });

  test('duplicate panel ids and bad or overlapping gridPos', () => {
    expect(mutate((d) => (d.panels[2].id = d.panels[1].id)).join()).toMatch(/is also used by/);
    expect(mutate((d) => (d.panels[1].gridPos.x = 23)).join()).toMatch(/exceeds 24 columns/);
    expect(mutate((d) => (d.panels[2].gridPos = { ...d.panels[1].gridPos })).join()).toMatch(/overlaps/);
    expect(mutate((d) => delete d.panels[1].gridPos).join()).toMatch(/gridPos must have/);
  });

  test('a target without expr, a panel without targets', () => {
    expect(mutate((d) => (firstQueryPanel(d).targets[0].expr = ' ')).join()).toMatch(/no expr/);
    expect(mutate((d) => (firstQueryPanel(d).targets = [])).join()).toMatch(/no targets/);
  });

  test('a per-camera metric not filtered by $camera', () => {
    const errors = mutate((d) => (firstQueryPanel(d).targets[0].expr = 'relay_camera_up{job="relay"}'));
    expect(errors.join()).toMatch(/per-camera metric relay_camera_up not filtered by camera=~"\$camera"/);
    const bare = mutate((d) => (firstQueryPanel(d).targets[0].expr = 'sum(rate(relay_frames_total[5m]))'));
    expect(bare.join()).toMatch(/per-camera metric relay_frames_total not filtered/);
  });

  test('a row repeated by a variable that does not exist, or is single-valued, or that its title and queries ignore', () => {
    const camRow = (d: Dashboard) => d.panels.find((p: { repeat?: string }) => p.repeat === 'camera');
    expect(mutate((d) => (camRow(d).repeat = 'cam')).join()).toMatch(/repeats by \$cam, which is not a dashboard variable/);
    expect(mutate((d) => {
      const v = d.templating.list.find((x: { name: string }) => x.name === 'camera');
      v.multi = false;
      v.includeAll = false;
    }).join()).toMatch(/neither multi-value nor has "All"/);
    expect(mutate((d) => (camRow(d).title = 'Camera')).join()).toMatch(/must name it in its title/);
    expect(mutate((d) => {
      const i = d.panels.indexOf(camRow(d));
      d.panels[i + 1].targets[0].expr = 'sum(relay_clients{job="relay"})';
    }).join()).toMatch(/in a row repeated by \$camera but does not use \$camera/);
  });

  test('a metric name no daemon exports (a typo, or a rename in relay/src/metrics.ts)', () => {
    const errors = mutate((d) => (firstQueryPanel(d).targets[0].expr = 'rate(relay_frame_total{job="relay"}[$__rate_interval])'));
    expect(errors.join()).toMatch(/metric "relay_frame_total" is not exported/);
  });

  test('the real metric set is what the names are checked against', () => {
    const names = daemonNames();
    expect(names.has('relay_fetch_duration_seconds_bucket')).toBe(true);
    expect(names.has('tunnel_agent_forward_bound')).toBe(true);
    expect(names.has('relay_frame_total')).toBe(false);
  });
});

describe('check-dashboard helpers', () => {
  test('metricNamesInExpr finds selected metrics and skips functions, keywords, labels and numbers', () => {
    expect(metricNamesInExpr('histogram_quantile(0.9, sum by (le, protocol) (rate(a_bucket{job="x", le!="+Inf"}[5m]))) > 1e3')).toEqual(['a_bucket']);
    expect(metricNamesInExpr('min(b{x="y"}) or on () min(up{job="z"}) unless ignoring(foo) c offset 5m')).toEqual(['b', 'up', 'c']);
    expect(metricNamesInExpr('sum without (instance) (x:y:z) / scalar(w) and bool 1')).toEqual(['x:y:z', 'w']);
  });

  test('substitute replaces $var, ${var}, ${var:regex} and [[var]], longest name first', () => {
    const vars = { __interval: '15s', __interval_ms: '15000', instance: '.*' };
    expect(substitute('a{i=~"$instance"}[$__interval] $__interval_ms ${instance:regex} [[instance]] $instances', vars)).toBe(
      'a{i=~".*"}[15s] 15000 .* .* $instances',
    );
  });

  test('unfilteredPerCameraSelectors names the per-camera selectors without camera=~"$camera"', () => {
    expect(unfilteredPerCameraSelectors('sum by (camera) (rate(relay_frames_total{job="relay", camera=~"$camera"}[1m]))')).toEqual([]);
    expect(unfilteredPerCameraSelectors('relay_camera_up{camera=~"${camera}"} / relay_frame_age_seconds{job="relay"}')).toEqual(['relay_frame_age_seconds']);
    expect(unfilteredPerCameraSelectors('instance:relay_frames:rate1m < on (job, instance, camera) relay_target_fps{camera="front"}')).toEqual(['instance:relay_frames:rate1m', 'relay_target_fps']);
    // relay-wide families and thresholds need no camera filter
    expect(unfilteredPerCameraSelectors('sum(relay_clients{job="relay"}) + camrelay:frame_age_max:seconds + tunnel_agent_up')).toEqual([]);
    expect(unfilteredPerCameraSelectors('histogram_quantile(0.9, sum by (le) (rate(relay_fetch_duration_seconds_bucket{camera=~"$cameras"}[1m])))')).toEqual(['relay_fetch_duration_seconds_bucket']);
  });

  test('rowGroups: an open row owns the panels after it, a collapsed row those inside it', () => {
    const groups = rowGroups([
      { id: 1, type: 'stat' },
      { id: 2, type: 'row', panels: [] },
      { id: 3, type: 'stat' },
      { id: 4, type: 'stat' },
      { id: 5, type: 'row', collapsed: true, panels: [{ id: 6, type: 'stat' }] },
    ]);
    expect(groups.map((g) => [g.row?.id ?? null, g.panels.map((p: { id: number }) => p.id)])).toEqual([[null, [1]], [2, [3, 4]], [5, [6]]]);
  });

  test('parseDuration', () => {
    expect(parseDuration('15s')).toBe(15);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('10')).toBe(10);
    expect(() => parseDuration('ten minutes')).toThrow(/not a duration/);
  });

  test('variables resolve to the "All" value unless one concrete value is selected', () => {
    expect(dashboardVariableValues({ templating: { list: [{ name: 'instance', allValue: '.*', current: { value: ['$__all'] } }] } })).toEqual({ instance: '.*' });
    expect(dashboardVariableValues({ templating: { list: [{ name: 'instance', current: { value: 'relay:9100' } }] } })).toEqual({ instance: 'relay:9100' });
  });
});
