/**
 * The viewer page served at `/`: self-contained (no external resources), three same-origin files
 * kept as strings so they ship inside dist/ with no build step:
 *   /            HTML
 *   /viewer.css  styles (and /favicon.svg)
 *   /viewer.js   shows /stream.mjpg in an <img> (falls back to polling /snapshot.jpg when the
 *                stream fails, retrying the stream every 15 s; `?mode=poll` forces polling) and
 *                polls /status.json every second for frame rate, frame age and viewer count; when
 *                the relay was unreachable and answers again, the stream is reopened.
 * A `?token=...` in the page URL is passed on to every URL the page loads (browsers cannot put an
 * Authorization header on <img>). All URLs are relative, so the page also works behind a reverse
 * proxy under a path prefix. The Content-Security-Policy allows nothing but same-origin loads.
 */

export const VIEWER_CSP =
  "default-src 'none'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const VIEWER_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>camrelay viewer</title>
<link rel="stylesheet" href="viewer.css">
<link rel="icon" href="favicon.svg" type="image/svg+xml">
</head>
<body>
<main>
  <header>
    <h1>camrelay</h1>
    <span id="camera" class="badge">connecting&hellip;</span>
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
<script src="viewer.js"></script>
</body>
</html>
`;

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
figure{margin:12px 0;background:#000;border-radius:6px;overflow:hidden;text-align:center}
img#live{display:block;width:100%;height:auto;max-height:calc(100vh - 210px);min-height:120px;object-fit:contain;background:#000}
figcaption{font-size:12px;color:#999;padding:4px 8px;text-align:left}
dl#stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;margin:0}
dl#stats div{background:#1c1c1c;border-radius:6px;padding:8px 12px}
dt{font-size:12px;color:#999}
dd{margin:0;font-size:22px;font-variant-numeric:tabular-nums}
`;

export const VIEWER_JS = `'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  var img = document.getElementById('live');
  var modeEl = document.getElementById('mode');
  var n = 0;
  var mode = '';
  var pollTimer = null;
  var retryTimer = null;
  var blobUrl = null;
  var relayDown = false;

  function url(path, extra) {
    var q = new URLSearchParams(extra || {});
    if (token) q.set('token', token);
    var s = q.toString();
    return s ? path + '?' + s : path;
  }
  function text(id, value) {
    document.getElementById(id).textContent = value;
  }

  function startStream() {
    clearTimeout(pollTimer);
    clearTimeout(retryTimer);
    mode = 'stream';
    modeEl.textContent = 'live MJPEG stream';
    img.src = url('stream.mjpg', { n: String(++n) });
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
        var cam = document.getElementById('camera');
        cam.textContent = s.cameraUp ? 'camera up' : 'camera down';
        cam.className = 'badge ' + (s.cameraUp ? 'up' : 'down');
        cam.title = s.lastError || '';
        text('fps', (Number(s.fps) || 0).toFixed(1) + ' fps');
        text('age', s.frame ? fmtAge(s.frame.ageMs) : 'no frame');
        text('viewers', String(s.clients ? s.clients.mjpeg : 0));
        text('seq', s.frame ? '#' + s.frame.seq + ' \\u00b7 ' + Math.round(s.frame.bytes / 1024) + ' KiB' : '\\u2013');
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
