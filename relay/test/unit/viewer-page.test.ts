/**
 * The page strings: valid browser scripts, no inline script or style (the CSP forbids both), every
 * load relative (reverse-proxy prefixes), the camera page's assets and back link one level up from
 * /cam/<name>/. What the pages do is checked in real Chromium (relay/test/browser/overview.test.ts).
 */
import vm from 'node:vm';
import { CAMERA_VIEWER_HTML, loginHtml, OVERVIEW_HTML, OVERVIEW_JS, PAGE_REFERRER_POLICY, VIEWER_CSP, VIEWER_HTML, VIEWER_JS, viewerHtml } from '../../src/outlets/viewer-page';

const attrs = (html: string, name: string) => [...html.matchAll(new RegExp(`\\b${name}="([^"]*)"`, 'g'))].map((m) => m[1]);

describe('page strings', () => {
  test.each([
    ['VIEWER_JS', VIEWER_JS],
    ['OVERVIEW_JS', OVERVIEW_JS],
  ])('%s is a valid script', (_n, js) => {
    expect(() => new vm.Script(js)).not.toThrow();
  });

  test.each([
    ['VIEWER_HTML', VIEWER_HTML],
    ['CAMERA_VIEWER_HTML', CAMERA_VIEWER_HTML],
    ['OVERVIEW_HTML', OVERVIEW_HTML],
  ])('%s: no inline script, style or handler; only relative URLs', (_n, html) => {
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    for (const u of [...attrs(html, 'src'), ...attrs(html, 'href')]) expect(u).not.toMatch(/^(\/|[a-z]+:)/i);
  });

  test('the viewer at / loads its assets next to it; at /cam/<name>/ from two levels up, with a link back', () => {
    expect(attrs(VIEWER_HTML, 'src')).toEqual(['viewer.js']);
    expect(VIEWER_HTML).not.toContain('id="back"');
    expect(attrs(CAMERA_VIEWER_HTML, 'src')).toEqual(['../../viewer.js']);
    expect(attrs(CAMERA_VIEWER_HTML, 'href')).toEqual(['../../viewer.css', '../../favicon.svg', '../../']);
    expect(CAMERA_VIEWER_HTML).toContain('<a id="back" href="../../">');
    expect(viewerHtml('../')).toContain('src="../viewer.js"');
    // the ids the viewer script writes exist in both variants
    for (const id of ['name', 'camera', 'live', 'mode', 'fps', 'age', 'viewers', 'seq']) {
      expect(VIEWER_JS).toContain(`'${id}'`);
      expect(CAMERA_VIEWER_HTML).toContain(`id="${id}"`);
      expect(VIEWER_HTML).toContain(`id="${id}"`);
    }
  });

  test('the viewer requests its camera relative to the page', () => {
    for (const p of ["'stream.mjpg'", "'snapshot.jpg'", "'status.json'"]) expect(VIEWER_JS).toContain(p);
    expect(VIEWER_JS).not.toMatch(/['"]\/(stream|snapshot|status)/);
  });

  test('the overview loads overview.js, polls status.json, tiles link to cam/<name>/, sign-in is ?login=1', () => {
    expect(attrs(OVERVIEW_HTML, 'src')).toEqual(['overview.js']);
    expect(OVERVIEW_HTML).toContain('<a id="signin" href="?login=1" hidden>');
    expect(OVERVIEW_JS).toContain("url('status.json')");
    expect(OVERVIEW_JS).toContain("'cam/' + encodeURIComponent(name) + '/'");
    expect(OVERVIEW_JS).toContain("'snapshot.jpg'");
  });

  test('every page sends only its origin as referrer (its form posts carry a real Origin; no path, no ?token=)', () => {
    const login = loginHtml({ base: '/camrelay', fields: 'password', next: '/camrelay/' });
    for (const html of [VIEWER_HTML, CAMERA_VIEWER_HTML, OVERVIEW_HTML, login]) {
      expect([...html.matchAll(/<meta name="referrer" content="([^"]*)">/g)].map((m) => m[1])).toEqual(['strict-origin']);
    }
    expect(PAGE_REFERRER_POLICY).toBe('strict-origin');
    // nothing on the pages points elsewhere, where even the origin would go
    for (const html of [VIEWER_HTML, CAMERA_VIEWER_HTML, OVERVIEW_HTML, login]) expect(html).not.toMatch(/(?:src|href|action)="(?:[a-z]+:|\/\/)/i);
  });

  test('the CSP allows same-origin scripts and blob: images only', () => {
    expect(VIEWER_CSP).toContain("script-src 'self';");
    expect(VIEWER_CSP).toContain("img-src 'self' blob:;");
    expect(VIEWER_CSP).not.toContain('unsafe');
  });
});
