import type { Logger } from './logger';

/** Every long-lived part: constructors do no I/O; start() begins work; stop() is idempotent. */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts services in order and stops them in reverse order, once, on SIGTERM/SIGINT (or stop()).
 * A service whose stop() outlasts `graceMs` is abandoned so the process still exits in time.
 */
export class ServiceGroup {
  private readonly started: Service[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly graceMs = 8000,
  ) {}

  async start(services: Service[]): Promise<void> {
    for (const s of services) {
      await s.start();
      this.started.push(s);
    }
  }

  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const deadline = Date.now() + this.graceMs;
    for (const s of [...this.started].reverse()) {
      const left = Math.max(0, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), left);
      });
      try {
        const r = await Promise.race([s.stop().then(() => 'ok' as const), timeout]);
        if (r === 'timeout') this.log.warn({ service: s.name }, 'service did not stop in time; abandoning it');
      } catch (err) {
        this.log.error({ service: s.name, err }, 'service failed to stop cleanly');
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Installs SIGTERM/SIGINT handlers that stop everything and exit 0. */
  installSignalHandlers(onExit: (code: number) => void = (c) => process.exit(c)): void {
    const handler = (signal: NodeJS.Signals) => {
      this.log.info({ signal }, 'shutting down');
      void this.stop().then(() => {
        this.log.info('stopped');
        this.log.flush?.();
        onExit(0);
      });
    };
    process.once('SIGTERM', handler);
    process.once('SIGINT', handler);
  }
}
