/**
 * The relay runs with V8's Maglev tier off (relay/src/v8-tiering.ts; the soak found that Maglev keeps
 * compiling lukewarm functions for 15-20 minutes after a start, which the relay's memory shows). The
 * daemon as built (relay/dist/main.js) under load, with V8's own trace of what it compiles: hot code
 * still reaches TurboFan, nothing is compiled by Maglev.
 */
import path from 'node:path';
import { FAST_ENV, ROOT, TestCamera, jpeg, killAllChildren, rawFetch, spawnChild } from '../../../test-support';

jest.setTimeout(60_000);

let cam: TestCamera | undefined;
afterEach(async () => {
  await killAllChildren();
  await cam?.stop();
  cam = undefined;
});

/** V8's --trace-opt lines: "[compiling method <JSFunction f ...> (target MAGLEV) ...]" */
const compiles = (stdout: string, target: string) => stdout.split('\n').filter((l) => l.startsWith('[compiling method') && l.includes(`(target ${target})`));

test('a loaded relay optimises its hot code with TurboFan and compiles nothing of its own with Maglev', async () => {
  cam = new TestCamera((s, n) => s.end(jpeg(n, 4096)));
  await cam.start();
  const relay = spawnChild(process.execPath, ['--trace-opt', path.join(ROOT, 'relay', 'dist', 'main.js')], {
    env: { ...process.env, ...FAST_ENV, LOG_LEVEL: 'info', CAMERA_HOST: '127.0.0.1', CAMERA_PORT: String(cam.port), MAX_FPS: '50', IDLE_FPS: '50' },
  });
  const started = await relay.waitForLog((l) => l.msg === 'relay started', 15_000);
  const port = started.clientPort as number;
  // Enough one-shot viewers (accept, write a frame, close) to make the serving path hot.
  for (let round = 0; round < 150; round++) {
    const got = await Promise.all(Array.from({ length: 10 }, () => rawFetch(port)));
    for (const r of got) expect(r.data.length).toBeGreaterThan(4000);
  }
  const out = relay.stdout();
  expect(compiles(out, 'TURBOFAN_JS').length).toBeGreaterThan(0);
  // Node itself compiles a couple of its path helpers while it resolves main.js, before any of the
  // relay's code runs; with Maglev on, this load makes it compile a few hundred functions.
  expect(compiles(out, 'MAGLEV').length).toBeLessThanOrEqual(4);
});
