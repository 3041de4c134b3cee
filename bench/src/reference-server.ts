/**
 * The reference for the fan-out benchmark: what plain Node can do. Each connection gets the same
 * fixed ~50 KB JPEG buffer and is closed; no metrics, no limits, no logging. Prints
 * {"msg":"listening","port":N} once listening. Run by bench/src/run.ts as its own process.
 *
 *   node -r ./bench/register.js bench/src/reference-server.ts [--port N]
 */
import net from 'node:net';
import { FrameRing } from '../../fake-camera/src/frames';

const portArg = process.argv.indexOf('--port');
const port = portArg >= 0 ? Number(process.argv[portArg + 1]) : 0;
const frame = new FrameRing({ ringSize: 1 }).next().data;

const server = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => s.destroy());
  s.end(frame);
});
server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => {
  const a = server.address() as net.AddressInfo;
  process.stdout.write(JSON.stringify({ msg: 'listening', port: a.port, frameBytes: frame.length }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
