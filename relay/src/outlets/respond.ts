/**
 * The HTTP outlet's own answers (pages, plain text, JSON, redirects; not the snapshots and streams,
 * which snapshot.ts and mjpeg.ts write): every one is no-store, sniff-proof and sends no referrer,
 * and the HTML pages add PAGE_HEADERS.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { PAGE_REFERRER_POLICY } from './viewer-page';

export const COMMON_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };
/** the HTML pages' own: no framing, and a referrer policy whose form posts carry a real Origin (viewer-page.ts) */
export const PAGE_HEADERS = { 'X-Frame-Options': 'DENY', 'Referrer-Policy': PAGE_REFERRER_POLICY };

export function send(res: ServerResponse, status: number, type: string, body: string, extra: OutgoingHttpHeaders = {}): void {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': type, 'Content-Length': buf.length, 'Cache-Control': 'no-store', ...extra });
  res.end(buf);
}

export function plain(res: ServerResponse, status: number, body: string, extra: OutgoingHttpHeaders = {}): void {
  send(res, status, 'text/plain; charset=utf-8', body, extra);
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json', JSON.stringify(body) + '\n');
}

/** 301 (a path's canonical form) or 303 (after a form POST, never cached). */
export function redirect(res: ServerResponse, status: 301 | 303, location: string, extra: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, Location: location, 'Content-Length': 0, ...(status === 303 ? { 'Cache-Control': 'no-store' } : {}), ...extra });
  res.end();
}
