#!/usr/bin/env node
/** Wires the fake camera: config → FakeCamera (+ optional control endpoint) → signal handling. */
import { createLogger, exitOnConfigError, ServiceGroup } from '@camrelay/common';
import { FakeCamera } from './camera';
import { FakeCameraConfig, loadConfig, parseArgs, USAGE } from './config';
import { ControlServer } from './control';

async function main(): Promise<void> {
  let cfg: FakeCameraConfig;
  try {
    const args = parseArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write(USAGE);
      return;
    }
    cfg = loadConfig(process.env, args.flags);
  } catch (e) {
    exitOnConfigError(e, 'fake-camera');
  }
  const log = createLogger({ name: 'fake-camera', level: cfg.logLevel });
  const camera = new FakeCamera({ ...cfg, log: log.child({ module: 'camera' }) });
  const services: { name: string; start(): Promise<void>; stop(): Promise<void> }[] = [camera];
  const control = cfg.controlPort === undefined ? undefined : new ControlServer({ host: cfg.controlHost, port: cfg.controlPort, camera, log: log.child({ module: 'control' }) });
  if (control) services.push(control);
  const group = new ServiceGroup(log, 5000);
  group.installSignalHandlers();
  await group.start(services);
  log.info(
    {
      ...(cfg.pushTo !== undefined ? { pushTo: cfg.pushTo } : { port: camera.port, host: cfg.host }),
      mode: camera.mode,
      ...(control ? { controlPort: control.port } : {}),
      captureMs: cfg.captureMs,
      linkKbps: cfg.linkKbps,
      width: cfg.width,
      height: cfg.height,
      frameBytes: camera.ring.averageBytes,
    },
    cfg.pushTo !== undefined ? 'pushing' : 'listening',
  );
}

main().catch((err) => {
  process.stderr.write(`fake-camera: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
