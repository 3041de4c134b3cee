/**
 * Push mode (the seed's Option 3): the fake camera connects out and sends one JPEG per connection,
 * again and again, to a listener standing in for the relay's ingest port.
 */
import net from 'node:net';
import { checkJpeg } from '@camrelay/common';
import { FakeClock, waitFor } from '../../../test-support';
import { FakeCamera } from '../../src/camera';
import { loadConfig } from '../../src/config';
import { FrameRing, frameSeqOf } from '../../src/frames';

/** An ingest listener: collects what each connection delivered before it closed. */
async function ingest(port = 0): Promise<{ port: number; frames: Buffer[]; close(): Promise<void> }> {
  const frames: Buffer[] = [];
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      frames.push(Buffer.concat(chunks));
      s.end();
    });
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    frames,
    close: () => new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      srv.close(() => r());
    }),
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

test('one whole JPEG per connection, sequence numbers increasing, nothing listening', async () => {
  const target = await ingest();
  cleanups.push(target.close);
  const cam = new FakeCamera({ pushTo: `127.0.0.1:${target.port}`, captureMs: 0, ring: new FrameRing({ width: 160, height: 120, ringSize: 4 }) });
  cleanups.push(() => cam.stop());
  await cam.start();
  await waitFor(() => target.frames.length >= 3, 5000, 'three pushed frames');
  const seqs = target.frames.slice(0, 3).map((f) => {
    expect(checkJpeg(f).ok).toBe(true);
    return frameSeqOf(f);
  });
  expect(seqs).toEqual([1, 2, 3]);
  expect(cam.stats.listening).toBe(false);
});

test('an unreachable target is retried every pushRetryMs until it answers; refused pushes nothing; stop() ends it', async () => {
  const clock = new FakeClock();
  const probe = await ingest();
  const port = probe.port;
  await probe.close(); // nothing listens there now
  const cam = new FakeCamera({ pushTo: `127.0.0.1:${port}`, captureMs: 0, pushRetryMs: 500, clock, ring: new FrameRing({ width: 160, height: 120, ringSize: 4 }) });
  await cam.start();
  await waitFor(() => clock.pending().includes(500), 5000, 'waiting to retry');
  expect(cam.stats.connections).toBe(0);
  const target = await ingest(port);
  cleanups.push(target.close);
  await clock.advanceAsync(500);
  await waitFor(() => target.frames.length >= 1, 5000, 'pushing again after the retry');

  await cam.setMode('refused');
  await clock.advanceAsync(1500); // the connection in flight (if any) ends
  await new Promise((r) => setTimeout(r, 50));
  const n = target.frames.length;
  const conns = cam.stats.connections;
  for (let i = 0; i < 6; i++) {
    await clock.advanceAsync(500);
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(target.frames.length).toBe(n);
  expect(cam.stats.connections).toBe(conns);
  await cam.stop();
  const after = cam.stats.connections;
  await clock.advanceAsync(2000);
  expect(cam.stats.connections).toBe(after);
});

test('FAKE_CAMERA_PUSH_TO is host:port', () => {
  expect(loadConfig({ FAKE_CAMERA_PUSH_TO: 'relay:1236' }).pushTo).toBe('relay:1236');
  expect(() => loadConfig({ FAKE_CAMERA_PUSH_TO: 'relay' })).toThrow(/FAKE_CAMERA_PUSH_TO.*host:port/);
  expect(() => loadConfig({ FAKE_CAMERA_PUSH_TO: 'relay:70000' })).toThrow(/host:port/);
});
