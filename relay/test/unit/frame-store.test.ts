import { FakeClock } from '../../../test-support';
import { FrameStore } from '../../src/frame-store';

const jpeg = (n: number) => Buffer.from([0xff, 0xd8, 0xff, n, 0xff, 0xd9]);

describe('FrameStore', () => {
  test('publish numbers frames and keeps only the latest, shared by reference', () => {
    let now = 1000;
    const s = new FrameStore(() => now);
    expect(s.latest).toBeUndefined();
    expect(s.ageMs()).toBe(Infinity);
    const a = jpeg(1);
    const f1 = s.publish(a);
    expect(f1.seq).toBe(1);
    expect(f1.data).toBe(a);
    expect(f1.capturedAt).toBe(1000);
    expect(Object.isFrozen(f1)).toBe(true);
    const f2 = s.publish(jpeg(2), 990);
    expect(f2.seq).toBe(2);
    expect(s.latest).toBe(f2);
    now = 1100;
    expect(s.ageMs()).toBe(110);
  });

  test('fresh() honours the maximum age', () => {
    let now = 0;
    const s = new FrameStore(() => now);
    expect(s.fresh(1000)).toBeUndefined();
    const f = s.publish(jpeg(1));
    now = 1000;
    expect(s.fresh(1000)).toBe(f);
    now = 1001;
    expect(s.fresh(1000)).toBeUndefined();
    // MAX_FRAME_AGE_MS=0: never an existing frame, not even one from this very millisecond
    const g = s.publish(jpeg(2));
    expect(s.ageMs()).toBe(0);
    expect(s.fresh(1)).toBe(g);
    expect(s.fresh(0)).toBeUndefined();
  });

  test('waiters get the next frame, all of them the very same one', async () => {
    const s = new FrameStore();
    s.publish(jpeg(1));
    const waits = [s.next(1, 5000), s.next(1, 5000), s.next(1, 5000)];
    expect(s.demand).toBe(3);
    const f = s.publish(jpeg(2));
    const got = await Promise.all(waits);
    for (const g of got) expect(g).toBe(f);
    expect(s.demand).toBe(0);
  });

  test('next() resolves at once when a newer frame exists', async () => {
    const s = new FrameStore();
    const f = s.publish(jpeg(1));
    await expect(s.next(0, 10)).resolves.toBe(f);
    expect(s.demand).toBe(0);
  });

  test('next() times out with undefined and stops counting as demand', async () => {
    const clock = new FakeClock();
    const s = new FrameStore(clock);
    const events: boolean[] = [];
    s.on('demand', (d) => events.push(d));
    let got: unknown = 'pending';
    void s.next(0, 50).then((f) => (got = f));
    await clock.advanceAsync(49);
    expect(got).toBe('pending');
    expect(s.demand).toBe(1);
    await clock.advanceAsync(1);
    expect(got).toBeUndefined();
    expect(events).toEqual([true, false]);
    expect(s.demand).toBe(0);
  });

  test('an aborted wait resolves undefined; an already aborted signal never waits', async () => {
    const s = new FrameStore();
    const ac = new AbortController();
    const p = s.next(0, 10_000, ac.signal);
    expect(s.demand).toBe(1);
    ac.abort();
    await expect(p).resolves.toBeUndefined();
    expect(s.demand).toBe(0);
    await expect(s.next(0, 10_000, ac.signal)).resolves.toBeUndefined();
    expect(s.demand).toBe(0);
  });

  test('demand events fire on 0 -> >0 and back only, for watchers and waiters together', async () => {
    const s = new FrameStore();
    const events: boolean[] = [];
    s.on('demand', (d) => events.push(d));
    const release1 = s.watch();
    const release2 = s.watch();
    const wait = s.next(0, 10_000);
    expect(s.demand).toBe(3);
    release1();
    release1(); // idempotent
    expect(s.demand).toBe(2);
    s.publish(jpeg(1));
    await wait;
    expect(s.demand).toBe(1);
    release2();
    expect(s.demand).toBe(0);
    expect(events).toEqual([true, false]);
  });

  test('close() releases every waiter', async () => {
    const s = new FrameStore();
    const w = [s.next(0, 10_000), s.next(0, 10_000)];
    s.close();
    await expect(Promise.all(w)).resolves.toEqual([undefined, undefined]);
    expect(s.demand).toBe(0);
  });

  test('nudge() emits at most once per published frame', () => {
    const s = new FrameStore();
    let n = 0;
    s.on('nudge', () => n++);
    s.nudge();
    s.nudge();
    expect(n).toBe(1);
    s.publish(jpeg(1));
    s.nudge();
    s.nudge();
    expect(n).toBe(2);
  });

  test('frame events carry every published frame', () => {
    const s = new FrameStore();
    const seen: number[] = [];
    s.on('frame', (f) => seen.push(f.seq));
    s.publish(jpeg(1));
    s.publish(jpeg(2));
    expect(seen).toEqual([1, 2]);
  });
});
