/**
 * FakeCamera: an ESP32-CAM simulator speaking the camera's protocol. A client connects to TCP :port,
 * gets ONE JPEG, the connection closes. Like the ESP32 it serves one connection at a time (others
 * wait, connected, in a FIFO queue), takes `captureMs` per frame and sends at `linkKbps`.
 * Fault modes make it misbehave in every way a real camera or its link can, deterministically.
 */
import net from 'node:net';
import { listen, systemClock, type Clock, type Logger, type TimerHandle } from '@camrelay/common';
import { FrameRing, mulberry32, paddingSegments } from './frames';

import { DEFAULTS, MODES, parseHostPort, type Mode } from './config';

export { MODES, type Mode };
/** What one connection gets (flaky picks one of FAULTS or ok per connection). */
export type Behaviour = Exclude<Mode, 'flaky'>;
/** The per-connection faults flaky picks from; `frozen` is a lasting state of the camera, not one of them. */
export const FAULTS: readonly Behaviour[] = ['truncated', 'not-jpeg', 'empty', 'reset', 'hang-accept', 'hang-mid', 'oversize', 'refused'];

export function isMode(m: string): m is Mode {
  return (MODES as readonly string[]).includes(m);
}

/** Options not given take the declared defaults (FAKE_CAMERA_SETTINGS in config.ts). */
export interface FakeCameraOptions {
  /** Listen address. */
  host?: string;
  /** Listen port; 0 = a free port (read `port` after start()). */
  port?: number;
  mode?: Mode;
  /** Capture delay per frame in ms, after the connection is taken. */
  captureMs?: number;
  /** Link rate in kbit/s for sending a frame; 0 = unlimited. */
  linkKbps?: number;
  width?: number;
  height?: number;
  quality?: number;
  /** Distinct pre-encoded images. */
  ringSize?: number;
  /** Pad frames to at least this many KiB with COM segments (0 = natural size). */
  sizeKb?: number;
  /** `oversize` frames are a valid JPEG bigger than this many MiB. */
  oversizeMb?: number;
  /** Seed of the flaky mode's choices. */
  seed?: number;
  /** Probability of a fault per connection in flaky mode, 0..1. */
  faultRate?: number;
  /** How long hang-accept / hang-mid hold the connection; 0 = until the client closes. */
  hangMs?: number;
  /** In flaky mode, how long a `refused` fault keeps the listener closed. */
  refusedMs?: number;
  /**
   * Push mode (the seed's Option 3): `host:port` to connect to, one JPEG per connection, again and
   * again, instead of listening. undefined = listen.
   */
  pushTo?: string;
  /** Push mode: the wait after the target refused or was unreachable. */
  pushRetryMs?: number;
  /** A client that does not take the frame within this many ms is cut. */
  writeTimeoutMs?: number;
  /** Pre-built frames (tests share one to save encoding time). */
  ring?: FrameRing;
  log?: Logger;
  /** Time source of every delay (capture, link rate, hangs, timeouts); tests pass a fake one. */
  clock?: Clock;
}

export interface FakeCameraStats {
  mode: Mode;
  port: number;
  listening: boolean;
  /** Connections accepted. */
  connections: number;
  /** Whole, valid frames delivered (mode ok, or ok picks of flaky). */
  framesSent: number;
  /** Connections that got a fault (plus listener closures of flaky `refused`). */
  faultsInjected: number;
  faultsByKind: Record<string, number>;
  bytesSent: number;
  /** Sequence number of the last frame produced. */
  lastSeq: number;
  /** Connections waiting for their turn. */
  queued: number;
}

/** Bytes sent by `not-jpeg`: recognisably not a JPEG (does not start with FF D8). */
export const NOT_JPEG_BYTES = Buffer.concat([Buffer.from('NOT A JPEG: camrelay-fake-camera fault not-jpeg\n'), Buffer.alloc(4000, 0x41)]);

export class FakeCamera {
  readonly name = 'fake-camera';
  private readonly opts: Required<Omit<FakeCameraOptions, 'ring' | 'log' | 'mode' | 'port' | 'clock' | 'pushTo'>>;
  private readonly pushTo: { host: string; port: number } | undefined;
  private pushing: Promise<void> | undefined;
  private ringInstance: FrameRing | undefined;
  private readonly log: Logger | undefined;
  private modeValue: Mode;
  private boundPort: number;
  private server: net.Server | undefined;
  private readonly queue: net.Socket[] = [];
  private readonly sockets = new Set<net.Socket>();
  private busy = false;
  private started = false;
  private stopped = false;
  private abort = new AbortController();
  private readonly random: () => number;
  private oversizePad: Buffer | undefined;
  /** the frame a `frozen` camera repeats, byte for byte; a new one each time the mode is entered */
  private frozenFrame: Buffer | undefined;
  private reopenTimer: TimerHandle | undefined;
  private readonly clock: Clock;
  /** Serialises listener open/close so mode switches never race. */
  private listenerOp: Promise<void> = Promise.resolve();
  private readonly counters = { connections: 0, framesSent: 0, faultsInjected: 0, bytesSent: 0 };
  private readonly faultsByKind: Record<string, number> = {};

  constructor(opts: FakeCameraOptions = {}) {
    const d = DEFAULTS;
    this.opts = {
      host: opts.host ?? d.host,
      captureMs: opts.captureMs ?? d.captureMs,
      linkKbps: opts.linkKbps ?? d.linkKbps,
      width: opts.width ?? d.width,
      height: opts.height ?? d.height,
      quality: opts.quality ?? d.quality,
      ringSize: opts.ringSize ?? d.ringSize,
      sizeKb: opts.sizeKb ?? d.sizeKb,
      oversizeMb: opts.oversizeMb ?? d.oversizeMb,
      seed: opts.seed ?? d.seed,
      faultRate: opts.faultRate ?? d.faultRate,
      hangMs: opts.hangMs ?? d.hangMs,
      refusedMs: opts.refusedMs ?? d.refusedMs,
      pushRetryMs: opts.pushRetryMs ?? d.pushRetryMs,
      // not a setting of the daemon: only tests shorten it
      writeTimeoutMs: opts.writeTimeoutMs ?? 10_000,
    };
    this.ringInstance = opts.ring;
    this.log = opts.log;
    this.modeValue = opts.mode ?? d.mode;
    this.boundPort = opts.port ?? d.port;
    this.random = mulberry32(this.opts.seed);
    this.clock = opts.clock ?? systemClock;
    const target = opts.pushTo === undefined ? undefined : parseHostPort(opts.pushTo);
    if (opts.pushTo !== undefined && !target) throw new Error(`pushTo ${JSON.stringify(opts.pushTo)} is not host:port`);
    this.pushTo = target;
  }

  /** The real port (valid after start(); kept while the listener is closed in `refused`). */
  get port(): number {
    return this.boundPort;
  }

  get mode(): Mode {
    return this.modeValue;
  }

  get ring(): FrameRing {
    if (!this.ringInstance) {
      this.ringInstance = new FrameRing({
        width: this.opts.width,
        height: this.opts.height,
        quality: this.opts.quality,
        ringSize: this.opts.ringSize,
        minBytes: this.opts.sizeKb * 1024,
      });
    }
    return this.ringInstance;
  }

  get stats(): FakeCameraStats {
    return {
      mode: this.modeValue,
      port: this.boundPort,
      listening: this.server?.listening ?? false,
      ...this.counters,
      faultsByKind: { ...this.faultsByKind },
      lastSeq: this.ringInstance?.lastSeq ?? 0,
      queued: this.queue.length,
    };
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    void this.ring; // encode the frames before accepting anyone
    if (this.pushTo) {
      this.pushing = this.pushLoop(this.pushTo);
      return;
    }
    if (this.modeValue === 'refused') {
      // Nothing listens, but reserve a real port number when 0 was asked so `ok` can open it later.
      if (this.boundPort === 0) {
        await this.openListener();
        await this.closeListener();
      }
    } else {
      await this.openListener();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.clock.clearTimeout(this.reopenTimer);
    await this.closeListener();
    await this.pushing;
  }

  /** Switches the fault mode. `refused` closes the listener; leaving it reopens on the same port. */
  async setMode(mode: Mode): Promise<void> {
    if (!isMode(mode)) throw new Error(`unknown mode ${JSON.stringify(mode)}: expected one of ${MODES.join(', ')}`);
    const prev = this.modeValue;
    this.modeValue = mode;
    if (mode !== prev) this.frozenFrame = undefined;
    this.clock.clearTimeout(this.reopenTimer);
    if (prev !== mode) this.log?.info({ from: prev, to: mode }, 'mode changed');
    if (!this.started || this.stopped || this.pushTo) return;
    if (mode === 'refused') await this.closeListener();
    else await this.openListener();
  }

  /**
   * Push mode: connect out, serve that one connection like a client's (capture delay, link rate, the
   * fault of the mode), close, and again. A target that refuses or cannot be reached is retried after
   * pushRetryMs, logged once per outage. `refused` pushes nothing, like a camera that is off.
   */
  private async pushLoop(target: { host: string; port: number }): Promise<void> {
    let failing = false;
    while (!this.stopped) {
      if (this.modeValue === 'refused') {
        await this.sleep(this.opts.pushRetryMs);
        continue;
      }
      const s = net.connect({ ...target, noDelay: true, allowHalfOpen: true });
      const connected = await new Promise<boolean>((resolve) => {
        const done = (ok: boolean) => {
          this.abort.signal.removeEventListener('abort', aborted);
          resolve(ok);
        };
        const aborted = () => done(false);
        s.once('connect', () => done(true));
        s.once('error', () => done(false));
        this.abort.signal.addEventListener('abort', aborted, { once: true });
      });
      if (!connected) {
        s.on('error', () => {});
        s.destroy();
        if (!failing && !this.stopped) this.log?.warn({ target: `${target.host}:${target.port}` }, 'push target unreachable; retrying');
        failing = true;
        await this.sleep(this.opts.pushRetryMs);
        continue;
      }
      if (failing) this.log?.info({ target: `${target.host}:${target.port}` }, 'pushing again');
      failing = false;
      this.counters.connections++;
      s.on('error', () => {});
      s.resume();
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
      try {
        await this.serve(s);
      } catch (err) {
        this.log?.warn({ err }, 'pushing a frame failed');
      } finally {
        if (!s.destroyed) s.destroy();
      }
    }
  }

  private openListener(): Promise<void> {
    // a failed earlier operation (e.g. the port was taken meanwhile) must not block later ones
    this.listenerOp = this.listenerOp.catch(() => undefined).then(async () => {
      if (this.server || this.stopped || this.pushTo) return;
      const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.onConnection(s));
      await listen(server, { port: this.boundPort, host: this.opts.host, backlog: 511 }, (err) => this.log?.error({ err }, 'camera listener error'));
      this.server = server;
      this.boundPort = (server.address() as net.AddressInfo).port;
    });
    return this.listenerOp;
  }

  /** Closes the listener and drops every connection, as a camera that lost power would. */
  private closeListener(): Promise<void> {
    this.listenerOp = this.listenerOp.catch(() => undefined).then(async () => {
      const server = this.server;
      this.server = undefined;
      for (const s of this.sockets) s.destroy();
      this.queue.length = 0;
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return this.listenerOp;
  }

  private onConnection(s: net.Socket): void {
    this.counters.connections++;
    s.setNoDelay(true);
    s.on('error', () => {
      /* client went away; nothing to do */
    });
    // Like the ESP32, ignore what a client sends and keep sending after its half-close (allowHalfOpen),
    // e.g. `nc host port < /dev/null`; a hang ends when the client closes or half-closes.
    s.resume();
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    this.queue.push(s);
    this.pump();
  }

  private pump(): void {
    while (!this.busy && this.queue.length > 0) {
      const s = this.queue.shift()!;
      if (s.destroyed) continue;
      this.busy = true;
      void this.serve(s)
        .catch((err) => this.log?.warn({ err }, 'serving a connection failed'))
        .finally(() => {
          this.busy = false;
          if (!s.destroyed) s.destroy();
          this.pump();
        });
    }
  }

  private pick(): Behaviour {
    const m = this.modeValue;
    if (m !== 'flaky') return m;
    if (this.random() >= this.opts.faultRate) return 'ok';
    return FAULTS[Math.floor(this.random() * FAULTS.length)];
  }

  private countFault(kind: string): void {
    this.counters.faultsInjected++;
    this.faultsByKind[kind] = (this.faultsByKind[kind] ?? 0) + 1;
  }

  private async serve(s: net.Socket): Promise<void> {
    const behaviour = this.pick();
    if (behaviour !== 'ok') this.countFault(behaviour);
    if (behaviour === 'empty') {
      await this.finish(s);
      return;
    }
    if (behaviour === 'refused') {
      // flaky only: the camera drops off the network for a moment.
      s.destroy();
      if (this.pushTo) {
        await this.sleep(this.opts.refusedMs);
        return;
      }
      await this.closeListener();
      this.reopenTimer = this.clock.setTimeout(() => {
        if (this.modeValue !== 'refused') void this.openListener().catch((err) => this.log?.error({ err }, 'could not reopen the camera port'));
      }, this.opts.refusedMs);
      return;
    }
    if (behaviour === 'hang-accept') {
      await this.hang(s);
      return;
    }
    await this.sleep(this.opts.captureMs);
    if (s.destroyed) return;
    if (behaviour === 'frozen') {
      // a locked-up ESP32-CAM: the frame it froze on, the very same bytes on every connection
      this.frozenFrame ??= this.ring.next().data;
      if (await this.send(s, this.frozenFrame)) await this.finish(s);
      return;
    }
    const { data } = this.ring.next();
    switch (behaviour) {
      case 'ok':
        if (await this.send(s, data)) {
          if (await this.finish(s)) this.counters.framesSent++;
        }
        return;
      case 'truncated':
        if (await this.send(s, data.subarray(0, Math.floor(data.length * 0.6)))) await this.finish(s);
        return;
      case 'not-jpeg':
        if (await this.send(s, NOT_JPEG_BYTES)) await this.finish(s);
        return;
      case 'reset':
        if (await this.send(s, data.subarray(0, Math.floor(data.length / 2)))) {
          await this.drained(s);
          s.resetAndDestroy();
        }
        return;
      case 'hang-mid':
        if (await this.send(s, data.subarray(0, Math.floor(data.length / 2)))) await this.hang(s);
        return;
      case 'oversize': {
        const big = this.ring.frame(this.ring.lastSeq, this.oversizePadding());
        if (await this.send(s, big)) await this.finish(s);
        return;
      }
    }
  }

  private oversizePadding(): Buffer {
    if (!this.oversizePad) this.oversizePad = paddingSegments(Math.ceil(this.opts.oversizeMb * 1024 * 1024) + 1024);
    return this.oversizePad;
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.clock.clearTimeout(t);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = this.clock.setTimeout(done, ms);
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Writes data at the link rate. Resolves false when the client went away or stopped reading. */
  private async send(s: net.Socket, data: Buffer): Promise<boolean> {
    const kbps = this.opts.linkKbps;
    if (kbps <= 0) return this.write(s, data);
    const bytesPerMs = (kbps * 1000) / 8 / 1000;
    const chunk = Math.max(256, Math.floor(bytesPerMs * 20)); // ~20 ms slices
    for (let off = 0; off < data.length; off += chunk) {
      const piece = data.subarray(off, off + chunk);
      if (!(await this.write(s, piece))) return false;
      await this.sleep(piece.length / bytesPerMs);
      if (this.abort.signal.aborted) return false;
    }
    return true;
  }

  private async write(s: net.Socket, data: Buffer): Promise<boolean> {
    if (s.destroyed || !s.writable) return false;
    this.counters.bytesSent += data.length;
    if (s.write(data)) return true;
    return this.drained(s);
  }

  /** Waits until the socket's buffer is flushed to the kernel (or it closes / times out). */
  private drained(s: net.Socket): Promise<boolean> {
    if (s.writableLength === 0) return Promise.resolve(!s.destroyed);
    return this.waitFor(s, 'drain');
  }

  /** end()s the socket and waits until the data is handed to the kernel. */
  private finish(s: net.Socket): Promise<boolean> {
    if (s.destroyed) return Promise.resolve(false);
    s.end();
    return this.waitFor(s, 'finish');
  }

  private waitFor(s: net.Socket, event: 'drain' | 'finish'): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        this.clock.clearTimeout(timer);
        s.off(event, onOk);
        s.off('close', onClose);
        this.abort.signal.removeEventListener('abort', onClose);
        if (!ok) s.destroy();
        resolve(ok);
      };
      const onOk = () => done(true);
      const onClose = () => done(false);
      const timer = this.clock.setTimeout(() => done(false), this.opts.writeTimeoutMs);
      s.once(event, onOk);
      s.once('close', onClose);
      this.abort.signal.addEventListener('abort', onClose, { once: true });
    });
  }

  /** Holds the connection without sending: until the client closes, hangMs passes, or stop(). */
  private hang(s: net.Socket): Promise<void> {
    return new Promise((resolve) => {
      if (s.destroyed) return resolve();
      const done = () => {
        this.clock.clearTimeout(timer);
        s.off('close', done);
        s.off('end', done);
        this.abort.signal.removeEventListener('abort', done);
        s.destroy();
        resolve();
      };
      const timer = this.opts.hangMs > 0 ? this.clock.setTimeout(done, this.opts.hangMs) : undefined;
      s.once('close', done);
      s.once('end', done);
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }
}
