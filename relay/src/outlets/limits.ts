/**
 * The client limiter shared by every outlet: access control (ALLOW_CIDRS), MAX_CLIENTS across all
 * outlets and MAX_CLIENTS_PER_IP, plus the live per-protocol client counts behind `relay_clients`.
 *
 * A slot ("lease") is held per TCP connection (raw socket or HTTP connection) from accept to close,
 * because sockets are what a flood uses up. Behind a trusted proxy (TRUSTED_PROXY_CIDRS) the HTTP
 * outlet takes one per request instead, for the client address the proxy names (see http.ts). Addresses are normalised (`::ffff:10.0.0.1` counts as
 * `10.0.0.1`) so one client cannot double its share by switching address families.
 *
 * Rejections are counted by reason and logged at most once per 10 s per reason (the address of the
 * latest offender is in the log line, never in a metric label).
 */
import { CidrList, Logger, RateLimitedLog, normaliseAddress } from '@camrelay/common';
import { PROTOCOLS, Protocol, RejectReason, RelayMetrics } from '../metrics';

export interface LimiterOptions {
  /** MAX_CLIENTS: connections across all outlets */
  maxClients: number;
  /** MAX_CLIENTS_PER_IP: connections per source address across all outlets */
  maxClientsPerIp: number;
  /** ALLOW_CIDRS: empty = everyone */
  allow: CidrList;
}

export interface LimiterDeps {
  metrics: RelayMetrics;
  log: Logger;
  /** clock for the rate-limited log (tests) */
  now?: () => number;
}

/** A held slot. release() is idempotent: only the first call frees the slot. */
export interface Lease {
  readonly address: string;
  release(): void;
}

export type Admission = { ok: true; lease: Lease } | { ok: false; reason: RejectReason };

/** Rejections are logged at most this often per reason. */
export const REJECT_LOG_INTERVAL_MS = 10_000;

export class ClientLimiter {
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private readonly live: Record<Protocol, number> = { raw: 0, snapshot: 0, mjpeg: 0, push: 0 };
  private readonly rateLog: RateLimitedLog;

  constructor(
    private readonly opts: LimiterOptions,
    private readonly deps: LimiterDeps,
  ) {
    if (!(opts.maxClients >= 1) || !(opts.maxClientsPerIp >= 1)) throw new RangeError('maxClients and maxClientsPerIp must be at least 1');
    this.rateLog = new RateLimitedLog(REJECT_LOG_INTERVAL_MS, deps.now);
  }

  /** Connections holding a slot. */
  get connections(): number {
    return this.total;
  }

  /** Slots held by one address (normalised). */
  connectionsFrom(address: string): number {
    return this.perIp.get(normaliseAddress(address)) ?? 0;
  }

  /** True when ALLOW_CIDRS is empty: everyone may connect. */
  get open(): boolean {
    return this.opts.allow.empty;
  }

  /** True when ALLOW_CIDRS lets the address in (always true when the list is empty). */
  allowed(address: string | undefined): boolean {
    return this.opts.allow.allows(address);
  }

  /**
   * Checks access and limits and takes a slot when they pass. Does NOT count or log a rejection:
   * the caller does that with reject() once it has decided (HTTP still answers /healthz on a
   * rejected connection, for example).
   */
  admit(address: string | undefined): Admission {
    const r = this.take(address);
    if (!r.ok) return r;
    const ip = r.ip;
    let released = false;
    return {
      ok: true,
      lease: {
        address: ip,
        release: () => {
          if (released) return;
          released = true;
          this.give(ip);
        },
      },
    };
  }

  /**
   * admit() without a lease object, for the raw outlet's per-connection hot path: on success the
   * caller holds a slot for the returned (normalised) address and must call give(ip) exactly once.
   */
  take(address: string | undefined): { ok: true; ip: string } | { ok: false; reason: RejectReason } {
    if (!address || !this.opts.allow.allows(address)) return { ok: false, reason: 'not_allowed' };
    // normaliseAddress() runs a regex; only IPv4-mapped IPv6 addresses need it
    const ip = address.charCodeAt(0) === 58 /* ':' */ ? normaliseAddress(address) : address;
    if (this.total >= this.opts.maxClients) return { ok: false, reason: 'max_clients' };
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.opts.maxClientsPerIp) return { ok: false, reason: 'max_clients_per_ip' };
    this.total++;
    this.perIp.set(ip, n + 1);
    return { ok: true, ip };
  }

  /** Frees a slot taken with take() (admit()'s lease calls this). */
  give(ip: string): void {
    this.total--;
    const m = (this.perIp.get(ip) ?? 1) - 1;
    if (m <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, m);
  }

  /** Counts a refused client and logs it (rate-limited per reason) with `extra` fields, if any. */
  reject(reason: RejectReason, address: string | undefined, outlet: string, extra: Record<string, unknown> = {}): void {
    this.deps.metrics.clientsRejected.inc({ reason });
    this.rateLog.warn(
      this.deps.log,
      reason,
      { reason, outlet, ip: address ? normaliseAddress(address) : undefined, connections: this.total, ...extra },
      'client refused',
    );
  }

  /**
   * Marks one live client of a protocol (raw socket, snapshot request in flight, MJPEG viewer) for
   * the relay_clients gauge. Returns an idempotent release function.
   */
  track(protocol: Protocol): () => void {
    this.live[protocol]++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.live[protocol]--;
    };
  }

  /** track() without a closure (raw outlet hot path): call leave() exactly once per enter(). */
  enter(protocol: Protocol): void {
    this.live[protocol]++;
  }

  leave(protocol: Protocol): void {
    this.live[protocol]--;
  }

  /** Live clients of a protocol (the relay_clients{protocol} gauge reads this). */
  clients(protocol: Protocol): number {
    return this.live[protocol];
  }

  /** Live clients by protocol, for /status.json. */
  clientCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of PROTOCOLS) out[p] = this.live[p];
    return out;
  }
}
