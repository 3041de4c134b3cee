/**
 * An in-process ssh2 Server (after mscdex/ssh2 test/common.js) for fault shapes a real sshd cannot
 * produce on demand: auth that flips, tcpip-forward requests that are refused or never answered,
 * channels opened at will. Listens on 127.0.0.1:0.
 */
import net from 'node:net';
import { Server, utils, type Connection, type ParsedKey, type ServerChannel } from 'ssh2';
import { fingerprintSha256 } from '../../tunnel-agent/src/host-key';
import { ed25519KeyPair } from '../ssh-keys';

export type ForwardReply = 'accept' | 'reject' | 'ignore';

export interface TestSshServerOptions {
  /** Decides each tcpip-forward request; `n` counts requests across all connections (0-based). */
  forwardReply?: (n: number) => ForwardReply;
  authOk?: () => boolean;
}

export interface BoundForward {
  conn: Connection;
  bindAddr: string;
  bindPort: number;
}

export class TestSshServer {
  readonly hostKeyPrivate: string;
  readonly hostPublicLine: string;
  readonly hostFingerprint: string;
  readonly clientPrivateKey: string;
  private readonly clientPub: ParsedKey;
  private readonly server: Server;
  /** Our own listener: each accepted socket is tracked, then handed to ssh2 (public injectSocket). */
  private readonly listener: net.Server;
  readonly conns: Connection[] = [];
  readonly rawSockets = new Set<net.Socket>();
  readonly forwards: BoundForward[] = [];
  readonly cancels: { bindAddr: string; bindPort: number }[] = [];
  forwardRequests = 0;
  authAttempts = 0;
  port = 0;

  constructor(readonly opts: TestSshServerOptions = {}) {
    const host = ed25519KeyPair();
    this.hostKeyPrivate = host.private;
    this.hostPublicLine = host.public;
    this.hostFingerprint = fingerprintSha256(Buffer.from(host.public.split(' ')[1], 'base64'));
    const client = ed25519KeyPair();
    this.clientPrivateKey = client.private;
    this.clientPub = utils.parseKey(client.public) as ParsedKey;
    this.server = new Server({ hostKeys: [host.private] }, (conn) => this.onConnection(conn));
    this.server.on('error', () => {});
    this.listener = net.createServer((s) => {
      // Track the raw sockets so tests can cut them abruptly.
      this.rawSockets.add(s);
      s.on('close', () => this.rawSockets.delete(s));
      this.server.injectSocket(s);
    });
    this.listener.on('error', () => {});
  }

  private onConnection(conn: Connection): void {
    this.conns.push(conn);
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      this.authAttempts++;
      const ok =
        (this.opts.authOk?.() ?? true) &&
        ctx.key.algo === this.clientPub.type &&
        ctx.key.data.equals(this.clientPub.getPublicSSH()) &&
        (!ctx.signature || this.clientPub.verify(ctx.blob as Buffer, ctx.signature, ctx.hashAlgo) === true);
      if (ok) ctx.accept();
      else ctx.reject(['publickey']);
    });
    conn.on('ready', () => {
      conn.on('request', (accept, reject, name, info) => {
        if (name === 'cancel-tcpip-forward') {
          // as sshd: the port is released
          const c = info as { bindAddr: string; bindPort: number };
          this.cancels.push(c);
          const k = this.forwards.findIndex((f) => f.conn === conn && f.bindPort === c.bindPort && f.bindAddr === c.bindAddr);
          if (k >= 0) this.forwards.splice(k, 1);
        }
        if (name !== 'tcpip-forward') return accept?.();
        const i = info as { bindAddr: string; bindPort: number };
        const reply = this.opts.forwardReply?.(this.forwardRequests++) ?? 'accept';
        if (reply === 'accept') {
          this.forwards.push({ conn, bindAddr: i.bindAddr, bindPort: i.bindPort });
          accept?.();
        } else if (reply === 'reject') reject?.();
      });
    });
    conn.on('close', () => {
      for (let k = this.forwards.length - 1; k >= 0; k--) if (this.forwards[k].conn === conn) this.forwards.splice(k, 1);
    });
  }

  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.listener.listen(port, '127.0.0.1', () => resolve()));
    this.port = (this.listener.address() as net.AddressInfo).port;
    return this;
  }

  /** Opens a forwarded-tcpip channel as sshd would when someone connects to the bound port. */
  openForwarded(bindPort: number): Promise<ServerChannel> {
    const f = [...this.forwards].reverse().find((x) => x.bindPort === bindPort);
    if (!f) return Promise.reject(new Error(`no bound forward on ${bindPort}`));
    return new Promise((resolve, reject) => {
      f.conn.forwardOut(f.bindAddr, f.bindPort, '127.0.0.1', 40000, (err, ch) => (err ? reject(err) : resolve(ch)));
    });
  }

  /** Cuts every client connection at the TCP level (like a crashed sshd). */
  cutAll(): void {
    for (const s of this.rawSockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }
}

/** Reads a channel to its end. */
export function readAll(ch: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    ch.on('data', (c: Buffer) => chunks.push(c));
    ch.on('end', () => resolve(Buffer.concat(chunks)));
    ch.on('error', reject);
  });
}
