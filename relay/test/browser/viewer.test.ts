/**
 * The viewer page in real headless Chromium (Debian `chromium`, driven by playwright-core): the HTTP
 * outlet runs in-process and is fed real, changing JPEGs from the fake camera's frame generator.
 * Leaves a screenshot in reports/viewer.png.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { FrameRing } from '../../../fake-camera/src/frames';
import { ROOT, describeWith, findExecutable, waitFor } from '../../../test-support';
import { Rig, startRig } from '../integration/outlets-fixture';
import type { SourceStatus } from '../../src/outlets';

// What the page-side functions below use (the test tsconfig has no DOM lib). Functions, not strings:
// a string predicate is eval'd in the page, which the viewer's Content-Security-Policy forbids.
interface PageElement {
  complete?: boolean;
  naturalWidth?: number;
  textContent: string | null;
}
declare const document: { getElementById(id: string): PageElement };

const CHROMIUM = findExecutable(['/usr/bin/chromium', '/usr/bin/chromium-browser']);
const TOKEN = 'browser-test-token';
const FPS = 10;

describeWith('chromium', CHROMIUM !== undefined, 'viewer page in headless Chromium', () => {
  let browser: Browser;
  let rig: Rig;
  let feed: NodeJS.Timeout | undefined;
  let page: Page;
  /** what the rig's /status.json reports about the camera; tests change it in place */
  let camera: SourceStatus;
  const problems: string[] = [];

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    problems.length = 0;
    camera = { cameraUp: true, mode: 'pull' };
    rig = await startRig({ viewerToken: TOKEN, status: camera });
    const ring = new FrameRing({ width: 320, height: 240, ringSize: 8, quality: 70 });
    rig.store.publish(ring.next().data);
    feed = setInterval(() => rig.store.publish(ring.next().data), 1000 / FPS);
    page = await browser.newPage({ viewport: { width: 900, height: 760 } });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('requestfailed', (r) => {
      // the MJPEG request is aborted when the page closes; anything else is a problem
      if (!r.url().includes('stream.mjpg')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    });
  }, 30_000); // encoding the frames and opening a page take seconds on a loaded machine

  afterEach(async () => {
    clearInterval(feed);
    await page?.close();
    await rig?.stop();
  });

  const statText = (id: string) => page.locator(`#${id}`).innerText();

  async function expectLiveImage(): Promise<void> {
    await page.waitForFunction(() => document.getElementById('live').complete === true && (document.getElementById('live').naturalWidth ?? 0) > 0, undefined, { timeout: 15_000 });
    expect(await page.evaluate(() => document.getElementById('live').naturalWidth)).toBe(320);
    // the picture changes: two element screenshots some frames apart differ
    const a = await page.locator('#live').screenshot();
    let changed = false;
    for (let i = 0; i < 20 && !changed; i++) {
      await page.waitForTimeout(250);
      changed = !(await page.locator('#live').screenshot()).equals(a);
    }
    expect(changed).toBe(true);
  }

  async function expectStats(viewers: string): Promise<void> {
    await page.waitForFunction(
      () => /fps$/.test(document.getElementById('fps').textContent ?? '') && (document.getElementById('seq').textContent ?? '').startsWith('#'),
      undefined,
      { timeout: 15_000 },
    );
    // let the 5 s frame-rate window fill
    await page.waitForTimeout(1500);
    const fps = parseFloat(await statText('fps'));
    expect(fps).toBeGreaterThan(FPS * 0.6);
    expect(fps).toBeLessThan(FPS * 1.4);
    const age = await statText('age');
    expect(age).toMatch(/^\d+ ms$/);
    expect(parseInt(age, 10)).toBeLessThan(1000);
    expect(await statText('viewers')).toBe(viewers);
    expect(await statText('camera')).toBe('camera up');
  }

  test('shows the live MJPEG stream, which changes, and sensible stats; the ?token= is passed on', async () => {
    await page.goto(`${rig.base}/?token=${TOKEN}`);
    await expectLiveImage();
    expect(await statText('mode')).toBe('live MJPEG stream');
    await expectStats('1');
    expect(rig.limiter.clients('mjpeg')).toBe(1);
    expect(await rig.metric('relay_clients_rejected_total', { reason: 'unauthorized' })).toBe(0);
    fs.mkdirSync(path.join(ROOT, 'reports'), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, 'reports', 'viewer.png'), fullPage: true });
    expect(problems).toEqual([]);
  }, 60_000);

  test('snapshot polling mode (?mode=poll) also shows a changing image', async () => {
    await page.goto(`${rig.base}/?mode=poll&token=${TOKEN}`);
    await expectLiveImage();
    expect(await statText('mode')).toBe('snapshot polling');
    await expectStats('0');
    expect(await rig.metric('relay_frames_served_total', { protocol: 'snapshot' })).toBeGreaterThan(3);
    expect(problems).toEqual([]);
  }, 60_000);

  test('after the relay was away, the page reopens the stream by itself', async () => {
    await page.goto(`${rig.base}/?token=${TOKEN}`);
    await expectLiveImage();
    await rig.restartHttp(2500);
    expect(rig.http.mjpeg.size).toBe(0);
    // the stats poll notices the relay is back and the page opens a new stream
    await waitFor(() => rig.http.mjpeg.size === 1, 15_000, 'stream reopened');
    await expectLiveImage();
    expect(await statText('mode')).toBe('live MJPEG stream');
    problems.length = 0; // the failed polls while the relay was away are expected
  }, 60_000);

  test('a frozen camera: the badge says "camera frozen" (and why), down wins over it, "camera up" once it thaws', async () => {
    await page.goto(`${rig.base}/?token=${TOKEN}`);
    await expectLiveImage();
    await waitFor(async () => (await statText('camera')) === 'camera up', 10_000, 'camera up');
    camera.frozen = true;
    await waitFor(async () => (await statText('camera')) === 'camera frozen', 10_000, 'camera frozen');
    expect(await page.locator('#camera').getAttribute('class')).toBe('badge frozen');
    expect(await page.locator('#camera').getAttribute('title')).toMatch(/very same frame.*locked up/);
    camera.cameraUp = false; // down says more than frozen
    await waitFor(async () => (await statText('camera')) === 'camera down', 10_000, 'camera down');
    camera.cameraUp = true;
    camera.frozen = false;
    await waitFor(async () => (await statText('camera')) === 'camera up', 10_000, 'camera thawed');
    expect(await page.locator('#camera').getAttribute('class')).toBe('badge up');
    expect(problems).toEqual([]);
  }, 60_000);

  test('without the token the page itself is refused', async () => {
    const r = await page.goto(`${rig.base}/`);
    expect(r?.status()).toBe(401);
  }, 30_000);
});
