import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { CidrList, createLogger } from '@camrelay/common';
import { FrameStore } from '../../src/frame-store';
import { RelayMetrics } from '../../src/metrics';
import { ClientLimiter } from '../../src/outlets/limits';
import { BOUNDARY, MJPEG_CONTENT_TYPE, MjpegStreamer, PART_TRAILER, STREAM_PREAMBLE, partBytes, partHeader } from '../../src/outlets/mjpeg';
import { MultipartReader, fakeJpeg } from '../integration/outlets-fixture';

const frame = (seq: number, size: number) => ({ data: fakeJpeg(seq, size), seq, capturedAt: 1_700_000_000_000 + seq, publishedMono: 0 });

function encode(frames: ReturnType<typeof frame>[]): Buffer {
  const out: Buffer[] = [STREAM_PREAMBLE];
  for (const f of frames) out.push(partHeader(f), f.data, PART_TRAILER);
  return Buffer.concat(out);
}

describe('MJPEG framing', () => {
  test('content type names the boundary', () => {
    expect(MJPEG_CONTENT_TYPE).toBe(`multipart/x-mixed-replace; boundary=${BOUNDARY}`);
  });

  test('each part has Content-Type, Content-Length, seq and is followed by the boundary', () => {
    const h = partHeader(frame(7, 1234)).toString('latin1');
    expect(h).toMatch(/^Content-Type: image\/jpeg\r\n/);
    expect(h).toContain('Content-Length: 1234\r\n');
    expect(h).toContain('X-Frame-Seq: 7\r\n');
    expect(h.endsWith('\r\n\r\n')).toBe(true);
    expect(PART_TRAILER.toString()).toBe(`\r\n--${BOUNDARY}\r\n`);
    expect(STREAM_PREAMBLE.toString()).toBe(`--${BOUNDARY}\r\n`);
  });

  test('our own output parses back into the same frames, whatever the chunking', () => {
    const frames = [frame(1, 100), frame(2, 5000), frame(3, 17), frame(4, 65536)];
    const wire = encode(frames);
    expect(wire.length).toBe(STREAM_PREAMBLE.length + frames.reduce((n, f) => n + partBytes(partHeader(f), f), 0));
    for (const chunk of [wire.length, 1, 7, 1000]) {
      const r = new MultipartReader(BOUNDARY);
      for (let i = 0; i < wire.length; i += chunk) r.push(wire.subarray(i, i + chunk));
      expect(r.parts.map((p) => Number(p.headers['x-frame-seq']))).toEqual([1, 2, 3, 4]);
      r.parts.forEach((p, i) => {
        expect(p.headers['content-type']).toBe('image/jpeg');
        expect(Number(p.headers['content-length'])).toBe(frames[i].data.length);
        expect(p.body.equals(frames[i].data)).toBe(true);
      });
    }
  });

  test('a body containing the boundary text is still framed by Content-Length', () => {
    const f = frame(9, 200);
    Buffer.from(`\r\n--${BOUNDARY}\r\n`).copy(f.data, 50);
    const r = new MultipartReader(BOUNDARY);
    r.push(encode([f, frame(10, 64)]));
    expect(r.parts).toHaveLength(2);
    expect(r.parts[0].body.equals(f.data)).toBe(true);
  });

  test('the reader rejects a wrong Content-Length (so the integration tests can catch broken framing)', () => {
    const f = frame(1, 100);
    const bad = Buffer.concat([STREAM_PREAMBLE, partHeader({ ...f, data: Buffer.alloc(99) }), f.data, PART_TRAILER]);
    expect(() => new MultipartReader(BOUNDARY).push(bad)).toThrow(/boundary/);
  });
});

/** A stand-in for http.ServerResponse: records what is written; write callbacks run on setImmediate, or are held (`slow`). */
class FakeResponse extends EventEmitter {
  /** frames written (the Buffer object given to write(), in order) */
  readonly frames: Buffer[] = [];
  readonly headers: Buffer[] = [];
  readonly held: (() => void)[] = [];
  writableNeedDrain = false;
  destroyed = false;
  socket = undefined;
  private part = 0;

  constructor(readonly slow = false) {
    super();
  }

  writeHead(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
    if (chunk !== STREAM_PREAMBLE && chunk !== PART_TRAILER) {
      if (this.part++ % 2 === 0) this.headers.push(chunk);
      else this.frames.push(chunk);
    }
    if (cb) {
      if (this.slow) this.held.push(() => cb());
      else setImmediate(() => cb());
    }
    return true;
  }
  /** completes the held writes (a slow viewer catching up) */
  drain(): void {
    for (const cb of this.held.splice(0)) cb();
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

function streamerRig(sliceSize: number) {
  const metrics = new RelayMetrics({ version: 't', mode: 'pull', withDefaults: false, frameAgeSeconds: () => 0, clients: () => 0 });
  const log = createLogger({ name: 't', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const limiter = new ClientLimiter({ maxClients: 100_000, maxClientsPerIp: 100_000, allow: new CidrList([]) }, { metrics, log, now: () => 0 });
  const store = new FrameStore();
  const streamer = new MjpegStreamer({ writeTimeoutMs: 60_000, maxFrameAgeMs: 1000, sliceSize }, { store, metrics, limiter });
  const viewers = (n: number, slow = false) =>
    Array.from({ length: n }, () => {
      const res = new FakeResponse(slow);
      streamer.add(res as unknown as ServerResponse);
      return res;
    });
  const dropped = async () => (await metrics.framesDropped.get()).values[0]?.value ?? 0;
  const settle = async () => {
    while (streamer.broadcasting) await nextTurn();
    await nextTurn();
  };
  return { metrics, store, streamer, viewers, dropped, settle };
}

describe('MjpegStreamer fan-out', () => {
  let rig: ReturnType<typeof streamerRig> | undefined;
  afterEach(async () => {
    await rig?.streamer.endAll(0);
    rig = undefined;
  });

  test('yields to the event loop between slices: work queued meanwhile waits at most one slice; every viewer gets the same Buffer once', async () => {
    rig = streamerRig(64);
    const vs = rig.viewers(1000);
    const frame = rig.store.publish(fakeJpeg(1, 5000));
    const got = () => vs.filter((v) => v.frames.length > 0).length;
    expect(got()).toBe(64); // the first slice runs at once
    expect(rig.streamer.broadcasting).toBe(true);
    // what the loop runs meanwhile (a fetch's socket callback, another camera, a timer) comes after at most one more slice
    const seenByOtherWork = await new Promise<number>((r) => setImmediate(() => r(got())));
    expect(seenByOtherWork).toBeLessThanOrEqual(128);
    await rig.settle();
    expect(got()).toBe(1000);
    for (const v of vs) {
      expect(v.frames).toHaveLength(1);
      expect(v.frames[0]).toBe(frame.data); // shared by reference, never copied
      expect(v.headers[0]).toBe(vs[0].headers[0]); // one part header for every viewer
    }
    expect(await rig.dropped()).toBe(0);
  });

  test('a newer frame takes over an unfinished fan-out: viewers not reached get only the newer one (dropped counted), the rest get it next', async () => {
    rig = streamerRig(100);
    const vs = rig.viewers(1000);
    const f1 = rig.store.publish(fakeJpeg(1, 3000));
    const f2 = rig.store.publish(fakeJpeg(2, 3000)); // before the fan-out of f1 got past its first slice
    await rig.settle();
    vs.forEach((v, i) => {
      // viewers 0-99 were writing f1 and get f2 after it; the next slice went on from viewer 100 with f2
      expect(v.frames).toEqual(i < 100 ? [f1.data, f2.data] : [f2.data]);
    });
    expect(await rig.dropped()).toBe(900);
  });

  test('a viewer that cannot keep up gets the latest frame when it catches up; skipped frames are counted; the others get every frame', async () => {
    rig = streamerRig(64);
    const [slow] = rig.viewers(1, true);
    const fast = rig.viewers(3);
    const frames = [];
    for (const i of [1, 2, 3, 4]) {
      frames.push(rig.store.publish(fakeJpeg(i, 1000)));
      await rig.settle(); // the fast viewers finish each frame before the next
    }
    expect(slow.frames).toEqual([frames[0].data]); // still writing the first one; holds only the latest as pending
    slow.drain();
    await rig.settle();
    expect(slow.frames).toEqual([frames[0].data, frames[3].data]);
    expect(await rig.dropped()).toBe(2); // frames 2 and 3, for the slow viewer only
    for (const v of fast) expect(v.frames).toEqual(frames.map((f) => f.data));
    slow.drain();
  });

  test('viewers leaving during a fan-out are skipped; the next frame goes round the ones left', async () => {
    rig = streamerRig(10);
    const vs = rig.viewers(50);
    rig.store.publish(fakeJpeg(1, 1000));
    for (const v of vs.slice(20, 40)) v.emit('close');
    await rig.settle();
    expect(rig.streamer.size).toBe(30);
    const f2 = rig.store.publish(fakeJpeg(2, 1000));
    await rig.settle();
    vs.forEach((v, i) => {
      if (i >= 20 && i < 40) expect(v.frames.includes(f2.data)).toBe(false);
      else expect(v.frames[v.frames.length - 1]).toBe(f2.data);
    });
  });
});
