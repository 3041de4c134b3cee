/**
 * The browser pages, self-contained (no external resources), kept as strings so they ship inside
 * dist/ with no build step. http.ts serves them:
 *   /                 OVERVIEW_HTML: one tile per camera the visitor may see (+ /overview.js)
 *   /cam/<name>/      CAMERA_VIEWER_HTML: one camera's viewer (assets from ../../)
 *   /viewer.css       styles of both pages (and /favicon.svg)
 *   /viewer.js        the viewer: shows stream.mjpg in an <img> (falls back to polling snapshot.jpg
 *                     when the stream fails, retrying the stream every 15 s; `?mode=poll` forces
 *                     polling; `?fps=N` is passed on to the stream) and polls status.json every second
 *                     for camera state (up, frozen or down), frame rate, frame age and viewer count;
 *                     when the relay was unreachable and
 *                     answers again, the stream is reopened. Its requests are relative to the page, so
 *                     at /cam/<name>/ they go to /cam/<name>/stream.mjpg etc.
 *   /overview.js      the overview: polls status.json (`cameras: [...]`) every second; each tile
 *                     refreshes the camera's snapshot about once a second and shows up/frozen/down, frame age
 *                     and fps, and links to cam/<name>/. A "sign in" link (`?login=1`, which the relay
 *                     answers with a 401 challenge until the browser sends credentials) appears when
 *                     status.json says the visitor is not signed in, or lists no camera.
 *   loginHtml()       the sign-in form the relay shows over HTTPS instead of the browser's Basic
 *                     prompt (see sign-in.ts); it POSTs to <BASE_PATH>/login. The overview and the viewer
 *                     at / show a "sign out" button (a POST to logout) while status.json says
 *                     `session: true` (signed in with the form's cookie).
 * A `?token=...` in the page URL is passed on to every URL the pages load and link to (browsers
 * cannot put an Authorization header on <img>). All URLs are relative, so the pages also work behind
 * a reverse proxy under a path prefix (BASE_PATH). The Content-Security-Policy allows nothing but
 * same-origin loads and same-origin form posts.
 */

export const VIEWER_CSP =
  "default-src 'none'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The sign-in page's policy: its stylesheet and icon, and a form that posts to this site. */
export const LOGIN_CSP = "default-src 'none'; img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * Every page's referrer policy (header and <meta>): strict-origin. Not no-referrer, whose form posts
 * (sign-in, sign-out) carry `Origin: null` in browsers without fetch metadata, which the relay's
 * same-origin check must refuse. strict-origin sends only the origin (`https://cam.example/`), never
 * the page's path (a camera's name) or query (a `?token=`), and nothing at all to plain HTTP; the
 * pages load nothing from elsewhere (CSP) and link nowhere else, so only the relay itself sees it.
 */
export const PAGE_REFERRER_POLICY = 'strict-origin';

/** Every page's <!doctype> and <head>: `assets` is the path prefix of viewer.css and favicon.svg. */
function pageHead(title: string, assets: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="${PAGE_REFERRER_POLICY}">
<title>${title}</title>
<link rel="stylesheet" href="${assets}viewer.css">
<link rel="icon" href="${assets}favicon.svg" type="image/svg+xml">
</head>`;
}

const SIGNOUT_FORM = '<form id="signout" method="post" action="logout" hidden><button type="submit">sign out</button></form>';

/**
 * The viewer page. `root` is the relative path from the page to the site root, where the shared
 * assets are: '' for a page at /, '../../' at /cam/<name>/ (then the page links back to the overview).
 */
export function viewerHtml(root = ''): string {
  const back = root ? `\n    <a id="back" href="${root}">&larr; all cameras</a>` : '';
  // sign-out: only the viewer at / polls the relay-wide status.json that says `session`
  const signout = root ? '' : `\n    <span class="spacer"></span>\n    ${SIGNOUT_FORM}`;
  return `${pageHead('camrelay viewer', root)}
<body>
<main>
  <header>${back}
    <h1 id="name">camrelay</h1>
    <span id="camera" class="badge">connecting&hellip;</span>${signout}
  </header>
  <figure>
    <img id="live" alt="live camera image">
    <figcaption id="mode">starting</figcaption>
  </figure>
  <dl id="stats">
    <div><dt>frame rate</dt><dd id="fps">&ndash;</dd></div>
    <div><dt>frame age</dt><dd id="age">&ndash;</dd></div>
    <div><dt>viewers</dt><dd id="viewers">&ndash;</dd></div>
    <div><dt>frame</dt><dd id="seq">&ndash;</dd></div>
  </dl>
</main>
<script src="${root}viewer.js"></script>
</body>
</html>
`;
}

/** The viewer at / (single-camera relays, seed links). */
export const VIEWER_HTML = viewerHtml('');

/** The viewer of one camera at /cam/<name>/ (the same page for every camera: it reads its name from status.json). */
export const CAMERA_VIEWER_HTML = viewerHtml('../../');

/** A camera lens, so browsers do not ask for /favicon.ico. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="2" y="8" width="28" height="20" rx="4" fill="#333"/><rect x="10" y="4" width="12" height="6" rx="2" fill="#333"/><circle cx="16" cy="18" r="7" fill="#1f6f3a"/><circle cx="16" cy="18" r="3" fill="#9fe0b4"/></svg>
`;

export const VIEWER_CSS = `*{box-sizing:border-box}
html,body{margin:0;background:#111;color:#ddd;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1000px;margin:0 auto;padding:12px}
header{display:flex;align-items:center;gap:12px}
h1{font-size:18px;margin:0;font-weight:600;letter-spacing:.02em}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;background:#444}
.badge.up{background:#1f6f3a;color:#fff}
.badge.down{background:#8a1f1f;color:#fff}
.badge.frozen{background:#1f4f8a;color:#fff}
figure{margin:12px 0;background:#000;border-radius:6px;overflow:hidden;text-align:center}
img#live{display:block;width:100%;height:auto;max-height:calc(100vh - 210px);min-height:120px;object-fit:contain;background:#000}
figcaption{font-size:12px;color:#999;padding:4px 8px;text-align:left}
dl#stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;margin:0}
dl#stats div{background:#1c1c1c;border-radius:6px;padding:8px 12px}
dt{font-size:12px;color:#999}
dd{margin:0;font-size:22px;font-variant-numeric:tabular-nums}
a{color:#9fc9ff}
#back{font-size:13px;text-decoration:none}
.spacer{flex:1}
#signin{font-size:13px}
#signout button{font:inherit;font-size:13px;color:#9fc9ff;background:none;border:0;padding:0;cursor:pointer;text-decoration:underline}
main.login{max-width:360px;padding-top:10vh}
.login form{display:grid;gap:6px;margin-top:16px}
.login label{font-size:13px;color:#999;margin-top:6px}
.login input{font:inherit;padding:8px;border-radius:6px;border:1px solid #555;background:#1c1c1c;color:#ddd}
.login button{font:inherit;margin-top:12px;padding:8px;border-radius:6px;border:0;background:#1f6f3a;color:#fff;cursor:pointer}
.login .hint{font-size:12px;color:#999;margin:0}
#error{color:#ff8a8a;min-height:1.4em;margin:4px 0 0}
#empty{color:#999}
#cams{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px;margin-top:12px}
.tile{display:block;background:#1c1c1c;border-radius:6px;overflow:hidden;color:inherit;text-decoration:none}
.tile:hover,.tile:focus{outline:2px solid #9fc9ff}
.tile img{display:block;width:100%;aspect-ratio:4/3;object-fit:contain;background:#000}
.tile .meta{display:flex;flex-wrap:wrap;align-items:center;gap:6px 10px;padding:6px 10px;font-size:13px;font-variant-numeric:tabular-nums}
.tile .name{font-weight:600;font-size:15px;flex:1 0 100%}
.tile .lock{font-size:11px;color:#999;border:1px solid #555;border-radius:8px;padding:0 6px}
.tile.frozen{box-shadow:inset 0 0 0 2px #1f4f8a}
`;

export const VIEWER_JS = `'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  var capFps = params.get('fps');
  var img = document.getElementById('live');
  var modeEl = document.getElementById('mode');
  var n = 0;
  var mode = '';
  var pollTimer = null;
  var retryTimer = null;
  var blobUrl = null;
  var relayDown = false;
  var FROZEN_TITLE = 'the camera keeps sending the very same frame: it has probably locked up (power-cycle it)'; // the frozen badge's tooltip

  function url(path, extra) {
    var q = new URLSearchParams(extra || {});
    if (token) q.set('token', token);
    var s = q.toString();
    return s ? path + '?' + s : path;
  }
  function text(id, value) {
    document.getElementById(id).textContent = value;
  }
  var back = document.getElementById('back');
  if (back && token) back.href = url(back.getAttribute('href'));

  function startStream() {
    clearTimeout(pollTimer);
    clearTimeout(retryTimer);
    mode = 'stream';
    modeEl.textContent = 'live MJPEG stream';
    var q = { n: String(++n) };
    if (capFps) q.fps = capFps;
    img.src = url('stream.mjpg', q);
  }

  function startPolling(retryStream) {
    if (mode === 'poll') return;
    mode = 'poll';
    modeEl.textContent = 'snapshot polling';
    img.removeAttribute('src');
    pollOnce();
    if (retryStream) retryTimer = setTimeout(startStream, 15000);
  }

  function pollOnce() {
    if (mode !== 'poll') return;
    fetch(url('snapshot.jpg', { n: String(++n) }), { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.blob();
      })
      .then(function (b) {
        var old = blobUrl;
        blobUrl = URL.createObjectURL(b);
        img.src = blobUrl;
        if (old) URL.revokeObjectURL(old);
      })
      .catch(function () { /* try again below */ })
      .then(function () {
        pollTimer = setTimeout(pollOnce, 200);
      });
  }

  img.addEventListener('error', function () {
    if (mode === 'stream') startPolling(true);
  });

  function fmtAge(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '\\u2013';
    return ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(1) + ' s';
  }

  // this camera from status.json: /cam/<name>/status.json is one camera; a relay's /status.json
  // has cameras: [...] (the first is the one at /); older relays report the camera at the top level
  function cameraOf(s) {
    if (s && Array.isArray(s.cameras)) return s.cameras[0] || null;
    return s || null;
  }
  function viewersOf(c) {
    var v = c.viewers;
    if (typeof v === 'number') return v;
    if (v && typeof v === 'object') return Number(v.mjpeg) || 0;
    return c.clients ? Number(c.clients.mjpeg) || 0 : 0;
  }
  function ageOf(c) {
    if (typeof c.frameAgeMs === 'number') return c.frameAgeMs;
    return c.frame ? c.frame.ageMs : undefined;
  }

  function stats() {
    fetch(url('status.json'), { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status === 401 ? 'unauthorized' : 'HTTP ' + r.status);
        return r.json();
      })
      .then(function (s) {
        // the relay was unreachable, so the stream broke: open it again
        if (relayDown && mode === 'stream') startStream();
        relayDown = false;
        var out = document.getElementById('signout');
        if (out) out.hidden = !(s && s.session === true);
        var c = cameraOf(s);
        if (!c) throw new Error('no camera');
        if (c.name) {
          text('name', c.name);
          document.title = c.name + ' \\u00b7 camrelay';
        }
        var up = c.up !== undefined ? Boolean(c.up) : Boolean(c.cameraUp);
        // frozen: up, but the camera repeats the very same frame (down says more, so down wins)
        var frozen = up && c.frozen === true;
        var cam = document.getElementById('camera');
        cam.textContent = frozen ? 'camera frozen' : up ? 'camera up' : 'camera down';
        cam.className = 'badge ' + (frozen ? 'frozen' : up ? 'up' : 'down');
        cam.title = frozen ? FROZEN_TITLE : c.lastError || '';
        var f = c.frame;
        text('fps', (Number(c.fps) || 0).toFixed(1) + ' fps');
        text('age', f ? fmtAge(ageOf(c)) : 'no frame');
        text('viewers', String(viewersOf(c)));
        text('seq', f ? '#' + f.seq + (f.bytes ? ' \\u00b7 ' + Math.round(f.bytes / 1024) + ' KiB' : '') : '\\u2013');
      })
      .catch(function (e) {
        relayDown = true;
        var cam = document.getElementById('camera');
        cam.textContent = 'relay unreachable (' + e.message + ')';
        cam.className = 'badge down';
      })
      .then(function () {
        setTimeout(stats, 1000);
      });
  }

  if (params.get('mode') === 'poll') startPolling(false);
  else startStream();
  stats();
})();
`;

/** The overview at /: one tile per camera the visitor may see, filled by /overview.js. */
export const OVERVIEW_HTML = `${pageHead('camrelay cameras', '')}
<body>
<main>
  <header>
    <h1>camrelay</h1>
    <span id="summary" class="badge">connecting&hellip;</span>
    <span class="spacer"></span>
    <a id="signin" href="?login=1" hidden>sign in</a>
    ${SIGNOUT_FORM}
  </header>
  <p id="empty" hidden>No camera to show.</p>
  <div id="cams"></div>
</main>
<script src="overview.js"></script>
</body>
</html>
`;

export const OVERVIEW_JS = `'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  var grid = document.getElementById('cams');
  var signin = document.getElementById('signin');
  var signout = document.getElementById('signout');
  var summary = document.getElementById('summary');
  var empty = document.getElementById('empty');
  /** camera name -> its tile */
  var tiles = {};
  var n = 0;
  var FROZEN_TITLE = 'the camera keeps sending the very same frame: it has probably locked up (power-cycle it)'; // the frozen badge's tooltip

  // after signing in (?login=1 answered with the credentials), keep a clean address
  if (params.has('login')) {
    params.delete('login');
    var rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
  }

  function url(path, extra) {
    var q = new URLSearchParams(extra || {});
    if (token) q.set('token', token);
    var s = q.toString();
    return s ? path + '?' + s : path;
  }
  function camPath(name, file) {
    return 'cam/' + encodeURIComponent(name) + '/' + (file || '');
  }
  function fmtAge(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return 'no frame';
    return ms < 1000 ? Math.round(ms) + ' ms' : ms < 120000 ? (ms / 1000).toFixed(1) + ' s' : Math.round(ms / 60000) + ' min';
  }
  function span(cls, parent) {
    var e = document.createElement('span');
    e.className = cls;
    parent.appendChild(e);
    return e;
  }

  function makeTile(name) {
    var a = document.createElement('a');
    a.className = 'tile';
    a.setAttribute('data-camera', name);
    a.href = url(camPath(name));
    var img = document.createElement('img');
    img.alt = name + ': latest frame';
    a.appendChild(img);
    var meta = document.createElement('div');
    meta.className = 'meta';
    a.appendChild(meta);
    var t = {
      name: name, el: a, img: img, blob: null, timer: null, gone: false,
      label: span('name', meta), state: span('badge state', meta), age: span('age', meta), fps: span('fps', meta), lock: span('lock', meta),
    };
    t.label.textContent = name;
    t.state.textContent = '\\u2026';
    t.lock.textContent = 'private';
    t.lock.hidden = true;
    t.timer = setTimeout(refresh, 0, t); // after show() has set t.up
    return t;
  }

  // the tile's image: the camera's snapshot about once a second, one request at a time
  function refresh(t) {
    if (t.gone) return;
    // a hidden page or a camera that is down: no request (a snapshot of a down camera only waits)
    if (document.hidden || t.up === false) {
      t.timer = setTimeout(refresh, 1000, t);
      return;
    }
    var ok = false;
    fetch(url(camPath(t.name, 'snapshot.jpg'), { n: String(++n) }), { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.blob();
      })
      .then(function (b) {
        if (t.gone) return;
        var old = t.blob;
        t.blob = URL.createObjectURL(b);
        t.img.src = t.blob;
        if (old) URL.revokeObjectURL(old);
        ok = true;
      })
      .catch(function () { /* keep the last image; try again below */ })
      .then(function () {
        if (!t.gone) t.timer = setTimeout(refresh, ok ? 1000 : 3000, t);
      });
  }

  function drop(t) {
    t.gone = true;
    clearTimeout(t.timer);
    if (t.blob) URL.revokeObjectURL(t.blob);
    if (t.el.parentNode) t.el.parentNode.removeChild(t.el);
  }

  function show(c) {
    var t = tiles[c.name] || (tiles[c.name] = makeTile(c.name));
    var up = c.up !== undefined ? Boolean(c.up) : Boolean(c.cameraUp);
    var frozen = up && c.frozen === true; // up, but repeating one frame (down wins)
    t.state.textContent = frozen ? 'frozen' : up ? 'up' : 'down';
    t.state.className = 'badge state ' + (frozen ? 'frozen' : up ? 'up' : 'down');
    t.state.title = frozen ? FROZEN_TITLE : c.lastError || '';
    var age = typeof c.frameAgeMs === 'number' ? c.frameAgeMs : c.frame ? c.frame.ageMs : undefined;
    t.age.textContent = c.frame === null ? 'no frame' : fmtAge(age);
    t.fps.textContent = (Number(c.fps) || 0).toFixed(1) + ' fps';
    t.lock.hidden = c.public !== false;
    t.el.classList.toggle('down', !up);
    t.el.classList.toggle('frozen', frozen);
    t.up = up;
    t.frozen = frozen;
    return t;
  }

  function render(s) {
    var cams = s && Array.isArray(s.cameras) ? s.cameras.filter(function (c) { return c && typeof c.name === 'string'; }) : [];
    var seen = {};
    var up = 0;
    var frozen = 0;
    cams.forEach(function (c, i) {
      seen[c.name] = true;
      var t = show(c);
      if (t.up) up++;
      if (t.frozen) frozen++;
      if (grid.children[i] !== t.el) grid.insertBefore(t.el, grid.children[i] || null);
    });
    Object.keys(tiles).forEach(function (name) {
      if (!seen[name]) {
        drop(tiles[name]);
        delete tiles[name];
      }
    });
    summary.textContent = cams.length + (cams.length === 1 ? ' camera' : ' cameras') + ', ' + up + ' up' + (frozen ? ', ' + frozen + ' frozen' : '');
    summary.className = 'badge ' + (cams.length > 0 && up === cams.length && frozen === 0 ? 'up' : up === 0 ? 'down' : '');
    empty.hidden = cams.length > 0;
    // the relay says authenticated: false when credentials are configured and the visitor sent none
    // (private cameras may be hidden); true when signed in or when no credentials are configured
    var needed = s.authenticated === false || s.signIn === true || (cams.length === 0 && s.authenticated !== true);
    signin.hidden = Boolean(token) || !needed;
    signout.hidden = s.session !== true;
  }

  function poll() {
    fetch(url('status.json'), { cache: 'no-store' })
      .then(function (r) {
        if (r.status === 401) return { cameras: [], authenticated: false };
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(render)
      .catch(function (e) {
        summary.textContent = 'relay unreachable (' + e.message + ')';
        summary.className = 'badge down';
      })
      .then(function () {
        setTimeout(poll, 1000);
      });
  }

  poll();
})();
`;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

export interface LoginPage {
  /** BASE_PATH ('' at /): the form posts to <base>/login, the stylesheet is <base>/viewer.css */
  base: string;
  /** where to go after signing in (already checked by safeNext) */
  next: string;
  /** what to ask for (ViewerAuth.formFields) */
  fields: 'password' | 'token' | 'both';
  /** an error line (wrong credentials, too many attempts) */
  message?: string;
  /** the user name typed before, kept after a failed attempt */
  user?: string;
}

/** The sign-in form (served with LOGIN_CSP). Every value is HTML-escaped. */
export function loginHtml(p: LoginPage): string {
  const user = p.fields === 'token' ? '' : `
    <label for="user">user name</label>
    <input id="user" name="user" autocomplete="username" autocapitalize="none" spellcheck="false" value="${esc(p.user ?? '')}">`;
  const secretLabel = p.fields === 'token' ? 'access token' : 'password';
  const hint = p.fields === 'both' ? '\n    <p class="hint">or paste the access token as the password</p>' : '';
  return `${pageHead('sign in \u00b7 camrelay', `${esc(p.base)}/`)}
<body>
<main class="login">
  <h1>camrelay</h1>
  <form id="login" method="post" action="${esc(p.base)}/login">
    <input type="hidden" name="next" value="${esc(p.next)}">${user}
    <label for="password">${secretLabel}</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>${hint}
    <p id="error" role="alert">${esc(p.message ?? '')}</p>
    <button type="submit">sign in</button>
  </form>
</main>
</body>
</html>
`;
}
