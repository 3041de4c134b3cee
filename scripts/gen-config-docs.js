#!/usr/bin/env node
/**
 * Writes docs/configuration.md from the daemons' settings tables (one declaration per setting, see
 * common/src/settings.ts). Run `npm run docs:config` (builds first). `--check` only compares and exits
 * 1 when the file is stale. The unit test config-docs.test.ts renders the same page from the sources.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'docs', 'configuration.md');

function render() {
  const { renderConfigPage } = require(path.join(ROOT, 'common/dist'));
  const { RELAY_SETTINGS } = require(path.join(ROOT, 'relay/dist/config'));
  const { AGENT_SETTINGS } = require(path.join(ROOT, 'tunnel-agent/dist/config'));
  const { FAKE_CAMERA_SETTINGS } = require(path.join(ROOT, 'fake-camera/dist/config'));
  return renderConfigPage([RELAY_SETTINGS, AGENT_SETTINGS, FAKE_CAMERA_SETTINGS]);
}

if (require.main === module) {
  const page = render();
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
    if (current !== page) {
      process.stderr.write('docs/configuration.md is stale: run npm run docs:config\n');
      process.exit(1);
    }
  } else {
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, page);
    process.stdout.write(`wrote ${path.relative(process.cwd(), OUT)}\n`);
  }
}

module.exports = { render, OUT };
