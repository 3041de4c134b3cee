/**
 * Every tunnel-agent metric on the agent's own Registry (a fresh one per instance, so tests never hit
 * "already registered"). Labels come from small fixed sets: result/reason enums and the configured
 * forward specs and the camera each forward serves (bounded by the camera list). Never a client address.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export type ConnectResult =
  | 'success' | 'unreachable' | 'connect_timeout' | 'handshake_timeout' | 'handshake_failed'
  | 'auth_failed' | 'host_key_mismatch' | 'error';
export const CONNECT_RESULTS: readonly ConnectResult[] = [
  'success', 'unreachable', 'connect_timeout', 'handshake_timeout', 'handshake_failed', 'auth_failed', 'host_key_mismatch', 'error',
];

/** Why an established (authenticated) session ended. */
export type DisconnectReason = 'keepalive_timeout' | 'socket_error' | 'server_closed' | 'bind_timeout' | 'stopped';
export const DISCONNECT_REASONS: readonly DisconnectReason[] = ['keepalive_timeout', 'socket_error', 'server_closed', 'bind_timeout', 'stopped'];

export type ForwardResult =
  | 'accepted' | 'target_refused' | 'target_timeout' | 'target_error' | 'rejected_limit' | 'session_closed';
export const FORWARD_RESULTS: readonly ForwardResult[] = [
  'accepted', 'target_refused', 'target_timeout', 'target_error', 'rejected_limit', 'session_closed',
];

export type Direction = 'to_target' | 'from_target';

/** What names a forward's series: its spec and the camera behind it ("" = none, e.g. the metrics forward). */
export interface ForwardLabels {
  readonly spec: string;
  readonly camera?: string;
}

type FL = 'forward' | 'camera';

export interface AgentMetricsOptions {
  /** the forwards at start-up (a plain spec = a forward of no camera); reloads add and remove */
  forwards: readonly (string | ForwardLabels)[];
  version: string;
  /** Seconds since the current session became ready, 0 without one; read at scrape time. */
  sessionUptime: () => number;
  withDefaults?: boolean;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly up: Gauge;
  readonly connectAttempts: Counter<'result'>;
  readonly reconnects: Counter;
  readonly backoffSeconds: Gauge;
  readonly sessionUptime: Gauge;
  readonly disconnects: Counter<'reason'>;
  readonly keepaliveTimeouts: Counter;
  readonly hostKeyMismatches: Counter;
  readonly forwardBound: Gauge<FL>;
  readonly forwardBindFailures: Counter<FL>;
  readonly forwardedConnections: Counter<FL | 'result'>;
  readonly activeConnections: Gauge<FL>;
  readonly bytes: Counter<FL | 'direction'>;
  readonly configReloads: Counter<'result'>;
  readonly buildInfo: Gauge<'version' | 'node'>;
  /** spec -> camera of every forward with series */
  private readonly cameraOf = new Map<string, string>();

  constructor(opts: AgentMetricsOptions) {
    const r = this.registry;
    const p = 'tunnel_agent_';
    if (opts.withDefaults !== false) collectDefaultMetrics({ register: r, prefix: p });
    this.up = new Gauge({ name: `${p}up`, help: '1 when the SSH session is up and every forward is bound', registers: [r] });
    this.connectAttempts = new Counter({
      name: `${p}connect_attempts_total`, help: 'Connection attempts to the SSH server by result (unreachable = cheap TCP probe failed)',
      labelNames: ['result'], registers: [r],
    });
    for (const result of CONNECT_RESULTS) this.connectAttempts.inc({ result }, 0);
    this.reconnects = new Counter({ name: `${p}reconnects_total`, help: 'Sessions established after the first one', registers: [r] });
    this.backoffSeconds = new Gauge({ name: `${p}backoff_seconds`, help: 'Current wait before the next connection attempt (0 when connected)', registers: [r] });
    this.sessionUptime = new Gauge({
      name: `${p}session_uptime_seconds`, help: 'Seconds since the current SSH session was authenticated (0 without one)', registers: [r],
      collect() {
        this.set(opts.sessionUptime());
      },
    });
    this.disconnects = new Counter({ name: `${p}disconnects_total`, help: 'Established sessions that ended, by reason', labelNames: ['reason'], registers: [r] });
    for (const reason of DISCONNECT_REASONS) this.disconnects.inc({ reason }, 0);
    this.keepaliveTimeouts = new Counter({ name: `${p}keepalive_timeouts_total`, help: 'Sessions declared dead because keepalives went unanswered', registers: [r] });
    this.hostKeyMismatches = new Counter({ name: `${p}host_key_mismatches_total`, help: 'Connections refused because the server host key did not match the pin', registers: [r] });
    this.forwardBound = new Gauge({ name: `${p}forward_bound`, help: '1 when the forward is bound on the server', labelNames: ['forward', 'camera'], registers: [r] });
    this.forwardBindFailures = new Counter({ name: `${p}forward_bind_failures_total`, help: 'tcpip-forward requests refused or unanswered', labelNames: ['forward', 'camera'], registers: [r] });
    this.forwardedConnections = new Counter({
      name: `${p}forwarded_connections_total`, help: 'Incoming tunnel connections by forward and result', labelNames: ['forward', 'camera', 'result'], registers: [r],
    });
    this.activeConnections = new Gauge({ name: `${p}active_connections`, help: 'Tunnel connections open now (including those connecting to the target)', labelNames: ['forward', 'camera'], registers: [r] });
    this.bytes = new Counter({ name: `${p}bytes_total`, help: 'Bytes piped through forwards by direction', labelNames: ['forward', 'camera', 'direction'], registers: [r] });
    this.configReloads = new Counter({ name: `${p}config_reloads_total`, help: 'CAMERAS_FILE re-reads (SIGHUP) by result; error = the file was refused and the running forwards kept', labelNames: ['result'], registers: [r] });
    for (const result of ['ok', 'error']) this.configReloads.inc({ result }, 0);
    this.buildInfo = new Gauge({ name: `${p}build_info`, help: 'Version of the running agent', labelNames: ['version', 'node'], registers: [r] });
    this.buildInfo.set({ version: opts.version, node: process.version }, 1);
    this.up.set(0);
    this.backoffSeconds.set(0);
    for (const f of opts.forwards) this.addForward(typeof f === 'string' ? { spec: f } : f);
  }

  /** The labels of a forward's series: `{ forward, camera }`. */
  labels(spec: string): Record<FL, string> {
    return { forward: spec, camera: this.cameraOf.get(spec) ?? '' };
  }

  /** Creates a forward's series at 0 (start-up, or a camera added by a reload). */
  addForward(f: ForwardLabels): void {
    this.cameraOf.set(f.spec, f.camera ?? '');
    const l = this.labels(f.spec);
    this.forwardBound.set(l, 0);
    this.forwardBindFailures.inc(l, 0);
    this.activeConnections.set(l, 0);
    for (const result of FORWARD_RESULTS) this.forwardedConnections.inc({ ...l, result }, 0);
    for (const direction of ['to_target', 'from_target'] as const) this.bytes.inc({ ...l, direction }, 0);
  }

  /** Removes a forward's series (a camera removed by a reload): the set stays bounded by the list. */
  removeForward(spec: string): void {
    if (!this.cameraOf.has(spec)) return;
    const l = this.labels(spec);
    this.forwardBound.remove(l);
    this.forwardBindFailures.remove(l);
    this.activeConnections.remove(l);
    for (const result of FORWARD_RESULTS) this.forwardedConnections.remove({ ...l, result });
    for (const direction of ['to_target', 'from_target'] as const) this.bytes.remove({ ...l, direction });
    this.cameraOf.delete(spec);
  }

  /** A plain-number view of one series, for tests and readiness detail. */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = this.registry.getSingleMetric(name);
    if (!m) throw new Error(`no metric ${name}`);
    const data = await m.get();
    const v = data.values.find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
    return v ? v.value : 0;
  }
}
