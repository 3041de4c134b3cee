/** Helpers for the relay's unit tests: tiny camera servers, a manual clock, metric readers, log capture. */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Clock, createLogger, Logger, TimerHandle } from '@camrelay/common';
import type { Counter, Gauge } from 'prom-client';
import { RelayMetrics } from '../../src/metrics';

/** A whole JPEG whose 5th byte is n (enough for checkJpeg and for telling frames apart). */
export function jpeg(n: number, size = 16): Buffer {
  const b = Buffer.alloc(Math.max(size, 8), 0x11);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[3] = 0xe0;
  b.writeUInt16BE(n & 0xffff, 4);
  b[b.length - 2] = 0xff;
  b[b.length - 1] = 0xd9;
  return b;
}

export const frameNo = (b: Buffer) => b.readUInt16BE(4);

export type Behaviour = (socket: net.Socket, n: number) => void;

/** A one-shot camera: each connection is handed to the current behaviour. */
export class TestCamera {
  connections = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  constructor(public behaviour: Behaviour = ok) {
    this.server = net.createServer((s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      this.behaviour(s, this.connections);
    });
  }
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return this.port;
  }
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export const ok: Behaviour = (s, n) => s.end(jpeg(n));

/** A port nobody listens on. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Timers that fire only when the test advances time. */
export class ManualClock implements Clock {
  private t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ at: this.t + Math.max(0, ms), fn, id });
    return { id } as unknown as TimerHandle;
  }
  clearTimeout(h: TimerHandle | undefined): void {
    if (!h) return;
    const id = (h as unknown as { id: number }).id;
    this.timers = this.timers.filter((x) => x.id !== id);
  }
  get pending(): number {
    return this.timers.length;
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0];
      if (!due || due.at > end) break;
      this.timers.shift();
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

export function testMetrics(mode = 'pull'): RelayMetrics {
  return new RelayMetrics({ version: 'test', mode, frameAgeSeconds: () => 0, clients: () => 0, withDefaults: false });
}

export async function metricValue(m: Counter<string> | Gauge<string>, labels: Record<string, string> = {}): Promise<number> {
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

export function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ name: 'test', level: 'debug', destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { log, lines };
}

/** Polls until fn() is truthy (real time). */
export async function until(fn: () => unknown, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Lets pending I/O callbacks run. */
export const settle = (ms = 50) => new Promise((r) => setTimeout(r, ms));
