/**
 * Who is really asking: the client address, scheme and host of an HTTP request, believing the
 * forwarding headers ONLY from a trusted proxy (TRUSTED_PROXY_CIDRS). From any other peer they are
 * ignored entirely: the client is the TCP peer, the scheme http.
 *
 * From a trusted peer, the client address comes from `Forwarded: for=` (RFC 7239, parsed by
 * forwarded-parse) or `X-Forwarded-For` (parsed by forwarded, as Express does). The list is walked
 * from the right (the hop nearest to us) and every trusted hop is skipped; the first untrusted
 * address is the client. When every hop is trusted, the leftmost one is the client. A trusted peer
 * that sends neither header is itself the client (a proxy's own request, e.g. a health check).
 *
 * Fail closed: the relay never falls back to the proxy's own address when the headers cannot name
 * the client, because that address is trusted (often private, so inside ALLOW_CIDRS, or loopback,
 * which opens the health routes) and a client can make the headers bad on purpose: nginx, for one,
 * passes a client's own `Forwarded` header through while it writes X-Forwarded-For. resolve() then
 * returns a BadForwarding (http.ts answers 400) for:
 *   - `malformed`: a header that cannot be read, or an entry reached by the walk that is not an IP
 *     address (bad syntax, an address with a port in X-Forwarded-For, an empty header);
 *   - `unnamed`: the walk reaches `unknown`, an obfuscated identifier (`_abc`) or a Forwarded element
 *     without `for=`: no hop vouches for a client address, and the hop that wrote it is a proxy, not
 *     the client (its address would give an unidentified client the proxy's standing, and pool every
 *     such client into one per-address bucket);
 *   - `conflict`: both headers present and naming different clients: the relay cannot know which one
 *     its proxy wrote and which one came from the client (Caddy only writes X-Forwarded-For and our
 *     Caddyfile deletes any Forwarded header a client sends).
 * What the walk never reaches (whatever a client wrote left of the first untrusted address) does
 * not matter. The scheme is the `proto=` of the Forwarded element that named the client, else the
 * first value of X-Forwarded-Proto (as Express reads it); the host the first value of
 * X-Forwarded-Host, else Host. Addresses are normalised (`::ffff:10.0.0.1` is `10.0.0.1`), IPv6 zone
 * ids are dropped.
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

/** Why a trusted proxy's forwarding headers name no client (see the file comment). */
export type ForwardingProblem = 'malformed' | 'unnamed' | 'conflict';

/** resolve()'s answer when a trusted proxy's headers name no client: refuse the request. */
export interface BadForwarding {
  bad: ForwardingProblem;
  /** the TCP peer's address (normalised): the proxy */
  peer: string;
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

  /**
   * The client behind a request (see the file comment), or why a trusted proxy's headers name none.
   * Reads only `req.socket.remoteAddress` and `req.headers`.
   */
  resolve(req: RequestLike): ClientInfo | BadForwarding {
    const peer = req.socket.remoteAddress ? normaliseAddress(req.socket.remoteAddress) : '';
    const { headers } = req;
    const host = headers.host?.toLowerCase();
    if (!this.trusts(peer)) return { address: peer, peer, proxied: false, proto: 'http', host, via: 'peer' };

    const fwd = headers.forwarded !== undefined ? this.walkForwarded(peer, headers.forwarded) : undefined;
    // forwarded() lists the socket address first, then the X-Forwarded-For entries from the right
    const xff = headers['x-forwarded-for'] !== undefined ? this.walk(peer, forwardedFor(req as IncomingMessage).slice(1).map(xffEntry)) : undefined;
    if (fwd && 'bad' in fwd) return { bad: fwd.bad, peer };
    if (xff && 'bad' in xff) return { bad: xff.bad, peer };
    if (fwd && xff && fwd.address !== xff.address) return { bad: 'conflict', peer }; // two stories: see the file comment
    const found: { address: string; via: ClientInfo['via']; proto?: string } = fwd
      ? { address: fwd.address, via: 'forwarded', proto: fwd.proto }
      : xff ? { address: xff.address, via: 'x-forwarded-for' } : { address: peer, via: 'peer' };
    const proto = found.proto ?? firstValue(headers['x-forwarded-proto']);
    const fwdHost = firstValue(headers['x-forwarded-host']);
    return { address: found.address, peer, proxied: true, proto: proto?.toLowerCase() === 'https' ? 'https' : 'http', host: fwdHost?.toLowerCase() ?? host, via: found.via };
  }

  /**
   * Walks hops given nearest-first (the header's entries from the right): skips trusted ones, stops
   * at the first untrusted address. A malformed or unnamed hop reached first: no client.
   */
  private walk(peer: string, hops: readonly Hop[]): Walked | { bad: 'malformed' | 'unnamed' } {
    if (hops.length === 0) return { bad: 'malformed' }; // a header with no entry at all
    let current = peer;
    for (let i = 0; i < hops.length; i++) {
      const hop = hops[i];
      if (hop.kind !== 'ip') return { bad: hop.kind };
      current = hop.address;
      if (!this.trusts(current)) return { address: current, index: i };
    }
    return { address: current, index: hops.length - 1 };
  }

  private walkForwarded(peer: string, header: string | string[]): (Walked & { proto: string | undefined }) | { bad: 'malformed' | 'unnamed' } {
    let elements: Record<string, string>[];
    try {
      elements = parseForwarded(Array.isArray(header) ? header.join(', ') : header);
    } catch {
      return { bad: 'malformed' };
    }
    const nearestFirst = [...elements].reverse();
    const r = this.walk(peer, nearestFirst.map((e) => forwardedNode(e.for)));
    return 'bad' in r ? r : { ...r, proto: nearestFirst[r.index]?.proto };
  }
}

/** A walk that reached a client: its address and the index of the hop that named it. */
interface Walked {
  address: string;
  index: number;
}
