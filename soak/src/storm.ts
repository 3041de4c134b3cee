/**
 * The viewer storm: `clients` connections in five waves over the first half of the hold, spread over
 * the cameras and the three outlets (raw, snapshot, MJPEG; HTTP through the front door the steady
 * viewers use, TLS included). Every fourth client never reads (it sends its request and pauses its
 * socket, as a stuck phone would); the others read and leave: raw and snapshot after their frame, MJPEG
 * after 1-3 s. Whatever is still open when the hold ends is closed.
 */
import net from 'node:net';
import tls from 'node:tls';
import { isWholeJpeg } from '@camrelay/common';
import type { Endpoints } from './viewers';

export interface StormStats {
  clients: number;
  neverRead: number;
  /** readers that got what they came for (a whole JPEG, or MJPEG bytes) */
  served: number;
  /** readers closed without it (refused, 503, cut) */
  failed: number;
}

type Kind = 'raw' | 'snapshot' | 'mjpeg';
const KINDS: Kind[] = ['raw', 'snapshot', 'mjpeg'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function viewerStorm(endpoints: Endpoints, cameras: string[], clients: number, holdMs: number): Promise<StormStats> {
  const stats: StormStats = { clients, neverRead: 0, served: 0, failed: 0 };
  const open = new Set<net.Socket>();
  const done: Promise<void>[] = [];
  const waves = 5;
  const started = Date.now();
  for (let w = 0; w < waves; w++) {
    for (let i = Math.floor((w * clients) / waves); i < Math.floor(((w + 1) * clients) / waves); i++) {
      const kind = KINDS[i % KINDS.length];
      const camera = cameras[Math.floor(i / KINDS.length) % cameras.length];
      done.push(client(endpoints, kind, camera, i % 4 === 3, open, stats));
    }
    await sleep(holdMs / 2 / waves);
  }
  await sleep(Math.max(0, holdMs - (Date.now() - started)));
  for (const s of open) s.destroy();
  await Promise.all(done);
  return stats;
}

function client(endpoints: Endpoints, kind: Kind, camera: string, neverRead: boolean, open: Set<net.Socket>, stats: StormStats): Promise<void> {
  return new Promise((resolve) => {
    const web = endpoints.web;
    const secure = kind !== 'raw' && web.tls;
    const s: net.Socket = kind === 'raw'
      ? net.connect({ host: '127.0.0.1', port: endpoints.raw[camera] })
      : secure ? tls.connect({ host: '127.0.0.1', port: web.port, servername: 'localhost' }) : net.connect({ host: '127.0.0.1', port: web.port });
    open.add(s);
    const chunks: Buffer[] = [];
    let bytes = 0;
    s.on(secure ? 'secureConnect' : 'connect', () => {
      if (kind !== 'raw') {
        const headers = Object.entries({ ...web.headers, connection: 'close' }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
        s.write(`GET /cam/${camera}/${kind === 'mjpeg' ? 'stream.mjpg' : 'snapshot.jpg'} HTTP/1.1\r\n${headers}\r\n`);
      }
      if (neverRead) {
        stats.neverRead++;
        s.pause();
        return;
      }
      if (kind === 'mjpeg') setTimeout(() => s.destroy(), 1000 + Math.random() * 2000);
    });
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      if (kind !== 'mjpeg') chunks.push(c);
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      open.delete(s);
      if (!neverRead) {
        let good = false;
        if (kind === 'raw') good = isWholeJpeg(Buffer.concat(chunks));
        else if (kind === 'snapshot') {
          const all = Buffer.concat(chunks);
          const body = all.indexOf('\r\n\r\n');
          good = all.subarray(0, 12).toString('latin1').includes(' 200') && body > 0 && isWholeJpeg(all.subarray(body + 4));
        } else good = bytes > 1000;
        if (good) stats.served++;
        else stats.failed++;
      }
      resolve();
    });
  });
}
