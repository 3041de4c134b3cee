#!/usr/bin/env node
/**
 * Checks the provisioned Grafana dashboard without Grafana.
 *
 *   node scripts/check-dashboard.js                         static checks only
 *   node scripts/check-dashboard.js --prometheus URL [...]  static checks, then runs EVERY panel query and
 *                                                           template-variable query against a live Prometheus
 *
 * Static (always): fixed dashboard uid; unique panel ids; sane, non-overlapping gridPos; every panel, target
 * and variable references the provisioned datasource by uid (grafana/provisioning/datasources/*.yml), never
 * by name or ${DS_...} input; every target has an expr; every metric a query names is exported by the daemons
 * (their real prom-client registries, from relay/dist and tunnel-agent/dist: run `npm run build` first), is a
 * recording rule in prometheus/rules/*.yml, or is Prometheus's own (up, scrape_*, ALERTS).
 *
 * Live: each query runs through /api/v1/query_range over the last --range (like a panel over its time
 * range), with $__rate_interval, $__interval, $__range and the dashboard variables replaced. A query that
 * errors, or returns no series or only NaN, fails; --wait SECONDS retries failing ones until then.
 *
 * Static, with template variables and repeated rows: a row or panel `repeat` names a multi-value (or
 * "All") variable; a repeated row names it in its title and every target in it uses it (threshold
 * lines excepted); with a `camera` variable, every selector of a per-camera metric (PER_CAMERA_METRICS)
 * carries camera=~"$camera". Variables take their "All" value (.*) unless --var NAME=VALUE sets one.
 *
 * Options: --dashboard FILE (grafana/dashboards/camrelay.json)  --range 10m  --step 15s  --var NAME=VALUE
 *          --rate-interval 1m  --wait 0  --timeout 10 (per query, seconds)
 * Exit: 0 all good, 1 a check failed, 2 bad usage.
 * Also a module: see scripts/check-dashboard.d.ts.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');

const ROOT = path.resolve(__dirname, '..');
const DASHBOARD_UID = 'camrelay';
const DEFAULT_DASHBOARD = path.join(ROOT, 'grafana', 'dashboards', 'camrelay.json');
/** Series Prometheus makes itself (per scrape, per alert). */
const PROMETHEUS_OWN = /^(up|scrape_[a-z_]+|ALERTS|ALERTS_FOR_STATE|prometheus_[a-z_]+)$/;
const GRID_COLUMNS = 24;
/**
 * The per-camera metric families (label `camera`, docs/monitoring.md) and the recording rules built on
 * them: a dashboard with a `camera` variable must filter every selector of these by camera=~"$camera".
 */
const PER_CAMERA_METRICS = new RegExp(
  '^(?:relay_(?:camera_(?:up|frozen)|frames_total|fetch_errors_total|fetch_duration_seconds(?:_bucket|_sum|_count)?|frame_bytes(?:_bucket|_sum|_count)?' +
    '|frame_age_seconds|frames_served_total|bytes_sent_total|frames_dropped_total|delivery_latency_seconds(?:_bucket|_sum|_count)?' +
    '|stale_frames_discarded_total|target_fps|source_paused|archive_[a-z_]+)' +
    '|instance:relay_[a-z_]+:[a-z0-9_]+' +
    '|tunnel_agent_(?:forwarded_connections_total|bytes_total|active_connections))$',
);
const CAMERA_VARIABLE = 'camera';

// PromQL words that are not metric names.
const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2',
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
  'inf', 'nan', 'start', 'end',
]);

// ---- small helpers --------------------------------------------------------------------------------

/** "15s", "1m", "1h30m", "500ms" -> seconds. */
function parseDuration(s) {
  const str = String(s).trim();
  if (/^\d+(\.\d+)?$/.test(str)) return Number(str);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(str)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0].length;
  }
  if (consumed !== str.length || consumed === 0) throw new Error(`not a duration: "${s}" (examples: 15s, 1m, 10m, 1h)`);
  return total;
}

/** Seconds -> a Prometheus duration string ("90s" -> "1m30s" is not needed: Prometheus takes "90s"). */
function promDuration(seconds) {
  if (seconds >= 1 && Number.isInteger(seconds)) return `${seconds}s`;
  return `${Math.max(1, Math.round(seconds * 1000))}ms`;
}

/** Every panel, including those nested in collapsed rows. */
function flattenPanels(panels) {
  const out = [];
  for (const p of panels || []) {
    out.push(p);
    if (p && p.type === 'row' && Array.isArray(p.panels)) out.push(...flattenPanels(p.panels));
  }
  return out;
}

/**
 * The rows and their panels, the way Grafana groups them: an open row owns the top-level panels after
 * it up to the next row, a collapsed row the panels nested in it. Returns [{ row, panels }] (row null
 * for the panels above the first row).
 */
function rowGroups(panels) {
  const groups = [{ row: null, panels: [] }];
  for (const p of panels || []) {
    if (p && p.type === 'row') {
      groups.push({ row: p, panels: Array.isArray(p.panels) ? p.panels.slice() : [] });
    } else {
      groups[groups.length - 1].panels.push(p);
    }
  }
  return groups;
}

/** Variable names an expression or title references ($v, ${v}, ${v:fmt}, [[v]]). */
function variablesIn(text) {
  const out = new Set();
  for (const m of String(text).matchAll(/\$\{([A-Za-z_]\w*)(?::[a-z]+)?\}|\[\[([A-Za-z_]\w*)\]\]|\$([A-Za-z_]\w*)/g)) out.add(m[1] || m[2] || m[3]);
  return out;
}

/**
 * Selectors of per-camera metrics in `expr` that are not filtered by camera=~"$camera": returns the
 * metric names (a bare `name` without matchers counts as unfiltered).
 */
function unfilteredPerCameraSelectors(expr, variable = CAMERA_VARIABLE) {
  let s = String(expr);
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const bad = [];
  const re = /([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?/g; // matchers may quote "${camera}"
  const want = new RegExp(`(^|[{,\\s])camera\\s*=~\\s*"\\$(?:\\{${variable}(?::[a-z]+)?\\}|${variable}(?![A-Za-z0-9_]))"`);
  let m;
  while ((m = re.exec(s)) !== null) {
    if (!PER_CAMERA_METRICS.test(m[1])) continue;
    const before = s[m.index - 1];
    if (before !== undefined && /[A-Za-z0-9_:"$]/.test(before)) continue;
    if (!m[2] || !want.test(m[2])) bad.push(m[1]);
  }
  return bad;
}

/** The uids of the provisioned datasources (a minimal reader for our own provisioning files). */
function provisionedDatasourceUids(dir = path.join(ROOT, 'grafana', 'provisioning', 'datasources')) {
  const uids = [];
  for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const m of text.matchAll(/^\s*uid:\s*['"]?([A-Za-z0-9._-]+)['"]?\s*(#.*)?$/gm)) uids.push(m[1]);
  }
  return uids;
}

/** Names of the recording rules in prometheus/rules/*.yml. */
function recordingRuleNames(dir = path.join(ROOT, 'prometheus', 'rules')) {
  const names = new Set();
  for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const m of text.matchAll(/^\s*-?\s*record:\s*['"]?([A-Za-z_:][A-Za-z0-9_:]*)['"]?\s*$/gm)) names.add(m[1]);
  }
  return names;
}

/**
 * Series names that prom-client registries expose: histograms add _bucket/_sum/_count, summaries
 * _sum/_count. `registries` are prom-client Registry objects.
 */
function seriesNamesFromRegistries(registries) {
  const names = new Set();
  for (const r of registries) {
    for (const m of r.getMetricsAsArray()) {
      const type = m.type !== undefined ? String(m.type) : '';
      names.add(m.name);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
      if (type === 'summary') for (const s of ['_sum', '_count']) names.add(m.name + s);
    }
  }
  return names;
}

/** The daemons' real metric names, from their compiled metrics modules (relay/dist, tunnel-agent/dist). */
function daemonSeriesNames(root = ROOT) {
  const load = (rel) => {
    const file = path.join(root, rel);
    if (!fs.existsSync(file)) throw new Error(`${rel} is missing: build first (npm run build)`);
    return require(file);
  };
  const { RelayMetrics } = load('relay/dist/metrics.js');
  const { AgentMetrics } = load('tunnel-agent/dist/metrics.js');
  const relay = new RelayMetrics({ version: 'check', mode: 'pull', frameAgeSeconds: () => 0, clients: () => 0 });
  const agent = new AgentMetrics({ forwards: ['1234:cam:1234'], version: 'check', sessionUptime: () => 0 });
  return seriesNamesFromRegistries([relay.registry, agent.registry]);
}

/** Metric names a PromQL expression selects (template variables must already be replaced or removed). */
function metricNamesInExpr(expr) {
  let s = String(expr);
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""'); // string literals
  s = s.replace(/\{[^}]*\}/g, ' '); // label matchers
  s = s.replace(/\[[^\]]*\]/g, ' '); // range / subquery selectors
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  s = s.replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*|\[\[[^\]]*\]\]/g, ' ');
  const names = new Set();
  const re = /[A-Za-z_:][A-Za-z0-9_:]*/g;
  let m;
  while ((m = re.exec(s)) !== null) {
    const word = m[0];
    const before = s[m.index - 1];
    if (before !== undefined && /[0-9.]/.test(before)) continue; // 1e3, 0.5 suffixes
    const rest = s.slice(m.index + word.length);
    if (/^\s*\(/.test(rest)) continue; // function or aggregation call
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

/** Replaces Grafana's built-in and dashboard variables the way Grafana would for one panel query. */
function substitute(expr, vars) {
  let s = String(expr);
  const names = Object.keys(vars).sort((a, b) => b.length - a.length);
  for (const name of names) {
    const v = vars[name];
    const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    s = s.replace(new RegExp(`\\$\\{${esc}(?::[a-z]+)?\\}|\\[\\[${esc}\\]\\]|\\$${esc}(?![A-Za-z0-9_])`, 'g'), v);
  }
  return s;
}

/** Values for the dashboard's own variables: the concrete current value, else the "All" value. */
function dashboardVariableValues(dashboard) {
  const out = {};
  for (const v of (dashboard.templating && dashboard.templating.list) || []) {
    const cur = v.current && v.current.value;
    const first = Array.isArray(cur) ? cur[0] : cur;
    if (typeof first === 'string' && first !== '' && first !== '$__all' && !(Array.isArray(cur) && cur.length > 1)) out[v.name] = first;
    else out[v.name] = v.allValue || '.*';
  }
  return out;
}

function variableQueryText(v) {
  if (typeof v.query === 'string') return v.query;
  if (v.query && typeof v.query.query === 'string') return v.query.query;
  return typeof v.definition === 'string' ? v.definition : '';
}

// ---- static check ---------------------------------------------------------------------------------

/**
 * Checks the dashboard object. Returns { errors: string[], queries: {where, expr}[] } where queries are
 * every panel target and variable query, unsubstituted.
 */
function checkDashboard(dashboard, opts) {
  const uid = opts.datasourceUid;
  const known = opts.metricNames; // Set<string> or undefined (then metric names are not checked)
  const records = opts.recordingRules || new Set();
  const errors = [];
  const queries = [];
  const err = (msg) => errors.push(msg);

  if (dashboard.uid !== (opts.dashboardUid || DASHBOARD_UID)) err(`dashboard uid is ${JSON.stringify(dashboard.uid)}, must be fixed to "${opts.dashboardUid || DASHBOARD_UID}"`);
  if (!dashboard.title) err('dashboard has no title');
  if (dashboard.__inputs || dashboard.__requires) err('dashboard has __inputs/__requires (an export for import): provisioned dashboards reference the datasource uid directly');
  const text = JSON.stringify(dashboard);
  if (/\$\{DS_[A-Za-z0-9_]*\}/.test(text)) err('dashboard references a datasource input ${DS_...}: use the provisioned uid');

  const dsProblem = (ds, where) => {
    if (ds === undefined || ds === null) return `${where}: no datasource (must be {"type":"prometheus","uid":"${uid}"})`;
    if (typeof ds === 'string') return `${where}: datasource referenced by name ${JSON.stringify(ds)} (must be {"type":"prometheus","uid":"${uid}"})`;
    if (ds.uid !== uid) return `${where}: datasource uid ${JSON.stringify(ds.uid)} is not the provisioned "${uid}"`;
    if (ds.type !== undefined && ds.type !== 'prometheus') return `${where}: datasource type ${JSON.stringify(ds.type)} is not "prometheus"`;
    return undefined;
  };

  const checkNames = (expr, where) => {
    if (!known) return;
    for (const name of metricNamesInExpr(substitute(expr, { ...opts.vars }))) {
      if (known.has(name) || records.has(name) || PROMETHEUS_OWN.test(name)) continue;
      err(`${where}: metric "${name}" is not exported by the relay or the tunnel-agent, nor a recording rule in prometheus/rules`);
    }
  };

  const panels = flattenPanels(dashboard.panels);
  if (panels.length === 0) err('dashboard has no panels');
  const ids = new Map();
  const boxes = [];
  for (const p of panels) {
    const label = `panel ${p.id} "${p.title || ''}"`;
    if (!Number.isInteger(p.id) || p.id <= 0) err(`${label}: id must be a positive integer`);
    else if (ids.has(p.id)) err(`${label}: id ${p.id} is also used by "${ids.get(p.id)}"`);
    else ids.set(p.id, p.title || '');
    if (!p.title) err(`${label}: no title`);
    const g = p.gridPos;
    if (!g || !['x', 'y', 'w', 'h'].every((k) => Number.isInteger(g[k]) && g[k] >= 0) || g.w < 1 || g.h < 1) {
      err(`${label}: gridPos must have integer x, y >= 0 and w, h >= 1`);
    } else if (g.x + g.w > GRID_COLUMNS) {
      err(`${label}: gridPos x + w = ${g.x + g.w} exceeds ${GRID_COLUMNS} columns`);
    } else {
      for (const b of boxes) {
        const overlap = g.x < b.g.x + b.g.w && b.g.x < g.x + g.w && g.y < b.g.y + b.g.h && b.g.y < g.y + g.h;
        if (overlap) err(`${label}: gridPos overlaps ${b.label}`);
      }
      boxes.push({ g, label });
    }
    if (p.type === 'row') {
      if (p.targets && p.targets.length) err(`${label}: a row has no queries`);
      continue;
    }
    const pds = dsProblem(p.datasource, label);
    if (pds) err(pds);
    if (!Array.isArray(p.targets) || p.targets.length === 0) {
      err(`${label}: no targets`);
      continue;
    }
    const refIds = new Set();
    for (const t of p.targets) {
      const where = `${label} target ${t.refId || '?'}`;
      if (!t.refId) err(`${where}: no refId`);
      else if (refIds.has(t.refId)) err(`${where}: refId used twice`);
      refIds.add(t.refId);
      const tds = dsProblem(t.datasource, where);
      if (tds) err(tds);
      if (typeof t.expr !== 'string' || t.expr.trim() === '') {
        err(`${where}: no expr`);
        continue;
      }
      checkNames(t.expr, where);
      queries.push({ where, expr: t.expr, kind: 'panel' });
    }
  }

  // ---- template variables, repeated rows, per-camera filters ----
  const variables = new Map(((dashboard.templating && dashboard.templating.list) || []).map((v) => [v.name, v]));
  const hasCamera = variables.has(CAMERA_VARIABLE);
  const repeatable = (name, where) => {
    const v = variables.get(name);
    if (!v) return err(`${where}: repeats by $${name}, which is not a dashboard variable`);
    if (!v.multi && !v.includeAll) err(`${where}: repeats by $${name}, which is neither multi-value nor has "All": it can only ever show one`);
  };
  for (const { row, panels: members } of rowGroups(dashboard.panels)) {
    const queryPanels = members.filter((p) => p && p.type !== 'row');
    for (const p of queryPanels) if (p.repeat) repeatable(p.repeat, `panel ${p.id} "${p.title || ''}"`);
    if (!row || !row.repeat) continue;
    const where = `row ${row.id} "${row.title || ''}"`;
    repeatable(row.repeat, where);
    if (!variablesIn(row.title || '').has(row.repeat)) err(`${where}: a row repeated by $${row.repeat} must name it in its title, or every copy looks the same`);
    if (queryPanels.length === 0) err(`${where}: a repeated row with no panels`);
    for (const p of queryPanels) {
      for (const t of p.targets || []) {
        if (typeof t.expr !== 'string' || variablesIn(t.expr).has(row.repeat)) continue;
        // a threshold line (camrelay:* constants from prometheus/rules) is the same for every copy by design
        const names = metricNamesInExpr(substitute(t.expr, { ...opts.vars }));
        if (names.length > 0 && names.every((n) => n.startsWith('camrelay:'))) continue;
        err(`panel ${p.id} "${p.title || ''}" target ${t.refId || '?'}: in a row repeated by $${row.repeat} but does not use $${row.repeat} (every copy would show the same)`);
      }
    }
  }
  if (hasCamera) {
    for (const q of queries) {
      const names = unfilteredPerCameraSelectors(q.expr);
      if (names.length) err(`${q.where}: per-camera metric ${[...new Set(names)].join(', ')} not filtered by camera=~"$${CAMERA_VARIABLE}"`);
    }
  }

  for (const v of (dashboard.templating && dashboard.templating.list) || []) {
    const where = `variable $${v.name}`;
    if (v.type === 'datasource') {
      err(`${where}: a datasource variable selects by name; reference the provisioned uid "${uid}" instead`);
      continue;
    }
    if (v.type !== 'query') continue;
    const vds = dsProblem(v.datasource, where);
    if (vds) err(vds);
    const q = variableQueryText(v);
    if (!q) {
      err(`${where}: no query`);
      continue;
    }
    const lv = /^\s*label_values\(\s*(.*?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(q);
    if (lv) {
      checkNames(lv[1], where);
      queries.push({ where, expr: lv[1], label: lv[2], kind: 'label_values' });
    } else if (/^\s*label_values\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.test(q)) {
      queries.push({ where, expr: '', label: /label_values\(\s*(\w+)/.exec(q)[1], kind: 'label_values' });
    } else if (/^\s*query_result\((.*)\)\s*$/.test(q)) {
      const inner = /^\s*query_result\((.*)\)\s*$/.exec(q)[1];
      checkNames(inner, where);
      queries.push({ where, expr: inner, kind: 'panel' });
    } else {
      err(`${where}: unsupported variable query ${JSON.stringify(q)} (use label_values(...) or query_result(...))`);
    }
  }

  for (const a of (dashboard.annotations && dashboard.annotations.list) || []) {
    if (a.builtIn === 1 && a.datasource && a.datasource.type === 'grafana') continue;
    const ads = dsProblem(a.datasource, `annotation "${a.name}"`);
    if (ads) err(ads);
  }
  return { errors, queries };
}

// ---- live check -----------------------------------------------------------------------------------

/** GET (label values; Prometheus 2.x takes no POST there) or POST (queries: long exprs fit) an API path. */
async function promGet(base, apiPath, params, timeoutMs, method = 'POST') {
  const url = new URL(apiPath, base.endsWith('/') ? base : `${base}/`);
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of [].concat(v)) body.append(k, String(one));
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    if (method === 'GET') url.search = body.toString();
    const res = await fetch(url, {
      method,
      ...(method === 'POST' ? { body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } } : {}),
      signal: ac.signal,
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    }
    if (json.status !== 'success') throw new Error(`${json.errorType || 'error'}: ${json.error || text.slice(0, 200)}`);
    return json.data;
  } catch (e) {
    if (ac.signal.aborted) throw new Error(`no answer from ${url.origin} within ${timeoutMs} ms`);
    const cause = e && e.cause && (e.cause.code || e.cause.message);
    throw cause ? new Error(`${e.message} (${cause}) at ${url.origin}`) : e;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs one query; resolves { ok, detail }. */
async function runQuery(q, o) {
  const end = Math.floor(Date.now() / 1000);
  const start = end - o.rangeSeconds;
  try {
    if (q.kind === 'label_values') {
      const params = { start, end };
      if (q.expr) params['match[]'] = substitute(q.expr, o.vars);
      const values = await promGet(o.prometheus, `api/v1/label/${encodeURIComponent(q.label)}/values`, params, o.timeoutMs, 'GET');
      return values.length > 0 ? { ok: true, detail: `${values.length} values` } : { ok: false, detail: 'no values' };
    }
    const expr = substitute(q.expr, o.vars);
    const data = await promGet(o.prometheus, 'api/v1/query_range', { query: expr, start, end, step: o.stepSeconds }, o.timeoutMs);
    const series = data.result || [];
    if (series.length === 0) return { ok: false, detail: `no data in the last ${o.range}`, expr };
    const points = series.reduce((n, s) => n + (s.values || []).filter(([, v]) => v !== 'NaN').length, 0);
    if (points === 0) return { ok: false, detail: `only NaN in the last ${o.range} (${series.length} series)`, expr };
    return { ok: true, detail: `${series.length} series, ${points} points`, expr };
  } catch (e) {
    return { ok: false, detail: `error: ${e.message}`, expr: q.kind === 'label_values' ? q.expr : substitute(q.expr, o.vars) };
  }
}

/**
 * Runs every query against Prometheus. Returns { passed: [...], failed: [...] } of {where, expr, detail}.
 * Options: prometheus (base URL), range ('10m'), step ('15s'), rateInterval ('1m'), waitSeconds (0),
 * timeoutMs (10000), vars (dashboard variable values), log (function or undefined).
 */
async function checkLive(queries, options) {
  const range = options.range || '10m';
  const o = {
    prometheus: options.prometheus,
    range,
    rangeSeconds: parseDuration(range),
    stepSeconds: parseDuration(options.step || '15s'),
    timeoutMs: options.timeoutMs || 10_000,
  };
  const rate = promDuration(parseDuration(options.rateInterval || '1m'));
  o.vars = {
    ...(options.vars || {}),
    __rate_interval: rate,
    __interval: promDuration(o.stepSeconds),
    __interval_ms: String(Math.round(o.stepSeconds * 1000)),
    __range: promDuration(o.rangeSeconds),
    __range_s: String(Math.round(o.rangeSeconds)),
    __range_ms: String(Math.round(o.rangeSeconds * 1000)),
  };
  const deadline = Date.now() + (options.waitSeconds || 0) * 1000;
  let pending = queries.slice();
  const passed = [];
  let failed = [];
  for (;;) {
    const results = await Promise.all(pending.map(async (q) => ({ q, r: await runQuery(q, o) })));
    failed = [];
    for (const { q, r } of results) {
      const entry = { where: q.where, expr: r.expr !== undefined ? r.expr : q.expr, detail: r.detail };
      (r.ok ? passed : failed).push(entry);
    }
    if (failed.length === 0 || Date.now() >= deadline) break;
    pending = results.filter(({ r }) => !r.ok).map(({ q }) => q);
    if (options.log) options.log(`  ${failed.length} queries without data yet; retrying`);
    await new Promise((res) => setTimeout(res, Math.min(5000, Math.max(500, deadline - Date.now()))));
  }
  return { passed, failed };
}

// ---- CLI --------------------------------------------------------------------------------------------

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  dashboard: { type: 'string', default: DEFAULT_DASHBOARD },
  prometheus: { type: 'string' },
  range: { type: 'string', default: '10m' },
  step: { type: 'string', default: '15s' },
  'rate-interval': { type: 'string', default: '1m' },
  wait: { type: 'string', default: '0' },
  var: { type: 'string', multiple: true, default: [] },
  timeout: { type: 'string', default: '10' },
};

/** The command line through node:util parseArgs (strict); errors name the offending argument. */
function parseArgs(argv) {
  let values;
  try {
    ({ values } = util.parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    const { tokens } = util.parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
    for (const t of tokens) {
      if (t.kind === 'positional') throw new Error(`unknown argument "${t.value}" (see --help)`);
      if (t.kind !== 'option') continue;
      if (!(t.name in OPTIONS)) throw new Error(`unknown argument "${t.rawName}" (see --help)`);
      if (t.name !== 'help' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) throw new Error(`${t.rawName} needs a value`);
    }
    throw new Error(e.message);
  }
  if (values.help) return { help: true };
  const overrides = {};
  for (const kv of values.var) {
    const m = /^([A-Za-z_]\w*)=(.+)$/.exec(kv);
    if (!m) throw new Error(`--var must be NAME=VALUE (e.g. --var camera=front), got "${kv}"`);
    overrides[m[1]] = m[2];
  }
  const opts = { overrides, dashboard: values.dashboard, prometheus: values.prometheus, range: values.range, step: values.step, rateInterval: values['rate-interval'], wait: values.wait, timeout: values.timeout };
  for (const [flag, k] of [['--dashboard', 'dashboard'], ['--range', 'range'], ['--step', 'step'], ['--rate-interval', 'rateInterval'], ['--wait', 'wait'], ['--timeout', 'timeout']]) {
    if (opts[k] === '') throw new Error(`${flag} needs a value`);
  }
  for (const k of ['range', 'step', 'rateInterval', 'wait', 'timeout']) parseDuration(opts[k]);
  if (opts.prometheus !== undefined && !/^https?:\/\/[^/]+/.test(opts.prometheus)) throw new Error(`--prometheus must be a URL like http://127.0.0.1:9090, got "${opts.prometheus}"`);
  return opts;
}

const USAGE = `Usage: node scripts/check-dashboard.js [--prometheus http://HOST:PORT] [--dashboard FILE]
         [--range 10m] [--step 15s] [--rate-interval 1m] [--wait SECONDS] [--timeout SECONDS] [--var NAME=VALUE]...
Static checks of the Grafana dashboard; with --prometheus also runs every panel query against it.
Variables take their "All" value (.*) unless --var sets one (--var camera=front: the queries as one
repeated camera row shows them).
`;

async function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`check-dashboard: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let dashboard;
  try {
    dashboard = JSON.parse(fs.readFileSync(opts.dashboard, 'utf8'));
  } catch (e) {
    process.stderr.write(`check-dashboard: cannot read ${opts.dashboard}: ${e.message}\n`);
    return 1;
  }
  const uids = provisionedDatasourceUids();
  if (uids.length !== 1) {
    process.stderr.write(`check-dashboard: expected exactly one provisioned datasource uid in grafana/provisioning/datasources, found ${JSON.stringify(uids)}\n`);
    return 1;
  }
  let metricNames;
  try {
    metricNames = daemonSeriesNames();
  } catch (e) {
    process.stderr.write(`check-dashboard: ${e.message}\n`);
    return 1;
  }
  const vars = dashboardVariableValues(dashboard);
  for (const [name, value] of Object.entries(opts.overrides)) {
    if (!(name in vars)) {
      process.stderr.write(`check-dashboard: --var ${name}: the dashboard has no variable $${name} (it has: ${Object.keys(vars).map((n) => `$${n}`).join(', ')})\n`);
      return 2;
    }
    vars[name] = value;
  }
  const { errors, queries } = checkDashboard(dashboard, { datasourceUid: uids[0], metricNames, recordingRules: recordingRuleNames(), vars });
  const rel = path.relative(process.cwd(), opts.dashboard) || opts.dashboard;
  if (errors.length) {
    process.stdout.write(`FAIL ${rel}: ${errors.length} problems\n${errors.map((e) => `  - ${e}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write(`ok   ${rel}: ${flattenPanels(dashboard.panels).length} panels, ${queries.length} queries, datasource uid "${uids[0]}"\n`);
  if (!opts.prometheus) return 0;

  const { passed, failed } = await checkLive(queries, {
    prometheus: opts.prometheus,
    range: opts.range,
    step: opts.step,
    rateInterval: opts.rateInterval,
    waitSeconds: parseDuration(opts.wait),
    timeoutMs: parseDuration(opts.timeout) * 1000,
    vars,
    log: (m) => process.stdout.write(`${m}\n`),
  });
  for (const f of failed) process.stdout.write(`FAIL ${f.where}: ${f.detail}\n       ${f.expr}\n`);
  process.stdout.write(`${failed.length ? 'FAIL' : 'ok  '} live queries against ${opts.prometheus}: ${passed.length} with data, ${failed.length} without\n`);
  return failed.length ? 1 : 0;
}

module.exports = {
  DASHBOARD_UID,
  DEFAULT_DASHBOARD,
  parseDuration,
  flattenPanels,
  provisionedDatasourceUids,
  recordingRuleNames,
  seriesNamesFromRegistries,
  daemonSeriesNames,
  metricNamesInExpr,
  substitute,
  dashboardVariableValues,
  rowGroups,
  variablesIn,
  unfilteredPerCameraSelectors,
  PER_CAMERA_METRICS,
  CAMERA_VARIABLE,
  checkDashboard,
  checkLive,
  main,
};

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`check-dashboard: ${e && e.stack ? e.stack : e}\n`);
      process.exit(1);
    },
  );
}
