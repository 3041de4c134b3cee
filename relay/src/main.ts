#!/usr/bin/env node
/**
 * The relay daemon: config -> logger -> Relay (metrics, store, source, outlets, archive, metrics
 * server) -> signal handlers. Only wiring lives here; see relay.ts for the parts.
 */
import './v8-tiering'; // first: V8 settings before any module loads
import { createLogger, exitOnConfigError } from '@camrelay/common';
import { loadConfig, RelayConfig, usage } from './config';
import { Relay, VERSION } from './relay';

async function main(): Promise<void> {
  let config: RelayConfig;
  let warnings: readonly string[];
  try {
    const r = loadConfig(process.argv.slice(2), process.env);
    if (r.help) {
      process.stdout.write(usage());
      return;
    }
    config = r.config;
    warnings = r.warnings;
  } catch (e) {
    exitOnConfigError(e, 'camrelay-relay');
  }
  const log = createLogger({ name: 'relay', level: config.logLevel });
  for (const w of warnings) log.warn(w);
  // A bug must not leave a half-working daemon: log it, flush, exit non-zero (the supervisor restarts us).
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    log.flush?.();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled promise rejection');
    log.flush?.();
    process.exit(1);
  });
  const relay = new Relay({ config, log });
  relay.installSignalHandlers();
  let ports;
  try {
    ports = await relay.start();
  } catch (err) {
    log.fatal({ err }, 'relay failed to start');
    log.flush?.();
    process.exit(1);
  }
  const c = config;
  log.info(
    {
      version: VERSION,
      mode: c.source.mode,
      ...(c.source.mode === 'pull' ? { cameraHost: c.source.host, cameraPort: c.source.port } : {}),
      ...ports,
      bindHost: c.clients.bindHost,
      maxFps: c.source.maxFps,
      idleFps: c.source.idleFps,
      access: {
        allowCidrs: c.clients.allow.empty ? 'any (open)' : c.clients.allow.cidrs,
        viewerToken: c.clients.viewerToken !== undefined,
        viewerPassword: c.clients.viewerPassword !== undefined,
        trustedProxies: c.clients.trustedProxies.empty ? 'none' : c.clients.trustedProxies.cidrs,
      },
      basePath: c.clients.basePath || '/',
      snapshotCacheS: c.clients.snapshotCacheS,
      archive: c.archive.cron ?? 'off',
      camerasFile: c.camerasFile ?? null,
    },
    'relay started',
  );
}

void main();
