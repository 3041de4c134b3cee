/**
 * TCP probing on its own: the real connector's deadline on the injected clock, and the overlapping
 * probe race (who wins, who is aborted, when the attempt gives up) with stand-in connects on fake time.
 */
import net from 'node:net';
import { FakeClock, closedPort } from '../../../test-support';
import { SocketFactory, SocketRequest, probeBudgetMs, probeConnect, tcpConnector } from '../../src/tcp-probe';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listening(): Promise<number> {
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

const req = (port: number, timeoutMs = 1000, signal = new AbortController().signal): SocketRequest => ({ host: '127.0.0.1', port, timeoutMs, signal });

describe('tcpConnector', () => {
  test('resolves with a connected socket and leaves no timer behind', async () => {
    const clock = new FakeClock();
    const sock = await tcpConnector(clock)(req(await listening()));
    cleanups.push(() => void sock.destroy());
    expect(sock.remotePort).toBeGreaterThan(0);
    expect(clock.pending()).toEqual([]);
  });

  test('a refused connect rejects with its code', async () => {
    const clock = new FakeClock();
    await expect(tcpConnector(clock)(req(await closedPort()))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(clock.pending()).toEqual([]);
  });

  test('the deadline runs on the injected clock: ETIMEDOUT when it passes before the connect', async () => {
    const clock = new FakeClock();
    const p = tcpConnector(clock)(req(await listening(), 700));
    expect(clock.pending()).toEqual([700]);
    clock.advance(700); // before the event loop could deliver the connect
    await expect(p).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  test('an abort rejects with ABORT_ERR and clears the deadline', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    const p = tcpConnector(clock)(req(await listening(), 700, ac.signal));
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' });
    expect(clock.pending()).toEqual([]);
  });
});

/** Connects that settle only when the test says so. */
function standIn() {
  const calls: { req: SocketRequest; resolve: (s: net.Socket) => void; reject: (code: string) => void; sock: net.Socket & { destroyed: boolean } }[] = [];
  const connect: SocketFactory = (r) =>
    new Promise((resolve, reject) => {
      const fake = { destroyed: false, destroy: () => void (fake.destroyed = true) };
      const sock = fake as unknown as net.Socket & { destroyed: boolean };
      const fail = (code: string) => reject(Object.assign(new Error(code), { code }));
      r.signal.addEventListener('abort', () => fail('ABORT_ERR'), { once: true });
      calls.push({ req: r, resolve: () => resolve(sock), reject: fail, sock });
    });
  return { calls, connect };
}

function race(clock: FakeClock, connect: SocketFactory, signal = new AbortController().signal, connectTimeoutMs = 3000, probeMs = 100) {
  let settled: 'resolved' | 'rejected' | undefined;
  let value: net.Socket | NodeJS.ErrnoException | undefined;
  const p = probeConnect({ host: 'h', port: 22, connectTimeoutMs, probeMs, connect, clock, signal }).then(
    (s) => {
      settled = 'resolved';
      value = s;
      return s;
    },
    (e: NodeJS.ErrnoException) => {
      settled = 'rejected';
      value = e;
      throw e;
    },
  );
  p.catch(() => {});
  return { p, settled: () => settled, value: () => value };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('probeConnect (the overlapping probe race)', () => {
  test('budget: min(connect timeout, max(2 s, 4 x probe))', () => {
    expect(probeBudgetMs(10_000, 100)).toBe(2000);
    expect(probeBudgetMs(10_000, 1000)).toBe(4000);
    expect(probeBudgetMs(1500, 1000)).toBe(1500);
  });

  test('while nothing answers a new connect starts every probe interval, each with what is left of the budget', async () => {
    const clock = new FakeClock();
    const s = standIn();
    race(clock, s.connect);
    expect(s.calls.map((c) => c.req.timeoutMs)).toEqual([2000]);
    clock.advance(100);
    clock.advance(100);
    expect(s.calls.map((c) => c.req.timeoutMs)).toEqual([2000, 1900, 1800]);
    // no new connect once less than two probe intervals are left
    clock.advance(2000);
    expect(s.calls).toHaveLength(19);
    expect(s.calls[18].req.timeoutMs).toBe(200);
    expect(clock.pending()).toEqual([]);
  });

  test('the first connect through wins; the others are aborted, and a late winner is destroyed', async () => {
    const clock = new FakeClock();
    const s = standIn();
    const r = race(clock, s.connect);
    clock.advance(100);
    clock.advance(100);
    s.calls[1].resolve(s.calls[1].sock);
    await flush();
    expect(r.settled()).toBe('resolved');
    expect(r.value()).toBe(s.calls[1].sock);
    expect(s.calls.map((c) => c.req.signal.aborted)).toEqual([true, true, true]);
    expect(clock.pending()).toEqual([]); // no further probes
    clock.advance(1000);
    expect(s.calls).toHaveLength(3);
    // a connect that gets through after the race is over is not leaked
    const late = standIn();
    const r2 = race(clock, late.connect);
    clock.advance(100);
    late.calls[1].resolve(late.calls[1].sock);
    late.calls[0].resolve(late.calls[0].sock);
    await flush();
    expect(r2.value()).toBe(late.calls[1].sock);
    expect(late.calls[0].sock.destroyed).toBe(true);
    expect(late.calls[1].sock.destroyed).toBe(false);
  });

  test('a fast failure (refused) ends the attempt at once, whatever is still pending', async () => {
    const clock = new FakeClock();
    const s = standIn();
    const r = race(clock, s.connect);
    clock.advance(100);
    s.calls[0].reject('ECONNREFUSED');
    await flush();
    expect(r.settled()).toBe('rejected');
    expect(r.value()).toMatchObject({ code: 'ECONNREFUSED' });
    expect(s.calls[1].req.signal.aborted).toBe(true);
    expect(clock.pending()).toEqual([]);
  });

  test('a timeout ends the attempt only when it is the last connect still trying', async () => {
    const clock = new FakeClock();
    const s = standIn();
    const r = race(clock, s.connect, undefined, 3000, 1000); // budget 3000: probes at 0 and 1000 only
    clock.advance(1000);
    expect(s.calls).toHaveLength(2);
    expect(clock.pending()).toEqual([]);
    s.calls[0].reject('ETIMEDOUT');
    await flush();
    expect(r.settled()).toBeUndefined();
    s.calls[1].reject('ETIMEDOUT');
    await flush();
    expect(r.value()).toMatchObject({ code: 'ETIMEDOUT' });
  });

  test('a timeout while the next probe is still scheduled does not end the attempt', async () => {
    const clock = new FakeClock();
    const s = standIn();
    const r = race(clock, s.connect);
    s.calls[0].reject('ETIMEDOUT');
    await flush();
    expect(r.settled()).toBeUndefined();
    clock.advance(100);
    s.calls[1].resolve(s.calls[1].sock);
    await flush();
    expect(r.settled()).toBe('resolved');
  });

  test('the caller aborting ends the race with ABORT_ERR; an already aborted signal starts nothing', async () => {
    const clock = new FakeClock();
    const s = standIn();
    const ac = new AbortController();
    const r = race(clock, s.connect, ac.signal);
    clock.advance(100);
    ac.abort();
    await flush();
    expect(r.value()).toMatchObject({ code: 'ABORT_ERR' });
    expect(s.calls.every((c) => c.req.signal.aborted)).toBe(true);
    expect(clock.pending()).toEqual([]);

    const none = standIn();
    const r2 = race(clock, none.connect, AbortSignal.abort());
    await flush();
    expect(r2.value()).toMatchObject({ code: 'ABORT_ERR' });
    expect(none.calls).toHaveLength(0);
  });
});
