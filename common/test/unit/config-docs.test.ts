/**
 * docs/configuration.md is generated (npm run docs:config) from the daemons' settings tables; this
 * fails when the committed file differs from what the tables render, so no default is written twice.
 */
import fs from 'node:fs';
import path from 'node:path';
import { renderConfigPage } from '../../src/settings';
import { RELAY_SETTINGS } from '../../../relay/src/config';
import { AGENT_SETTINGS } from '../../../tunnel-agent/src/config';
import { FAKE_CAMERA_SETTINGS } from '../../../fake-camera/src/config';

const ROOT = path.resolve(__dirname, '../../..');

test('docs/configuration.md is the generated page (run npm run docs:config after changing a setting)', () => {
  const committed = fs.readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');
  expect(committed).toBe(renderConfigPage([RELAY_SETTINGS, AGENT_SETTINGS, FAKE_CAMERA_SETTINGS]));
});

test('.env.example: every daemon section lists exactly its declared variables with their defaults', () => {
  const env = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
  const problems = [RELAY_SETTINGS, AGENT_SETTINGS, FAKE_CAMERA_SETTINGS].flatMap((t) => t.checkEnvExample(env).map((p) => `${t.spec.section}: ${p}`));
  expect(problems).toEqual([]);
});

/**
 * A variable offered in .env.example that docker-compose.yml does not pass to the container does
 * nothing in the stack. Every setting is either passed or fixed by the stack, for a reason listed here.
 */
test('docker-compose.yml passes every relay and agent setting to its container, except those the stack sets itself', async () => {
  const { parse } = await import('yaml');
  const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { environment?: Record<string, unknown> }>;
    'x-agent-env': Record<string, unknown>;
  };
  const fixedByStack: Record<string, string> = {
    CAMERAS_FILE: 'written by scripts/stack-config.sh with the mounted list',
    CAMERA_MODE: 'the single camera is pulled through the tunnel; push cameras are list entries',
    INGEST_HOST: 'fixed: every interface of the container',
    INGEST_PORT: 'each push camera\'s ingest_port, from the list',
    BIND_HOST: 'fixed: every interface of the container',
    METRICS_HOST: 'fixed: every interface of the container (not published)',
    TRUSTED_PROXY_CIDRS: 'compose/https.yml (Caddy\'s address) or compose/plain-http.yml',
    VIEWER_TOKEN_FILE: 'the stack passes VIEWER_TOKEN',
    VIEWER_PASSWORD_FILE: 'the stack passes VIEWER_PASSWORD',
    SESSION_SECRET_FILE: 'the stack passes SESSION_SECRET',
    SSH_PRIVATE_KEY_PASSPHRASE_FILE: 'make keys writes an unencrypted key, mounted as a compose secret',
    SSH_KNOWN_HOSTS_FILE: 'the stack pins with SSH_HOST_KEY',
    SSH_INSECURE_ACCEPT_ANY_HOST_KEY: 'never in the stack',
  };
  const relay = Object.keys(compose.services.relay.environment ?? {});
  const agent = [...Object.keys(compose['x-agent-env']), ...Object.keys(compose.services['tunnel-agent'].environment ?? {})];
  const missing = [
    ...RELAY_SETTINGS.variables().map((v) => v.name).filter((n) => !relay.includes(n) && !(n in fixedByStack)).map((n) => `relay: ${n}`),
    ...AGENT_SETTINGS.variables().map((v) => v.name).filter((n) => !agent.includes(n) && !(n in fixedByStack)).map((n) => `tunnel-agent: ${n}`),
  ];
  expect(missing).toEqual([]);
});
