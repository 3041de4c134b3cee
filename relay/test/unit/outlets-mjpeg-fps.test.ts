/**
 * `?fps=N` on /stream.mjpg: parsing of the value, the per-viewer cap (FpsCap, on a FakeClock) and
 * the streamer with capped and uncapped viewers side by side (frames skipped for a cap are not drops).
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { CidrList, createLogger } from '@camrelay/common';
import { FrameStore } from '../../src/frame-store';
import { RelayMetrics } from '../../src/metrics';
import { ClientLimiter } from '../../src/outlets/limits';
import { FpsCap, MAX_FPS_PARAM, MjpegStreamer, PART_TRAILER, STREAM_PREAMBLE, parseFpsParam } from '../../src/outlets/mjpeg';
import { FakeClock, fakeJpeg } from '../../../test-support';

describe('parseFpsParam', () => {
  test('absent: no cap', () => {
    expect(parseFpsParam(null)).toBeUndefined();
    expect(parseFpsParam(undefined)).toBeUndefined();
  });

  test.each([
    ['5', 5],
    ['1', 1],
    ['0.5', 0.5],
    ['2.25', 2.25],
    ['1000', 1000],
    ['007', 7],
  ])('%s -> %d', (v, n) => {
    expect(parseFpsParam(v)).toBe(n);
  });

  test.each(['', '0', '0.0', '-1', 'abc', '1001', '1e3', 'Infinity', 'NaN', ' 5', '5fps', '0x10', '1.', '.5', '5,5'])('%j is refused with a message', (v) => {
    const r = parseFpsParam(v);
    expect(r).toBeInstanceOf(Error);
    expect((r as Error).message).toBe(`fps must be a number above 0 and at most ${MAX_FPS_PARAM}`);
  });

  test('a lower maximum (the camera MAX_FPS) is honoured', () => {
    expect(parseFpsParam('10', 10)).toBe(10);
    expect((parseFpsParam('11', 10) as Error).message).toBe('fps must be a number above 0 and at most 10');
  });
});

/** How many of the frames arriving at `times` (ms) the cap lets through. */
function admitted(fps: number, times: number[]): number {
  const clock = new FakeClock(0);
  const cap = new FpsCap(fps, () => clock.now());
  let n = 0;
  for (const t of times) {
    clock.advance(t - clock.now());
    if (cap.admit()) n++;
  }
  return n;
}
const every = (ms: number, count: number, jitter = (_i: number) => 0) => Array.from({ length: count }, (_, i) => i * ms + jitter(i));

describe('FpsCap', () => {
  test('a 10 fps camera capped at 3 fps gives 3 fps, not the 2.5 fps of a plain minimum interval', () => {
    // 10 s of frames every 100 ms
    const n = admitted(3, every(100, 100));
    expect(n).toBeGreaterThanOrEqual(29);
    expect(n).toBeLessThanOrEqual(31);
  });

  test('a cap above the camera rate changes nothing', () => {
    expect(admitted(20, every(100, 100))).toBe(100);
  });

  test('a camera at the cap rate with jitter keeps every frame', () => {
    // 2 fps, each frame up to 20 ms early or late
    expect(admitted(2, every(500, 40, (i) => (i % 2 ? -20 : 20)))).toBe(40);
  });

  test('a fast source never gets more than the burst over the rate', () => {
    // 1000 frames in one second, capped at 5 fps: at most 1.5 + 5
    const n = admitted(5, every(1, 1000));
    expect(n).toBeGreaterThanOrEqual(5);
    expect(n).toBeLessThanOrEqual(6);
    // and after a long pause no burst beyond the bucket
    const clock = new FakeClock(0);
    const cap = new FpsCap(5, () => clock.now());
    clock.advance(60_000);
    let burst = 0;
    for (let i = 0; i < 10; i++) if (cap.admit()) burst++;
    expect(burst).toBe(1);
  });

  test('fractional rates: 0.5 fps is one frame every 2 s', () => {
    expect(admitted(0.5, every(100, 200))).toBeGreaterThanOrEqual(10);
    expect(admitted(0.5, every(100, 200))).toBeLessThanOrEqual(11);
  });
});

/** A stand-in for http.ServerResponse: records the frames written; write callbacks run on setImmediate. */
class FakeResponse extends EventEmitter {
  readonly frames: Buffer[] = [];
  writableNeedDrain = false;
  destroyed = false;
  socket = undefined;
  private part = 0;
  writeHead(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
    if (chunk !== STREAM_PREAMBLE && chunk !== PART_TRAILER && this.part++ % 2 === 1) this.frames.push(chunk);
    if (cb) setImmediate(() => cb());
    return true;
  }
  end(): void {
    this.destroyed = true;
    setImmediate(() => this.emit('close'));
  }
  destroy(): void {
    this.end();
  }
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe('MjpegStreamer with ?fps caps', () => {
  const clock = new FakeClock(0);
  const metrics = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0 });
  const log = createLogger({ name: 't', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const limiter = new ClientLimiter({ maxClients: 1000, maxClientsPerIp: 1000, allow: new CidrList([]) }, { metrics, log, now: () => 0 });
  const store = new FrameStore();
  const streamer = new MjpegStreamer({ writeTimeoutMs: 60_000, maxFrameAgeMs: 1000, now: () => clock.now() }, { store, metrics, limiter });
  const dropped = async () => (await metrics.framesDropped.get()).values[0]?.value ?? 0;

  afterAll(async () => {
    await streamer.endAll(0);
    store.close();
  });

  test('each viewer gets its own rate; the uncapped one every frame; skipped frames are not drops', async () => {
    const add = (fps?: number) => {
      const res = new FakeResponse();
      streamer.add(res as unknown as ServerResponse, { fps });
      return res;
    };
    const all = add();
    const two = add(2);
    const five = add(5);
    const frames: Buffer[] = [];
    // 4 s of a 10 fps camera
    for (let i = 1; i <= 40; i++) {
      frames.push(store.publish(fakeJpeg(i, 500)).data);
      await nextTurn();
      await nextTurn();
      clock.advance(100);
    }
    expect(all.frames).toEqual(frames);
    expect(two.frames.length).toBeGreaterThanOrEqual(8);
    expect(two.frames.length).toBeLessThanOrEqual(10);
    expect(five.frames.length).toBeGreaterThanOrEqual(20);
    expect(five.frames.length).toBeLessThanOrEqual(22);
    // capped viewers get frames of the live sequence, in order, the first one at once
    expect(two.frames[0]).toBe(frames[0]);
    const idx = two.frames.map((f) => frames.indexOf(f));
    expect(idx.every((x, i) => x >= 0 && (i === 0 || x > idx[i - 1]))).toBe(true);
    expect(await dropped()).toBe(0);
  });
});
