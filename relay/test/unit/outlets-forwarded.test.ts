/**
 * Who the client is behind a proxy: the trust rules of forwarded.ts. Headers from an untrusted peer
 * change nothing; from a trusted one the lists are walked from the right, skipping trusted hops, and
 * headers that name no client are refused, never read as the proxy's own address.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { CidrList } from '@camrelay/common';
import { type ClientInfo, TrustedProxies, forwardedNode } from '../../src/outlets/forwarded';

const proxies = (...cidrs: string[]) => new TrustedProxies(new CidrList(cidrs));
const req = (peer: string, headers: IncomingHttpHeaders) => ({ socket: { remoteAddress: peer }, headers: { host: 'cam.example', ...headers } });
/** resolve() that must name a client */
const who = (p: TrustedProxies, r: ReturnType<typeof req>): ClientInfo => {
  const c = p.resolve(r);
  if ('bad' in c) throw new Error(`no client: ${c.bad}`);
  return c;
};

describe('TrustedProxies', () => {
  const caddy = proxies('10.0.0.2/32', 'fd00::2/128');

  test('from an untrusted peer every forwarding header is ignored', () => {
    const spoof = {
      'x-forwarded-for': '198.51.100.7', forwarded: 'for=198.51.100.8;proto=https', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example',
    };
    for (const p of [caddy, proxies()]) {
      expect(p.resolve(req('203.0.113.9', spoof))).toEqual({
        address: '203.0.113.9', peer: '203.0.113.9', proxied: false, proto: 'http', host: 'cam.example', via: 'peer',
      });
    }
    // an IPv4-mapped peer is the same peer
    expect(who(caddy, req('::ffff:203.0.113.9', spoof)).address).toBe('203.0.113.9');
    expect(proxies().trusts('127.0.0.1')).toBe(false);
  });

  test('a trusted peer without forwarding headers: the peer itself is the client', () => {
    expect(caddy.resolve(req('10.0.0.2', {}))).toMatchObject({ address: '10.0.0.2', proxied: true, proto: 'http', via: 'peer' });
    expect(caddy.resolve(req('::ffff:10.0.0.2', { 'x-forwarded-proto': 'https' }))).toMatchObject({ address: '10.0.0.2', proto: 'https' });
  });

  test('X-Forwarded-For: the first untrusted address from the right; what the client wrote further left is ignored', () => {
    expect(caddy.resolve(req('10.0.0.2', { 'x-forwarded-for': '198.51.100.7' }))).toMatchObject({ address: '198.51.100.7', via: 'x-forwarded-for' });
    // the client sent "X-Forwarded-For: 192.0.2.66" itself and a proxy appended
    expect(who(caddy, req('10.0.0.2', { 'x-forwarded-for': '192.0.2.66, 198.51.100.7' })).address).toBe('198.51.100.7');
    // several proxies: the inner ones are trusted and skipped
    const chain = proxies('10.0.0.0/24');
    expect(who(chain, req('10.0.0.2', { 'x-forwarded-for': '192.0.2.66, 198.51.100.7, 10.0.0.5, 10.0.0.4' })).address).toBe('198.51.100.7');
    // an untrusted proxy in the middle: its claim about its client is not believed
    expect(who(chain, req('10.0.0.2', { 'x-forwarded-for': '198.51.100.7, 203.0.113.1, 10.0.0.4' })).address).toBe('203.0.113.1');
    // every hop trusted: the leftmost
    expect(who(chain, req('10.0.0.2', { 'x-forwarded-for': '10.0.0.9, 10.0.0.4' })).address).toBe('10.0.0.9');
  });

  test('X-Forwarded-For with IPv6: bare addresses, mapped IPv4 and zone ids', () => {
    expect(who(caddy, req('fd00::2', { 'x-forwarded-for': '2001:db8::17' })).address).toBe('2001:db8::17');
    expect(who(caddy, req('::ffff:10.0.0.2', { 'x-forwarded-for': '::ffff:198.51.100.7' })).address).toBe('198.51.100.7');
    expect(who(caddy, req('10.0.0.2', { 'x-forwarded-for': 'fe80::1%eth0' })).address).toBe('fe80::1');
  });

  test('a malformed X-Forwarded-For is refused, never read as the proxy\'s own address', () => {
    for (const bad of ['not-an-ip', '198.51.100.7:5555', '[2001:db8::1]', '198.51.100.7, garbage', '1.2.3', '', ' , ']) {
      expect(caddy.resolve(req('10.0.0.2', { 'x-forwarded-for': bad, 'x-forwarded-proto': 'https' }))).toEqual({ bad: 'malformed', peer: '10.0.0.2' });
    }
    // garbage left of the client is never reached
    expect(who(caddy, req('10.0.0.2', { 'x-forwarded-for': 'garbage, 198.51.100.7' })).address).toBe('198.51.100.7');
  });

  test('Forwarded (RFC 7239): for= with quoted IPv6 and ports, proto of the element that named the client', () => {
    expect(caddy.resolve(req('10.0.0.2', { forwarded: 'for=198.51.100.7;proto=https;host=cam.example' }))).toMatchObject({
      address: '198.51.100.7', proto: 'https', via: 'forwarded',
    });
    expect(who(caddy, req('10.0.0.2', { forwarded: 'for="[2001:db8:cafe::17]:4711"' })).address).toBe('2001:db8:cafe::17');
    expect(caddy.resolve(req('10.0.0.2', { forwarded: 'For="198.51.100.7:8080";Proto=HTTPS' }))).toMatchObject({ address: '198.51.100.7', proto: 'https' });
    const chain = proxies('10.0.0.0/24');
    const h = { forwarded: 'for=192.0.2.66;proto=http, for=198.51.100.7;proto=https, for=10.0.0.4;proto=http' };
    expect(chain.resolve(req('10.0.0.2', h))).toMatchObject({ address: '198.51.100.7', proto: 'https' });
    // two header lines, as Node joins them
    expect(who(chain, req('10.0.0.2', { forwarded: ['for=198.51.100.7', 'for=10.0.0.4'] as unknown as string })).address).toBe('198.51.100.7');
  });

  test('unknown, obfuscated or missing for= name no client: refused, not the hop that wrote it', () => {
    const unnamed = { bad: 'unnamed', peer: '10.0.0.2' };
    for (const forwarded of ['for=unknown', 'for=_hidden', 'for="_gazonk:_port"', 'proto=https']) {
      expect(caddy.resolve(req('10.0.0.2', { forwarded }))).toEqual(unnamed);
    }
    const chain = proxies('10.0.0.0/24');
    expect(chain.resolve(req('10.0.0.2', { forwarded: 'for=198.51.100.7, for=unknown, for=10.0.0.4' }))).toEqual(unnamed);
    // an element without for= discloses nothing either
    expect(chain.resolve(req('10.0.0.2', { forwarded: 'for=198.51.100.7, proto=https' }))).toEqual(unnamed);
    // X-Forwarded-For may say unknown too
    expect(chain.resolve(req('10.0.0.2', { 'x-forwarded-for': '198.51.100.7, unknown, 10.0.0.4' }))).toEqual(unnamed);
    expect(caddy.resolve(req('10.0.0.2', { 'x-forwarded-for': '_hidden' }))).toEqual(unnamed);
    // unknown left of the client is never reached
    expect(who(chain, req('10.0.0.2', { forwarded: 'for=unknown, for=198.51.100.7, for=10.0.0.4' })).address).toBe('198.51.100.7');
  });

  test('a malformed Forwarded is refused', () => {
    for (const bad of ['for=198.51.100.7:80', 'for="198.51.100.7', 'for=', ';;', '', 'for="[not-ipv6]"', 'for="2001:db8::1"', 'for="300.1.1.1"', 'for="[192.0.2.1]"']) {
      expect(caddy.resolve(req('10.0.0.2', { forwarded: bad, 'x-forwarded-proto': 'https' }))).toEqual({ bad: 'malformed', peer: '10.0.0.2' });
    }
    // one bad header spoils the pair, even when the other one names a client
    expect(caddy.resolve(req('10.0.0.2', { forwarded: 'for=garbage!', 'x-forwarded-for': '198.51.100.7' }))).toEqual({ bad: 'malformed', peer: '10.0.0.2' });
    expect(caddy.resolve(req('10.0.0.2', { forwarded: 'for=198.51.100.7', 'x-forwarded-for': 'garbage' }))).toEqual({ bad: 'malformed', peer: '10.0.0.2' });
  });

  test('both headers: agreeing is fine, disagreeing is refused (the relay cannot tell which one the proxy wrote)', () => {
    expect(who(caddy, req('10.0.0.2', { forwarded: 'for=198.51.100.7', 'x-forwarded-for': '198.51.100.7' })).address).toBe('198.51.100.7');
    // nginx passes the client's own Forwarded through and writes X-Forwarded-For: the client claims loopback
    expect(caddy.resolve(req('10.0.0.2', { forwarded: 'for=127.0.0.1;proto=https', 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' }))).toEqual({
      bad: 'conflict', peer: '10.0.0.2',
    });
    // ...or says unknown, which would have been the proxy's own address
    expect(caddy.resolve(req('10.0.0.2', { forwarded: 'for=unknown', 'x-forwarded-for': '198.51.100.7' }))).toEqual({ bad: 'unnamed', peer: '10.0.0.2' });
  });

  test('from an untrusted peer nothing is refused: the headers are not read at all', () => {
    expect(caddy.resolve(req('203.0.113.9', { forwarded: ';;', 'x-forwarded-for': 'garbage' }))).toMatchObject({ address: '203.0.113.9', via: 'peer' });
  });

  test('X-Forwarded-Proto and X-Forwarded-Host: their first value, only from a trusted peer', () => {
    const h = { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https, http', 'x-forwarded-host': 'Cam.Example:8443, inner' };
    expect(caddy.resolve(req('10.0.0.2', h))).toMatchObject({ proto: 'https', host: 'cam.example:8443' });
    expect(who(caddy, req('10.0.0.2', { 'x-forwarded-proto': 'wss' })).proto).toBe('http');
    expect(caddy.resolve(req('203.0.113.9', h))).toMatchObject({ proto: 'http', host: 'cam.example' });
  });

  test('forwardedNode reads RFC 7239 node syntax', () => {
    expect(forwardedNode('192.0.2.43')).toEqual({ kind: 'ip', address: '192.0.2.43' });
    expect(forwardedNode('[2001:db8:cafe::17]')).toEqual({ kind: 'ip', address: '2001:db8:cafe::17' });
    expect(forwardedNode('[::ffff:192.0.2.43]:443')).toEqual({ kind: 'ip', address: '192.0.2.43' });
    expect(forwardedNode('UNKNOWN')).toEqual({ kind: 'unnamed' });
    expect(forwardedNode('_abc.def-1')).toEqual({ kind: 'unnamed' });
    expect(forwardedNode(undefined)).toEqual({ kind: 'unnamed' });
    expect(forwardedNode('192.0.2.43:123456')).toEqual({ kind: 'malformed' });
    expect(forwardedNode('host.example')).toEqual({ kind: 'malformed' });
  });
});
