/** Types for scripts/check-dashboard.js (plain Node, no build), used by the TypeScript tests. */
import type { Registry } from 'prom-client';

export interface DashboardQuery {
  /** e.g. 'panel 3 "Frame rate" target A' or 'variable $instance' */
  where: string;
  expr: string;
  kind: 'panel' | 'label_values';
  label?: string;
}

export interface CheckOptions {
  datasourceUid: string;
  /** Series names the daemons export; undefined = do not check metric names. */
  metricNames?: Set<string>;
  recordingRules?: Set<string>;
  vars?: Record<string, string>;
  dashboardUid?: string;
}

export interface LiveResult {
  where: string;
  expr: string;
  detail: string;
}

export interface LiveOptions {
  prometheus: string;
  range?: string;
  step?: string;
  rateInterval?: string;
  waitSeconds?: number;
  timeoutMs?: number;
  vars?: Record<string, string>;
  log?: (msg: string) => void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Dashboard = any;

export const DASHBOARD_UID: string;
export const DEFAULT_DASHBOARD: string;
export function parseDuration(s: string): number;
export function flattenPanels(panels: unknown[]): Dashboard[];
export function provisionedDatasourceUids(dir?: string): string[];
export function recordingRuleNames(dir?: string): Set<string>;
export function seriesNamesFromRegistries(registries: Registry[]): Set<string>;
export function daemonSeriesNames(root?: string): Set<string>;
export function metricNamesInExpr(expr: string): string[];
export function substitute(expr: string, vars: Record<string, string>): string;
export function dashboardVariableValues(dashboard: Dashboard): Record<string, string>;
/** The rows and their panels as Grafana groups them (row null: the panels above the first row). */
export function rowGroups(panels: unknown[]): { row: Dashboard | null; panels: Dashboard[] }[];
/** Variable names referenced as $v, ${v}, ${v:fmt} or [[v]]. */
export function variablesIn(text: string): Set<string>;
/** Per-camera metric selectors in expr that lack camera=~"$camera" (by default the `camera` variable). */
export function unfilteredPerCameraSelectors(expr: string, variable?: string): string[];
/** The per-camera metric families (label `camera`) and the recording rules built on them. */
export const PER_CAMERA_METRICS: RegExp;
export const CAMERA_VARIABLE: string;
export function checkDashboard(dashboard: Dashboard, opts: CheckOptions): { errors: string[]; queries: DashboardQuery[] };
export function checkLive(queries: DashboardQuery[], opts: LiveOptions): Promise<{ passed: LiveResult[]; failed: LiveResult[] }>;
export function main(argv: string[]): Promise<number>;
