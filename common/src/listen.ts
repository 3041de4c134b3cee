import type { Server } from 'node:net';

/**
 * Starts a server listening and resolves once it is bound; rejects with the bind error
 * (e.g. EADDRINUSE) instead of emitting it. After a successful bind, later server errors go to
 * `onError`, so a listener never crashes the process with an unhandled 'error' event.
 */
export function listen(server: Server, opts: { port: number; host?: string; backlog?: number }, onError: (err: Error) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve();
    });
  });
}
