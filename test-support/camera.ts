/** Camera stand-ins for tests: tiny in-process TCP cameras and recognisable fake JPEGs. */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A whole JPEG (SOI ... EOI) whose bytes 4-5 hold n (enough for checkJpeg and for telling frames apart). */
export function jpeg(n: number, size = 16): Buffer {
  const b = Buffer.alloc(Math.max(size, 8), 0x11);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[3] = 0xe0;
  b.writeUInt16BE(n & 0xffff, 4);
  b[b.length - 2] = 0xff;
  b[b.length - 1] = 0xd9;
  return b;
}

/** The n a jpeg() was made with. */
export const frameNo = (b: Buffer) => b.readUInt16BE(4);

/** A bigger "JPEG" (SOI ... EOI) filled with n & 0xff, n as UInt32BE at byte 4; outlets never decode it. */
export function fakeJpeg(n: number, size = 2048): Buffer {
  const b = Buffer.alloc(Math.max(size, 16), n & 0xff);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[3] = 0xe0;
  b.writeUInt32BE(n, 4);
  b[b.length - 2] = 0xff;
  b[b.length - 1] = 0xd9;
  return b;
}

/** What a TestCamera does with its n-th connection (1-based). */
export type Behaviour = (socket: net.Socket, n: number) => void;

/** One whole jpeg(n), then EOF: a healthy camera. */
export const ok: Behaviour = (s, n) => s.end(jpeg(n));

/** A loopback camera: each connection is handed to the current behaviour. */
export class TestCamera {
  connections = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  constructor(public behaviour: Behaviour = ok) {
    this.server = net.createServer((s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      this.behaviour(s, this.connections);
    });
  }
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return this.port;
  }
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
