import fs from 'node:fs';
import net from 'node:net';
import { freePorts } from '../../index';

describe('freePorts', () => {
  test('hands out distinct bindable ports below the ephemeral range, never the same one twice', async () => {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const first = await freePorts(20);
    const second = await freePorts(20);
    const all = [...first, ...second];
    expect(new Set(all).size).toBe(40);
    for (const p of all) {
      expect(p).toBeGreaterThanOrEqual(20_000);
      expect(p).toBeLessThan(low);
    }
    const s = net.createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(first[0], '127.0.0.1', resolve));
    await new Promise((r) => s.close(r));
  });
});
