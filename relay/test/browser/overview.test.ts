/**
 * The overview (/) and one camera's page (/cam/<name>/) in real headless Chromium (Debian
 * `chromium`, driven by playwright-core). Two rigs:
 * - a stub relay (node:http in this process) serving the page strings and a status.json the test
 *   controls, with real, changing JPEGs: what the page does with each field;
 * - the real multi-camera relay (relay/dist) with a CAMERAS_FILE of three cameras: front (public,
 *   a fake camera), garden (private, a fake camera), attic (public, nobody listening: down).
 * Leaves a screenshot in reports/overview.png.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { FrameRing } from '../../../fake-camera/src/frames';
import { ROOT, closedPort, describeWith, findExecutable, killAllChildren, startCamera, startRelay, waitFor, type RelayProc } from '../../../test-support';
import { FAVICON_SVG, OVERVIEW_HTML, OVERVIEW_JS, VIEWER_CSP, VIEWER_CSS } from '../../src/outlets/viewer-page';

// What the page-side functions below use (the test tsconfig has no DOM lib). Functions, not strings:
// a string predicate is eval'd in the page, which the Content-Security-Policy forbids.
interface PageImage {
  complete?: boolean;
  naturalWidth?: number;
  src?: string;
}
declare const document: { querySelector(sel: string): PageImage | null; getElementById(id: string): PageImage | null };

const CHROMIUM = findExecutable(['/usr/bin/chromium', '/usr/bin/chromium-browser']);
const USER = 'viewer';
const PASSWORD = 'overview-test-password';

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Collects page errors, console errors and failed requests (the CSP reports violations as console errors). */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 50[34]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('requestfailed', (r) => {
    if (!r.url().includes('stream.mjpg')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return problems;
}

const tile = (name: string) => `[data-camera="${name}"]`;

/** Waits until the tile's image shows a decoded frame, then until it changes (the tile is live). */
async function expectLiveTile(page: Page, name: string): Promise<void> {
  const sel = `${tile(name)} img`;
  await page.waitForFunction((s) => {
    const img = document.querySelector(s);
    return !!img && img.complete === true && (img.naturalWidth ?? 0) > 0;
  }, sel, { timeout: 15_000 });
  const first = await page.evaluate((s) => document.querySelector(s)?.src, sel);
  await page.waitForFunction(([s, was]) => document.querySelector(s as string)?.src !== was, [sel, first], { timeout: 10_000 });
  const a = await page.locator(sel).screenshot();
  let changed = false;
  for (let i = 0; i < 20 && !changed; i++) {
    await page.waitForTimeout(300);
    changed = !(await page.locator(sel).screenshot()).equals(a);
  }
  expect(changed).toBe(true);
}

describeWith('chromium', CHROMIUM !== undefined, 'overview page against a stub relay', () => {
  let browser: Browser;
  let server: http.Server;
  let base: string;
  let status: Record<string, unknown>;
  const requests: string[] = [];
  const rings = new Map<string, FrameRing>();

  beforeAll(async () => {
    browser = await launch();
    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push(req.url ?? '');
      const send = (code: number, type: string, body: string | Buffer) => {
        res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Security-Policy': VIEWER_CSP });
        res.end(body);
      };
      const snap = /^\/cam\/([a-z0-9-]+)\/snapshot\.jpg$/.exec(url.pathname);
      if (url.pathname === '/') return send(200, 'text/html', OVERVIEW_HTML);
      if (url.pathname === '/overview.js') return send(200, 'text/javascript', OVERVIEW_JS);
      if (url.pathname === '/viewer.css') return send(200, 'text/css', VIEWER_CSS);
      if (url.pathname === '/favicon.svg') return send(200, 'image/svg+xml', FAVICON_SVG);
      if (url.pathname === '/status.json') return send(200, 'application/json', JSON.stringify(status));
      if (snap) {
        const cam = (status.cameras as { name: string; up?: boolean }[]).find((c) => c.name === snap[1]);
        if (!cam?.up) return send(503, 'text/plain', 'no frame\n');
        let ring = rings.get(cam.name);
        if (!ring) rings.set(cam.name, (ring = new FrameRing({ width: 320, height: 240, ringSize: 6, quality: 60 })));
        return send(200, 'image/jpeg', ring.next().data);
      }
      send(404, 'text/plain', 'not found\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
  });

  beforeEach(() => {
    requests.length = 0;
    status = {
      version: 'test',
      uptimeS: 5,
      authenticated: true,
      cameras: [
        { name: 'front', public: true, mode: 'pull', up: true, frameAgeMs: 120, fps: 9.6, frame: { seq: 10, bytes: 20000 }, lastError: null, viewers: 2 },
        { name: 'garden', public: false, mode: 'push', up: false, frameAgeMs: null, fps: 0, frame: null, lastError: 'ECONNREFUSED' },
        // old-style fields only (cameraUp, frame.ageMs): still shown
        { name: 'printer', cameraUp: true, fps: 4, frame: { seq: 3, ageMs: 2500 } },
      ],
    };
  });

  test('one tile per camera, in order, with state, frame age, fps and a live image; removed cameras go away', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    const problems = watch(page);
    await page.goto(`${base}/`);
    await page.waitForSelector(tile('printer'));
    expect(await page.locator('[data-camera]').evaluateAll((els) => els.map((e) => (e as unknown as { getAttribute(n: string): string }).getAttribute('data-camera')))).toEqual(['front', 'garden', 'printer']);
    expect(await page.locator(`${tile('front')} .state`).innerText()).toBe('up');
    expect(await page.locator(`${tile('garden')} .state`).innerText()).toBe('down');
    expect(await page.locator(`${tile('garden')} .state`).getAttribute('title')).toBe('ECONNREFUSED');
    expect(await page.locator(`${tile('printer')} .state`).innerText()).toBe('up');
    expect(await page.locator(`${tile('front')} .age`).innerText()).toBe('120 ms');
    expect(await page.locator(`${tile('printer')} .age`).innerText()).toBe('2.5 s');
    expect(await page.locator(`${tile('garden')} .age`).innerText()).toBe('no frame');
    expect(await page.locator(`${tile('front')} .fps`).innerText()).toBe('9.6 fps');
    expect(await page.locator(`${tile('garden')} .lock`).isVisible()).toBe(true);
    expect(await page.locator(`${tile('front')} .lock`).isVisible()).toBe(false);
    expect(await page.locator(tile('front')).getAttribute('href')).toBe('cam/front/');
    expect(await page.locator('#summary').innerText()).toBe('3 cameras, 2 up');
    expect(await page.locator('#signin').isVisible()).toBe(false);
    await expectLiveTile(page, 'front');
    // snapshots are cache-busted and relative to the page
    expect(requests.filter((r) => /^\/cam\/front\/snapshot\.jpg\?n=\d+$/.test(r)).length).toBeGreaterThan(1);

    // the state follows status.json; a camera no longer listed loses its tile
    status.cameras = (status.cameras as Record<string, unknown>[]).filter((c) => c.name !== 'printer').map((c) => (c.name === 'garden' ? { ...c, up: true, frame: { seq: 1, bytes: 10 }, frameAgeMs: 40 } : c));
    await page.waitForSelector(tile('printer'), { state: 'detached', timeout: 5000 });
    await waitFor(async () => (await page.locator(`${tile('garden')} .state`).innerText()) === 'up', 5000, 'garden up');
    await expectLiveTile(page, 'garden');
    expect(await page.locator('#summary').innerText()).toBe('2 cameras, 2 up');
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);

  test('a frozen camera (up, repeating one frame) shows "frozen" on its tile and in the summary, and "up" again when it thaws', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    const problems = watch(page);
    const cams = () => status.cameras as Record<string, unknown>[];
    status.cameras = cams().map((c) => (c.name === 'front' ? { ...c, frozen: true } : c.name === 'garden' ? { ...c, frozen: true } : c));
    await page.goto(`${base}/`);
    await page.waitForSelector(tile('printer'));
    const state = (name: string) => page.locator(`${tile(name)} .state`);
    await waitFor(async () => (await state('front').innerText()) === 'frozen', 5000, 'front frozen');
    expect(await state('front').getAttribute('class')).toBe('badge state frozen');
    expect(await state('front').getAttribute('title')).toMatch(/very same frame.*locked up/);
    expect(await page.locator(tile('front')).getAttribute('class')).toBe('tile frozen');
    // garden is down: down says more than frozen
    expect(await state('garden').innerText()).toBe('down');
    expect(await page.locator('#summary').innerText()).toBe('3 cameras, 2 up, 1 frozen');
    expect(await page.locator('#summary').getAttribute('class')).toBe('badge ');
    // a frozen camera is still up: its tile keeps refreshing the snapshot
    await expectLiveTile(page, 'front');

    status.cameras = cams().map((c) => (c.name === 'front' ? { ...c, frozen: false } : c));
    await waitFor(async () => (await state('front').innerText()) === 'up', 5000, 'front thawed');
    expect(await page.locator(tile('front')).getAttribute('class')).toBe('tile');
    expect(await page.locator('#summary').innerText()).toBe('3 cameras, 2 up');
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);

  test('not signed in: the sign-in link appears and points at ?login=1; a ?token= is passed on to every request and link', async () => {
    status = { ...status, authenticated: false, cameras: (status.cameras as object[]).slice(0, 1) };
    const page = await browser.newPage();
    const problems = watch(page);
    await page.goto(`${base}/?token=tok123`);
    await page.waitForSelector(tile('front'));
    expect(await page.locator(tile('front')).getAttribute('href')).toBe('cam/front/?token=tok123');
    await page.waitForTimeout(1500);
    const own = requests.filter((r) => r.startsWith('/status.json') || r.includes('snapshot.jpg'));
    expect(own.length).toBeGreaterThan(2);
    for (const r of own) expect(r).toContain('token=tok123');
    await page.close();

    // without a token the link is offered
    const p2 = await browser.newPage();
    await p2.goto(`${base}/`);
    await p2.waitForSelector('#signin', { state: 'visible', timeout: 5000 });
    expect(await p2.evaluate(() => (document.getElementById('signin') as unknown as { href: string }).href)).toBe(`${base}/?login=1`);
    // nothing visible at all: offered too, with the empty message
    status = { cameras: [] };
    await p2.waitForSelector('#empty', { state: 'visible', timeout: 5000 });
    expect(await p2.locator('#signin').isVisible()).toBe(true);
    // after signing in the address loses ?login=1
    await p2.goto(`${base}/?login=1`);
    expect(p2.url()).toBe(`${base}/`);
    expect(problems).toEqual([]);
    await p2.close();
  }, 60_000);
});

// ---- the real multi-camera relay ----

interface MultiRelay {
  relay: RelayProc;
  base: string;
  dir: string;
}

/** front: public, live; garden: private, live; attic: public, nothing listening (down). */
async function startMultiRelay(): Promise<MultiRelay> {
  const [front, garden] = await Promise.all([startCamera(['--width', '320', '--height', '240']), startCamera(['--width', '320', '--height', '240'])]);
  const dead = await closedPort();
  const raw = [await closedPort(), await closedPort(), await closedPort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-overview-'));
  const file = path.join(dir, 'cameras.yml');
  fs.writeFileSync(file, [
    'cameras:',
    '  front:',
    `    host: 127.0.0.1`,
    `    port: ${front.port}`,
    `    raw_port: ${raw[0]}`,
    '    public: true',
    '  garden:',
    `    host: 127.0.0.1`,
    `    port: ${garden.port}`,
    `    raw_port: ${raw[1]}`,
    '  attic:',
    `    host: 127.0.0.1`,
    `    port: ${dead}`,
    `    raw_port: ${raw[2]}`,
    '    public: true',
    '',
  ].join('\n'));
  const relay = await startRelay({ CAMERAS_FILE: file, VIEWER_USER: USER, VIEWER_PASSWORD: PASSWORD, MAX_FPS: '10' });
  return { relay, base: `http://127.0.0.1:${relay.httpPort}`, dir };
}

describeWith('chromium', CHROMIUM !== undefined, 'overview and camera page of the multi-camera relay in headless Chromium', () => {
  let browser: Browser;
  let rig: MultiRelay;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    browser = await launch();
    rig = await startMultiRelay();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await killAllChildren();
    if (rig) fs.rmSync(rig.dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await context?.close();
    context = undefined;
  });

  test('without credentials: only the public cameras, live and down as they are, and a sign-in link that challenges', async () => {
    context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${rig.base}/`);
    await page.waitForSelector(tile('attic'), { timeout: 15_000 });
    await waitFor(async () => (await page.locator(`${tile('front')} .state`).innerText()) === 'up', 15_000, 'front up');
    await waitFor(async () => (await page.locator(`${tile('attic')} .state`).innerText()) === 'down', 15_000, 'attic down');
    expect(await page.locator(tile('garden')).count()).toBe(0);
    await expectLiveTile(page, 'front');
    expect(await page.locator('#signin').isVisible()).toBe(true);
    // the sign-in link asks the browser for credentials
    const r = await fetch(`${rig.base}/?login=1`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(problems.filter((p) => !p.includes('attic'))).toEqual([]);
  }, 60_000);

  test('signed in: every camera, the private one marked; screenshot', async () => {
    context = await browser.newContext({ viewport: { width: 1000, height: 760 }, httpCredentials: { username: USER, password: PASSWORD, send: 'always' } });
    const page = await context.newPage();
    // as a person does: the "sign in" link (/?login=1) answers 401, the browser sends the credentials
    // and keeps sending them for the whole site
    await page.goto(`${rig.base}/?login=1`);
    await page.waitForSelector(tile('garden'), { timeout: 15_000 });
    expect(await page.locator('[data-camera]').count()).toBe(3);
    await waitFor(async () => (await page.locator(`${tile('garden')} .state`).innerText()) === 'up', 15_000, 'garden up');
    expect(await page.locator(`${tile('garden')} .lock`).isVisible()).toBe(true);
    expect(await page.locator('#signin').isVisible()).toBe(false);
    await expectLiveTile(page, 'garden');
    await expectLiveTile(page, 'front');
    await waitFor(async () => parseFloat(await page.locator(`${tile('front')} .fps`).innerText()) > 1, 10_000, 'front fps');
    fs.mkdirSync(path.join(ROOT, 'reports'), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, 'reports', 'overview.png'), fullPage: true });
  }, 60_000);

  test("one camera's page shows its own live frames and links back to the overview", async () => {
    context = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${rig.base}/`);
    await page.locator(tile('front')).click();
    await page.waitForURL(`${rig.base}/cam/front/`);
    await page.waitForFunction(() => {
      const img = document.getElementById('live');
      return !!img && img.complete === true && (img.naturalWidth ?? 0) > 0;
    }, undefined, { timeout: 15_000 });
    expect(await page.evaluate(() => document.getElementById('live')?.naturalWidth)).toBe(320);
    const a = await page.locator('#live').screenshot();
    let changed = false;
    for (let i = 0; i < 20 && !changed; i++) {
      await page.waitForTimeout(250);
      changed = !(await page.locator('#live').screenshot()).equals(a);
    }
    expect(changed).toBe(true);
    await waitFor(async () => (await page.locator('#name').innerText()) === 'front', 10_000, 'camera name shown');
    expect(await page.locator('#camera').innerText()).toBe('camera up');
    expect(await page.locator('#mode').innerText()).toBe('live MJPEG stream');
    await page.locator('#back').click();
    await page.waitForURL(`${rig.base}/`);
    expect(problems).toEqual([]);
  }, 60_000);
});
