/**
 * Real proxies in front of a relay, run directly (no docker) on loopback with OS-picked ports and
 * their state in a temp dir:
 * - startCaddy(): Debian's caddy with the stack's own caddy/Caddyfile (DOMAIN unset = localhost, so
 *   Caddy's local CA issues the certificate); `ca` is that CA's root (pki/authorities/local/root.crt)
 *   and `tls` the options a client needs to trust it (servername localhost).
 * - startVarnish(): Debian's varnishd in the foreground (-F) with its built-in VCL in front of one
 *   backend: a shared HTTP cache that honours Cache-Control and never caches requests that carry
 *   Authorization or Cookie.
 * Both are Child processes (killAllChildren() ends them); stop() also removes the temp dir.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Child, findExecutable, freePorts, ROOT, spawnChild, waitFor } from './index';

export const CADDY = findExecutable(['/usr/bin/caddy']);
export const VARNISHD = findExecutable(['/usr/sbin/varnishd']);

export interface CaddyProc {
  child: Child;
  httpsPort: number;
  /** HTTP_REDIRECT_PORT */
  httpPort: number;
  /** https://localhost:<port> */
  base: string;
  /** the local CA's root certificate (PEM) */
  ca: Buffer;
  /** the intermediate's SPKI hash (base64 SHA-256), for Chromium's --ignore-certificate-errors-spki-list */
  intermediateSpki: string;
  /** TLS options that trust the local CA and ask for localhost (connect to 127.0.0.1) */
  tls: { ca: Buffer; servername: string };
  /** Caddy's access log lines (JSON on stdout) */
  accessLog(): Record<string, unknown>[];
  stop(): Promise<void>;
}

/** Runs caddy/Caddyfile with `env` (RELAY_UPSTREAM at least) on free ports; resolves once HTTPS answers. */
export async function startCaddy(env: Record<string, string>): Promise<CaddyProc> {
  if (!CADDY) throw new Error('caddy is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-caddy-'));
  const [httpsPort, httpPort] = await freePorts(2);
  const child = spawnChild(CADDY, ['run', '--config', path.join(ROOT, 'caddy', 'Caddyfile'), '--adapter', 'caddyfile'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_DATA_HOME: path.join(dir, 'data'), XDG_CONFIG_HOME: path.join(dir, 'config'),
      HTTPS_PORT: String(httpsPort), HTTP_REDIRECT_PORT: String(httpPort), ...env,
    },
  });
  const root = path.join(dir, 'data', 'caddy', 'pki', 'authorities', 'local');
  const pem = () => (fs.existsSync(path.join(root, 'root.crt')) ? fs.readFileSync(path.join(root, 'root.crt')) : Buffer.alloc(0));
  await waitFor(() => pem().includes('-----END CERTIFICATE-----'), 15_000, `caddy's local CA (stderr: ${child.stderr().slice(-2000)})`);
  const ca = pem();
  const options = { ca, servername: 'localhost' };
  // the site certificate is issued right after start-up: wait for a verified handshake
  await waitFor(
    () => new Promise<boolean>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: httpsPort, ...options }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    }),
    15_000, `caddy serving HTTPS on ${httpsPort} (stderr: ${child.stderr().slice(-2000)})`, 100,
  );
  const intermediate = new crypto.X509Certificate(fs.readFileSync(path.join(root, 'intermediate.crt')));
  const spki = intermediate.publicKey.export({ type: 'spki', format: 'der' });
  return {
    child, httpsPort, httpPort, ca, tls: options,
    base: `https://localhost:${httpsPort}`,
    intermediateSpki: crypto.createHash('sha256').update(spki).digest('base64'),
    accessLog: () => child.logs().filter((l) => String(l.logger ?? '').startsWith('http.log.access')),
    stop: async () => {
      await child.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface VarnishProc {
  child: Child;
  port: number;
  base: string;
  stop(): Promise<void>;
}

/**
 * varnishd -F in front of 127.0.0.1:`backendPort`; resolves once it answers. By default with the
 * built-in VCL. `careless`: a cache that also stores and serves responses to requests with
 * Authorization or Cookie (keyed by URL only), so only the backend's Cache-Control keeps a private
 * response out of it.
 */
export async function startVarnish(backendPort: number, opts: { careless?: boolean } = {}): Promise<VarnishProc> {
  if (!VARNISHD) throw new Error('varnishd is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-varnish-'));
  const [port] = await freePorts(1);
  let backend = ['-b', `127.0.0.1:${backendPort}`];
  if (opts.careless) {
    const vcl = path.join(dir, 'careless.vcl');
    fs.writeFileSync(vcl, `vcl 4.1;\nbackend default { .host = "127.0.0.1"; .port = "${backendPort}"; }\n` +
      '# skip the built-in pass for Authorization and Cookie: look everything up by URL\nsub vcl_recv { return (hash); }\n');
    backend = ['-f', vcl];
  }
  // -j none: run as the invoking user (no jail, no varnish user needed); -n: its own work dir
  const child = spawnChild(VARNISHD, [
    '-F', '-j', 'none', '-n', path.join(dir, 'work'), '-a', `127.0.0.1:${port}`, ...backend, '-s', 'malloc,32m',
    '-p', 'thread_pool_min=20', '-p', 'thread_pools=1',
  ]);
  await waitFor(async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      return true;
    } catch {
      return false;
    }
  }, 20_000, `varnishd answering on ${port} (stderr: ${child.stderr().slice(-2000)})`, 100);
  return {
    child, port, base: `http://127.0.0.1:${port}`,
    stop: async () => {
      await child.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
