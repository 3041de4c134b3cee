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
