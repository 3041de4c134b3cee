/**
 * A TCP proxy on 127.0.0.1:0 in front of a server, able to blackhole its connections: bytes are
 * silently dropped in both directions while both TCP connections stay open, as on a dead link.
 */
import net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  dead: boolean;
}

export class BlackholeProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  port = 0;
  /** When set, NEW connections are blackholed from the start too. */
  blackholeNew = false;
  connections = 0;

  constructor(private readonly upstreamPort: number, private readonly upstreamHost = '127.0.0.1') {}

  async start(): Promise<this> {
    const server = net.createServer((client) => {
      this.connections++;
      const upstream = net.connect({ port: this.upstreamPort, host: this.upstreamHost, noDelay: true });
      client.setNoDelay(true);
      const pair: Pair = { client, upstream, dead: this.blackholeNew };
      this.pairs.add(pair);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('data', (d) => {
        if (!pair.dead) upstream.write(d);
      });
      upstream.on('data', (d) => {
        if (!pair.dead) client.write(d);
      });
      // A dead link does not deliver FIN/RST either.
      client.on('end', () => (pair.dead ? undefined : upstream.end()));
      upstream.on('end', () => (pair.dead ? undefined : client.end()));
      client.on('error', close);
      upstream.on('error', close);
      client.on('close', () => (pair.dead ? undefined : close()));
      upstream.on('close', () => (pair.dead ? undefined : close()));
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  /** Blackholes every connection open now; new connections still pass unless blackholeNew. */
  blackholeExisting(): number {
    for (const p of this.pairs) p.dead = true;
    return this.pairs.size;
  }

  /** Cuts every connection abruptly (both sides see the TCP connection close). Returns how many. */
  cutAll(): number {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) {
      p.client.destroy();
      p.upstream.destroy();
      this.pairs.delete(p);
    }
    return n;
  }

  /** Ends the blackholed connections (a test clean-up, not part of the fault). */
  destroyDead(): void {
    for (const p of [...this.pairs]) {
      if (!p.dead) continue;
      p.client.destroy();
      p.upstream.destroy();
      this.pairs.delete(p);
    }
  }

  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
