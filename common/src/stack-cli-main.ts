/**
 * The stack-config command line: `--cameras-dir DIR --file-name NAME [--any-host-port] < cameras.yml`.
 * Reads a camera list on stdin, checks it for the stack and prints the compose file that puts its
 * cameras into the stack (see stack.ts). scripts/stack-config.sh runs it, on the host's Node or in one
 * of the stack's own images (a VPS needs nothing but Docker): relay/dist/stack-cli.js checks every value
 * as the relay will, common/dist/stack-cli.js (the agent's image) the key names. A bad list exits 2 with
 * one line naming the key path, the value and what is allowed.
 */
import { parseArgs } from 'node:util';
import { exitOnConfigError } from './config';
import { ListChecks, parseStackList, stackCompose } from './stack';

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

export async function stackCli(checks: ListChecks = {}): Promise<void> {
  const usage = 'usage: stack-cli --cameras-dir ABSOLUTE_DIR --file-name NAME [--any-host-port] [--source PATH] < cameras.yml';
  let args;
  try {
    args = parseArgs({
      options: {
        'cameras-dir': { type: 'string' }, 'file-name': { type: 'string' }, 'any-host-port': { type: 'boolean' }, source: { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`stack-config: ${(e as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  const dir = args['cameras-dir'];
  const name = args['file-name'];
  if (!dir?.startsWith('/') || !name || name.includes('/')) {
    process.stderr.write(`stack-config: ${usage}\n`);
    process.exit(2);
  }
  const text = await readStdin();
  try {
    const cameras = parseStackList(text, args.source ?? name, checks);
    process.stdout.write(stackCompose(cameras, { camerasDir: dir, fileName: name, anyHostPort: args['any-host-port'] === true }));
  } catch (e) {
    exitOnConfigError(e, 'stack-config');
  }
}

