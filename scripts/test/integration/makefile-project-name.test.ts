/**
 * The Makefile's compose project name: the environment's or the command line's, else
 * COMPOSE_PROJECT_NAME from .env (as .env.example offers), else camrelay. Runs the real `make up-vps`
 * in a scratch directory with COMPOSE pointed at a stub that prints the project name it was given.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../../../test-support';

const MAKEFILE = path.join(ROOT, 'Makefile');
let dir: string;
let stub: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camrelay-make-'));
  stub = path.join(dir, 'fake-compose');
  fs.writeFileSync(stub, '#!/bin/sh\nprintf "project=%s args=%s\\n" "$COMPOSE_PROJECT_NAME" "$*"\n', { mode: 0o755 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The project name `make up-vps` hands to Compose, with `.env` holding envFile (undefined: no .env). */
function projectName(envFile: string | undefined, env: Record<string, string> = {}, makeArgs: string[] = []): string {
  const dotenv = path.join(dir, '.env');
  fs.rmSync(dotenv, { force: true });
  if (envFile !== undefined) fs.writeFileSync(dotenv, envFile);
  const baseEnv = { ...process.env };
  delete baseEnv.COMPOSE_PROJECT_NAME;
  delete baseEnv.MAKEFLAGS;
  const out = execFileSync('make', ['-s', '-f', MAKEFILE, '-C', dir, 'up-vps', `COMPOSE=${stub}`, ...makeArgs], {
    env: { ...baseEnv, ...env },
    encoding: 'utf8',
  });
  const m = /^project=(.*) args=--profile vps up -d --remove-orphans$/m.exec(out);
  if (!m) throw new Error(`unexpected make output: ${out}`);
  return m[1] as string;
}

describe('Makefile COMPOSE_PROJECT_NAME', () => {
  test('defaults to camrelay without .env', () => {
    expect(projectName(undefined)).toBe('camrelay');
  });

  test('defaults to camrelay when .env leaves it commented out (as .env.example ships)', () => {
    expect(projectName('# COMPOSE_PROJECT_NAME=camrelay\nRELAY_PORT=8080\n')).toBe('camrelay');
  });

  test('takes the value from .env', () => {
    expect(projectName('RELAY_PORT=8080\nCOMPOSE_PROJECT_NAME=cams-home\n')).toBe('cams-home');
  });

  test('reads .env the way Compose does: quotes, export, blanks, CRLF, last line wins', () => {
    expect(projectName('COMPOSE_PROJECT_NAME="quoted"\n')).toBe('quoted');
    expect(projectName("COMPOSE_PROJECT_NAME='single'\n")).toBe('single');
    expect(projectName('  export COMPOSE_PROJECT_NAME = spaced  \n')).toBe('spaced');
    expect(projectName('COMPOSE_PROJECT_NAME=windows\r\n')).toBe('windows');
    expect(projectName('COMPOSE_PROJECT_NAME=first\nCOMPOSE_PROJECT_NAME=second\n')).toBe('second');
    expect(projectName('MY_COMPOSE_PROJECT_NAME=other\n')).toBe('camrelay');
  });

  test('an empty value in .env means the default', () => {
    expect(projectName('COMPOSE_PROJECT_NAME=\n')).toBe('camrelay');
  });

  test('the environment beats .env, and the make command line beats both', () => {
    expect(projectName('COMPOSE_PROJECT_NAME=from-dotenv\n', { COMPOSE_PROJECT_NAME: 'from-env' })).toBe('from-env');
    expect(projectName('COMPOSE_PROJECT_NAME=from-dotenv\n', { COMPOSE_PROJECT_NAME: 'from-env' }, ['COMPOSE_PROJECT_NAME=from-cli'])).toBe('from-cli');
  });
});
