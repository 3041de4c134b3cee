#!/usr/bin/env node
/**
 * tunnel-agent: keeps `ssh -R` forwards to the VPS up. Wiring only: config -> logger -> metrics ->
 * supervisor + metrics/health server, stopped in reverse order on SIGTERM/SIGINT.
 */
import { MetricsServer, ServiceGroup, createLogger, exitOnConfigError } from '@camrelay/common';
import { AGENT_SETTINGS, AgentConfig, loadConfig, loadForwards, parseArgs } from './config';
import { AgentMetrics } from './metrics';
import { Supervisor } from './supervisor';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION: string = (require('../package.json') as { version: string }).version;

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    if (parseArgs(process.argv.slice(2)).help) {
      process.stdout.write(AGENT_SETTINGS.help());
      return;
    }
    config = loadConfig(process.env);
  } catch (e) {
    exitOnConfigError(e, 'tunnel-agent');
  }
  const log = createLogger({ name: 'tunnel-agent', level: config.logLevel });
  for (const w of config.warnings) log.warn(w);
  // A bug must not leave a half-working tunnel behind: log it and exit non-zero so the service
  // manager (compose restart policy, systemd Restart=) starts a clean process.
  const fatal = (kind: string) => (err: unknown) => {
    log.fatal({ err }, `${kind}; exiting`);
    process.exit(1);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));

  const holder: { sup?: Supervisor } = {};
  const metrics = new AgentMetrics({
    forwards: config.forwards,
    version: VERSION,
    sessionUptime: () => holder.sup?.sessionUptimeSeconds() ?? 0,
  });
  const sup = new Supervisor({ config, metrics, log: log.child({ module: 'supervisor' }) });
  holder.sup = sup;
  const server = new MetricsServer({
    host: config.metricsHost,
    port: config.metricsPort,
    registry: metrics.registry,
    readiness: () => ({ ready: sup.ready, detail: { state: sup.state, forwards: sup.forwardStatus() } }),
    log: log.child({ module: 'metrics' }),
  });

  const group = new ServiceGroup(log, 5000);
  group.installSignalHandlers();
  // SIGHUP re-reads CAMERAS_FILE (not the environment): cameras added, removed or changed without a
  // restart; an invalid file is refused and the running forwards kept.
  process.on('SIGHUP', () => {
    const file = config.camerasFile;
    if (file === undefined) {
      log.info({ signal: 'SIGHUP' }, 'no CAMERAS_FILE: nothing to reload');
      return;
    }
    try {
      const changes = sup.updateForwards(loadForwards(file, config.extraForwards));
      metrics.configReloads.inc({ result: 'ok' });
      log.info({ signal: 'SIGHUP', file, ...changes }, 'camera list reloaded');
    } catch (err) {
      metrics.configReloads.inc({ result: 'error' });
      log.error({ signal: 'SIGHUP', file, err: (err as Error).message }, 'reload: invalid camera list, running forwards kept');
    }
  });
  await group.start([server, { name: 'supervisor', start: () => sup.start(), stop: () => sup.stop() }]);
  log.info(
    {
      version: VERSION, server: `${config.sshUser}@${config.sshHost}:${config.sshPort}`,
      forwards: config.forwards.map((f) => (f.camera ? `${f.camera}=${f.spec}` : f.spec)), camerasFile: config.camerasFile ?? null, hostKey: config.hostKey.kind === 'pinned' ? config.hostKey.source : 'INSECURE',
      metrics: `${config.metricsHost}:${server.port}`,
    },
    'tunnel-agent started',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`tunnel-agent: fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
