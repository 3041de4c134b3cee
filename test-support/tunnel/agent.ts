/**
 * An in-process tunnel-agent Supervisor for unit tests: short timings, captured logs, every state
 * event recorded, metrics read back. With `clock` (a FakeClock) the supervisor's timers run on fake
 * time; stop() then drives that clock until the supervisor has settled.
 */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@camrelay/common';
import type { FakeClock } from '../fake-clock';
import { parseForwards } from '../../tunnel-agent/src/config';
import { parseHostKeyPins } from '../../tunnel-agent/src/host-key';
import { AgentMetrics } from '../../tunnel-agent/src/metrics';
import { AgentState, StateInfo, Supervisor, SupervisorConfig, SupervisorOptions } from '../../tunnel-agent/src/supervisor';

export function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger({ name: 'test-agent', level: 'debug', destination }), lines };
}

export interface TestAgentOptions {
  sshPort: number;
  privateKey: string;
  hostKey: string;
  forwards?: string;
  config?: Partial<SupervisorConfig>;
  supervisor?: Partial<Omit<SupervisorOptions, 'clock'>>;
  /** Fake time for the supervisor (and its sessions and probes). */
  clock?: FakeClock;
}

export interface TestAgent {
  sup: Supervisor;
  metrics: AgentMetrics;
  lines: Record<string, unknown>[];
  states: StateInfo[];
  /** Resolves with the first state event (from now on, or already seen after `from`) matching. */
  waitState(pred: (s: StateInfo) => boolean, timeoutMs?: number, from?: number): Promise<StateInfo>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** sup.stop(); with a fake clock, advances it (waiting for real I/O in between) until stop() resolves. */
  stop(): Promise<void>;
}

/** The agent settings the tests start from: short timings, loopback, one forward. */
export function testAgentConfig(o: Pick<TestAgentOptions, 'sshPort' | 'privateKey' | 'hostKey' | 'forwards' | 'config'>): SupervisorConfig {
  return {
    sshHost: '127.0.0.1',
    sshPort: o.sshPort,
    sshUser: 'tunnel',
    privateKey: Buffer.from(o.privateKey),
    passphrase: undefined,
    hostKey: parseHostKeyPins(o.hostKey),
    forwards: parseForwards(o.forwards ?? '127.0.0.1:4000:127.0.0.1:1'),
    keepaliveIntervalMs: 1000,
    keepaliveCountMax: 3,
    connectTimeoutMs: 3000,
    reconnectMinMs: 1000,
    reconnectMaxMs: 60_000,
    stableAfterMs: 30_000,
    forwardConnectTimeoutMs: 2000,
    forwardMaxConnections: 8,
    forwardBindRetryMs: 50,
    unreachableProbeMs: 500,
    ...o.config,
  };
}

export function makeAgent(o: TestAgentOptions): TestAgent {
  const { log, lines } = captureLog();
  const config = testAgentConfig(o);
  const holder: { sup?: Supervisor } = {};
  const metrics = new AgentMetrics({
    forwards: config.forwards, version: 'test', withDefaults: false,
    sessionUptime: () => holder.sup?.sessionUptimeSeconds() ?? 0,
  });
  const s = new Supervisor({ config, metrics, log, ...o.supervisor, ...(o.clock ? { clock: o.clock } : {}) });
  holder.sup = s;
  const states: StateInfo[] = [];
  s.on('state', (st: StateInfo) => states.push(st));
  return {
    sup: s,
    metrics,
    lines,
    states,
    waitState: (pred, timeoutMs = 10_000, from = states.length) =>
      new Promise((resolve, reject) => {
        const seen = states.slice(from).find(pred);
        if (seen) return resolve(seen);
        const timer = setTimeout(() => {
          s.off('state', on);
          reject(new Error(`timed out waiting for state; states so far: ${states.map((x) => x.state + (x.delayMs !== undefined ? `(${x.delayMs})` : '')).join(' ')}`));
        }, timeoutMs);
        const on = (st: StateInfo) => {
          if (!pred(st)) return;
          clearTimeout(timer);
          s.off('state', on);
          resolve(st);
        };
        s.on('state', on);
      }),
    metric: (name, labels) => metrics.value(name, labels),
    stop: async () => {
      let done = false;
      const stopped = s.stop().then(() => {
        done = true;
      });
      while (o.clock && !done) {
        await o.clock.advanceAsync(100);
        await new Promise((r) => setImmediate(r));
      }
      await stopped;
    },
  };
}

export const is = (state: AgentState) => (s: StateInfo) => s.state === state;
