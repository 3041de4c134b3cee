/**
 * A TCP proxy on loopback that can turn into a silent blackhole: while frozen, bytes in both
 * directions are read and dropped (no FIN, no RST, no data: a dead link or a NAT that forgot the
 * flow), and new connections are accepted but go nowhere. Only an application-level keepalive
 * can notice. thaw() ends the frozen connections (as both ends would learn once the link is back)
 * and forwards new connections normally again. Records when each connection arrived, so the
 * benchmark can see when a client gave up on its old connection and dialled again.
 */
import net from 'node:net';

export class BlackholeProxy {
  private server: net.Server | undefined;
  private frozen = false;
  private readonly live = new Set<net.Socket>();
  /** performance.now() of each accepted connection */
  readonly arrivals: number[] = [];

  constructor(private readonly targetPort: number) {}

  get port(): number {
    return (this.server?.address() as net.AddressInfo | null)?.port ?? -1;
  }

  async start(): Promise<void> {
    const server = net.createServer((down) => this.onConnection(down));
    server.on('error', () => undefined);
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }

  private onConnection(down: net.Socket): void {
    this.arrivals.push(performance.now());
    down.setNoDelay(true);
    this.live.add(down);
    down.on('close', () => this.live.delete(down));
    down.on('error', () => down.destroy());
    if (this.frozen) {
      down.on('data', () => undefined); // swallow
      return;
    }
    const up = net.connect({ port: this.targetPort, host: '127.0.0.1', noDelay: true });
    this.live.add(up);
    up.on('close', () => {
      this.live.delete(up);
      if (!this.frozen) down.destroy();
    });
    up.on('error', () => up.destroy());
    down.on('close', () => {
      if (!this.frozen) up.destroy();
    });
    const relay = (from: net.Socket, to: net.Socket) =>
      from.on('data', (d: Buffer) => {
        if (this.frozen) return; // dropped on the floor
        if (!to.write(d)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
    relay(down, up);
    relay(up, down);
  }

  /** From now on nothing gets through, and nobody is told. */
  freeze(): void {
    this.frozen = true;
  }

  /** The link is back: frozen connections end, new ones are forwarded. */
  thaw(): void {
    for (const s of this.live) s.destroy();
    this.live.clear();
    this.frozen = false;
  }

  async stop(): Promise<void> {
    for (const s of this.live) s.destroy();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
