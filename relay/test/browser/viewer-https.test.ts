/**
 * Signing in like a person, in real headless Chromium over HTTPS: Debian's caddy with the stack's
 * caddy/Caddyfile (its local CA trusted through --ignore-certificate-errors-spki-list, which names the
 * CA's intermediate key only) in front of a real relay under BASE_PATH=/camrelay with one private
 * camera (a fake camera). The sign-in form sets the cookie (HttpOnly, Secure, SameSite, Path checked
 * through the browser's cookie store), the private camera then shows live frames, no URL ever carries
 * a credential, and signing out clears it. Leaves screenshots in reports/login.png and viewer-https.png.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import {
  CADDY, CaddyProc, RelayProc, ROOT, describeWith, findExecutable, freePorts, killAllChildren, startCaddy, startCamera, startRelay, waitFor,
} from '../../../test-support';

interface PageElement {
  complete?: boolean;
  naturalWidth?: number;
  hidden?: boolean;
}
declare const document: { getElementById(id: string): PageElement | null; cookie: string };

const CHROMIUM = findExecutable(['/usr/bin/chromium', '/usr/bin/chromium-browser']);
const PASSWORD = 'https-browser-password';
const SESSION = '__Secure-camrelay-session';

describeWith('chromium and caddy', CHROMIUM !== undefined && CADDY !== undefined, 'sign-in over HTTPS in headless Chromium', () => {
  let browser: Browser;
  let relay: RelayProc;
  let caddy: CaddyProc;
  let dir: string;
  let page: Page;
  const problems: string[] = [];
  const urls: string[] = [];
  /** what Chromium sent with each request: Referer and Origin */
  const sent: Promise<{ url: string; method: string; referer?: string; origin?: string }>[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-https-browser-'));
    const cam = await startCamera(['--width', '320', '--height', '240']);
    const [raw] = await freePorts(1);
    fs.writeFileSync(path.join(dir, 'cameras.yml'), `cameras:\n  garden:\n    host: 127.0.0.1\n    port: ${cam.port}\n    raw_port: ${raw}\n`);
    relay = await startRelay({
      CAMERAS_FILE: path.join(dir, 'cameras.yml'), SNAPSHOT_DIR: path.join(dir, 'snapshots'), TRUSTED_PROXY_CIDRS: '127.0.0.1/32',
      BASE_PATH: '/camrelay', VIEWER_PASSWORD: PASSWORD, MAX_FPS: '10',
    });
    caddy = await startCaddy({ RELAY_UPSTREAM: `127.0.0.1:${relay.httpPort}` });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--ignore-certificate-errors-spki-list=${caddy.intermediateSpki}`,
      ],
    });
    page = await browser.newPage({ viewport: { width: 900, height: 760 } });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // the sign-in page itself is a 401, which Chromium reports as a failed resource
      if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('request', (r) => {
      urls.push(r.url());
      sent.push(r.allHeaders().then((h) => ({ url: r.url(), method: r.method(), referer: h.referer, origin: h.origin }), () => ({ url: r.url(), method: r.method() })));
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await caddy?.stop();
    await killAllChildren();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the form signs in with a Secure HttpOnly cookie, the private camera shows frames, sign-out clears it', async () => {
    const start = `${caddy.base}/camrelay/cam/garden/`;
    const first = await page.goto(start);
    // the relay asks with its form, not with the browser's Basic prompt (which would hang a headless page)
    expect(first?.status()).toBe(401);
    expect(await page.locator('#login').count()).toBe(1);
    fs.mkdirSync(path.join(ROOT, 'reports'), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, 'reports', 'login.png') });
    await page.fill('#user', 'viewer');
    await page.fill('#password', 'not the password');
    await Promise.all([page.waitForURL(`${caddy.base}/camrelay/login`), page.click('button[type=submit]')]);
    expect(await page.locator('#error').innerText()).toBe('wrong user name or password');
    expect(await page.inputValue('#user')).toBe('viewer');

    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL(start), page.click('button[type=submit]')]);
    // the private camera's live picture, which changes
    await page.waitForFunction(() => document.getElementById('live')?.complete === true && (document.getElementById('live')?.naturalWidth ?? 0) > 0, undefined, { timeout: 15_000 });
    expect(await page.evaluate(() => document.getElementById('live')?.naturalWidth)).toBe(320);
    const a = await page.locator('#live').screenshot();
    await waitFor(async () => !(await page.locator('#live').screenshot()).equals(a), 10_000, 'the picture to change', 250);
    expect(await page.locator('#name').innerText()).toBe('garden');

    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === SESSION);
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/camrelay', domain: 'localhost' });
    expect(session?.expires).toBeGreaterThan(Date.now() / 1000 + 6 * 86_400);
    // scripts cannot read it
    expect(await page.evaluate(() => document.cookie)).not.toContain(SESSION);
    // no credential in any address the browser used (history, proxy logs)
    expect(urls.filter((u) => /token=|password|not%20the/i.test(u))).toEqual([]);
    expect(JSON.stringify(caddy.accessLog())).not.toContain(PASSWORD);
    expect(await relay.metric('relay_login_attempts_total', { result: 'ok' })).toBe(1);
    expect(await relay.metric('relay_login_attempts_total', { result: 'bad_credentials' })).toBe(1);
    await page.screenshot({ path: path.join(ROOT, 'reports', 'viewer-https.png'), fullPage: true });

    // the viewer at the base path says signed in and offers to sign out
    await page.goto(`${caddy.base}/camrelay/`);
    await page.waitForFunction(() => document.getElementById('signout')?.hidden === false, undefined, { timeout: 10_000 });
    await Promise.all([page.waitForURL(`${caddy.base}/camrelay/`), page.click('#signout button')]);
    await page.waitForSelector('#login');
    expect((await page.context().cookies()).find((c) => c.name === SESSION)).toBeUndefined();
    // the pages are strict-origin: a Referer is the origin only (no camera name, no query), and the
    // sign-out POST carries the real Origin (a no-referrer page's would be "null")
    const headers = await Promise.all(sent);
    const origin = new URL(caddy.base).origin;
    expect(headers.filter((h) => h.referer !== undefined && h.referer !== `${origin}/`)).toEqual([]);
    expect(headers.some((h) => h.referer === `${origin}/`)).toBe(true);
    expect(headers.filter((h) => h.method === 'POST').map((h) => [new URL(h.url).pathname, h.origin])).toEqual([
      ['/camrelay/login', origin], ['/camrelay/login', origin], ['/camrelay/logout', origin],
    ]);
    expect(problems).toEqual([]);
  }, 90_000);
});
