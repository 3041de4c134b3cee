/**
 * Who is really asking: the client address, scheme and host of an HTTP request, believing the
 * forwarding headers ONLY from a trusted proxy (TRUSTED_PROXY_CIDRS). From any other peer they are
 * ignored entirely: the client is the TCP peer, the scheme http.
 *
 * From a trusted peer, the client address comes from `Forwarded: for=` (RFC 7239, parsed by
 * forwarded-parse) or `X-Forwarded-For` (parsed by forwarded, as Express does). The list is walked
 * from the right (the hop nearest to us) and every trusted hop is skipped; the first untrusted
 * address is the client. When every hop is trusted, the leftmost one is the client.
 *   - malformed header or entry (bad syntax, not an IP, an address with a port in X-Forwarded-For):
 *     the peer, as if no header had been sent;
 *   - `unknown` or an obfuscated identifier (`_abc`): the proxy cannot name its client, so the hop
 *     that said so (the last trusted address reached) is the client;
 *   - both headers present and naming different clients: the relay cannot know which one its proxy
 *     wrote and which one came from the client, so the peer (Caddy only writes X-Forwarded-For and
 *     our Caddyfile deletes any Forwarded header a client sends).
 * The scheme is the `proto=` of the Forwarded element that named the client, else the first value of
 * X-Forwarded-Proto (as Express reads it); the host the first value of X-Forwarded-Host, else Host.
 * Addresses are normalised (`::ffff:10.0.0.1` is `10.0.0.1`), IPv6 zone ids are dropped.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import forwardedFor from 'forwarded';
import parseForwarded from 'forwarded-parse';
import { CidrList, normaliseAddress } from '@camrelay/common';

export interface ClientInfo {
  /** the client's address (normalised): the peer's, or the one a trusted proxy names */
  address: string;
  /** the TCP peer's address (normalised) */
  peer: string;
  /** true when the peer is a trusted proxy (its headers were read) */
  proxied: boolean;
  /** 'https' only when a trusted proxy says the client used it */
  proto: 'http' | 'https';
  /** the host the client asked for (X-Forwarded-Host of a trusted proxy, else Host), lower-case */
  host: string | undefined;
  /** where the address came from */
  via: 'peer' | 'forwarded' | 'x-forwarded-for';
}

/** One hop as a forwarding header names it. */
type Hop = { kind: 'ip'; address: string } | { kind: 'unnamed' } | { kind: 'malformed' };

// RFC 7239 section 6: node = nodename [ ":" node-port ]; obfuscated identifiers start with "_"
const NODE_RE = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]+)\]|(unknown)|(_[A-Za-z0-9._-]+))(?::(?:\d{1,5}|_[A-Za-z0-9._-]+))?$/i;
const OBFUSCATED_RE = /^_[A-Za-z0-9._-]+$/;

function ipHop(text: string, family: 4 | 6 | 0): Hop {
  const a = text.replace(/%.*$/, '');
  const f = isIP(a);
  if (f === 0 || (family !== 0 && f !== family)) return { kind: 'malformed' };
  return { kind: 'ip', address: normaliseAddress(a) };
}

/** A `for=` value (already unquoted) of a Forwarded element. */
export function forwardedNode(value: string | undefined): Hop {
  if (value === undefined) return { kind: 'unnamed' }; // the hop did not disclose its client
  const m = NODE_RE.exec(value);
  if (!m) return { kind: 'malformed' };
  if (m[1] !== undefined) return ipHop(m[1], 4);
  if (m[2] !== undefined) return ipHop(m[2], 6);
  return { kind: 'unnamed' }; // unknown or obfuscated
}

/** One X-Forwarded-For entry: a bare IPv4 or IPv6 address, or `unknown` (some proxies write it). */
function xffEntry(text: string): Hop {
  if (text.toLowerCase() === 'unknown' || OBFUSCATED_RE.test(text)) return { kind: 'unnamed' };
  return ipHop(text, 0);
}

function firstValue(h: string | string[] | undefined): string | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined) return undefined;
  const first = v.split(',')[0].trim();
  return first === '' ? undefined : first;
}

/** What resolve() reads of a request. */
export interface RequestLike {
  headers: IncomingHttpHeaders;
  socket: { remoteAddress?: string };
}

export class TrustedProxies {
  constructor(readonly list: CidrList) {}

  get empty(): boolean {
    return this.list.empty;
  }

  /** True when the address is a trusted proxy (never when the list is empty). */
  trusts(address: string | undefined): boolean {
    return !this.list.empty && this.list.contains(address);
  }

  /** The client behind a request (see the file comment). Reads only `req.socket.remoteAddress` and `req.headers`. */
  resolve(req: RequestLike): ClientInfo {
    const peer = req.socket.remoteAddress ? normaliseAddress(req.socket.remoteAddress) : '';
    const { headers } = req;
    const host = headers.host?.toLowerCase();
    if (!this.trusts(peer)) return { address: peer, peer, proxied: false, proto: 'http', host, via: 'peer' };

    const fwd = headers.forwarded !== undefined ? this.walkForwarded(peer, headers.forwarded) : undefined;
    // forwarded() lists the socket address first, then the X-Forwarded-For entries from the right
    const xff = headers['x-forwarded-for'] !== undefined ? this.walk(peer, forwardedFor(req as IncomingMessage).slice(1).map(xffEntry)) : undefined;
    let found: { address: string; via: ClientInfo['via']; proto?: string } = { address: peer, via: 'peer' };
    if (fwd && xff && fwd.address !== xff.address) found = { address: peer, via: 'peer' }; // two stories: see the file comment
    else if (fwd) found = fwd.malformed ? found : { address: fwd.address, via: 'forwarded', proto: fwd.proto };
    else if (xff) found = xff.malformed ? found : { address: xff.address, via: 'x-forwarded-for' };
    const proto = found.proto ?? (found.via === 'peer' && (fwd || xff) ? undefined : firstValue(headers['x-forwarded-proto']));
    const fwdHost = firstValue(headers['x-forwarded-host']);
    return { address: found.address, peer, proxied: true, proto: proto?.toLowerCase() === 'https' ? 'https' : 'http', host: fwdHost?.toLowerCase() ?? host, via: found.via };
  }

  /**
   * Walks hops given nearest-first (the header's entries from the right): skips trusted ones, stops
   * at the first untrusted address. `malformed` = an entry could not be read (the peer is used).
   */
  private walk(peer: string, hops: readonly Hop[]): { address: string; index: number; malformed: boolean } {
    let current = peer;
    for (let i = 0; i < hops.length; i++) {
      const hop = hops[i];
      if (hop.kind === 'malformed') return { address: peer, index: -1, malformed: true };
      if (hop.kind === 'unnamed') return { address: current, index: i, malformed: false };
      current = hop.address;
      if (!this.trusts(current)) return { address: current, index: i, malformed: false };
    }
    return { address: current, index: hops.length - 1, malformed: false };
  }

  private walkForwarded(peer: string, header: string | string[]): { address: string; proto: string | undefined; malformed: boolean } {
    let elements: Record<string, string>[];
    try {
      elements = parseForwarded(Array.isArray(header) ? header.join(', ') : header);
    } catch {
      return { address: peer, proto: undefined, malformed: true };
    }
    const nearestFirst = [...elements].reverse();
    const r = this.walk(peer, nearestFirst.map((e) => forwardedNode(e.for)));
    return { address: r.address, proto: r.index >= 0 ? nearestFirst[r.index]?.proto : undefined, malformed: r.malformed };
  }
}
