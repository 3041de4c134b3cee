import { sleep } from '@camrelay/common';
import { FakeClock } from '../../fake-clock';

describe('FakeClock', () => {
  test('timers fire only when time is advanced, in order, and report their delays while pending', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 200);
    const a = clock.setTimeout(() => fired.push('a'), 100);
    clock.setTimeout(() => fired.push('c'), 300);
    expect(clock.pending()).toEqual([200, 100, 300]);
    clock.clearTimeout(a);
    const t0 = clock.now();
    clock.advance(250);
    expect(fired).toEqual(['b']);
    expect(clock.now()).toBe(t0 + 250);
    expect(clock.pending()).toEqual([300]);
  });

  test('advanceAsync lets async code chain timers (sleep through the Clock seam)', async () => {
    const clock = new FakeClock();
    let done = false;
    void (async () => {
      await sleep(1000, undefined, clock);
      await sleep(1000, undefined, clock);
      done = true;
    })();
    await clock.advanceAsync(1999);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    expect(done).toBe(true);
  });
});
