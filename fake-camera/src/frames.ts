/**
 * Frame generation for the fake camera.
 *
 * Encoding a JPEG in pure JS takes tens of milliseconds, far too slow to do per frame in a benchmark.
 * So a ring of distinct images is encoded once at start-up, and per frame only a JPEG COM segment
 * carrying the sequence number and the wall-clock time the frame was made in microseconds
 * (`camrelay-fake-camera seq=123 t=1764000000000000`) is spliced in after the header:
 * a couple of Buffer copies. Every frame is a real, decodable JPEG that differs visibly (a big
 * counter and a moving bar) and machine-readably (the COM sequence number) from the previous one.
 */
import jpeg from 'jpeg-js';

/** Text that precedes the sequence number in the COM segment. */
export const SEQ_TAG = 'camrelay-fake-camera seq=';
/** Text that precedes the frame's creation time (Unix epoch, microseconds) in the same segment. */
export const TIME_TAG = ' t=';

/** Wall-clock time in microseconds since the Unix epoch (comparable across processes on one host). */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

const MARKER_SOI = 0xd8;
const MARKER_SOS = 0xda;
const MARKER_EOI = 0xd9;
const MARKER_COM = 0xfe;
/** A marker segment's payload is at most 65535 - 2 length bytes. */
const MAX_SEGMENT_PAYLOAD = 65533;

export interface FrameRingOptions {
  /** Image width in pixels (default 640). */
  width?: number;
  /** Image height in pixels (default 480). */
  height?: number;
  /** JPEG quality 1..100 (default 80). */
  quality?: number;
  /** Number of distinct pre-encoded images (default 16). */
  ringSize?: number;
  /** Pad each image with COM segments to at least this many bytes (0 = natural size). */
  minBytes?: number;
}

/** Deterministic PRNG (mulberry32): the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Seven-segment layout: a b c d e f g (top, top-right, bottom-right, bottom, bottom-left, top-left, middle)
const DIGIT_SEGMENTS = ['abcdef', 'bc', 'abdeg', 'abcdg', 'bcfg', 'acdfg', 'acdefg', 'abc', 'abcdefg', 'abcdfg'];

function fillRect(data: Buffer, width: number, height: number, x0: number, y0: number, w: number, h: number, rgb: [number, number, number]): void {
  const x1 = Math.min(width, Math.max(0, Math.round(x0 + w)));
  const y1 = Math.min(height, Math.max(0, Math.round(y0 + h)));
  for (let y = Math.max(0, Math.round(y0)); y < y1; y++) {
    for (let x = Math.max(0, Math.round(x0)); x < x1; x++) {
      const i = (y * width + x) * 4;
      data[i] = rgb[0];
      data[i + 1] = rgb[1];
      data[i + 2] = rgb[2];
    }
  }
}

function drawDigit(data: Buffer, width: number, height: number, digit: number, x: number, y: number, w: number, h: number, rgb: [number, number, number]): void {
  const t = Math.max(2, Math.round(w / 5)); // stroke thickness
  const half = h / 2;
  const seg: Record<string, [number, number, number, number]> = {
    a: [x, y, w, t],
    b: [x + w - t, y, t, half],
    c: [x + w - t, y + half, t, half],
    d: [x, y + h - t, w, t],
    e: [x, y + half, t, half],
    f: [x, y, t, half],
    g: [x, y + half - t / 2, w, t],
  };
  for (const s of DIGIT_SEGMENTS[digit]) {
    const [sx, sy, sw, sh] = seg[s];
    fillRect(data, width, height, sx, sy, sw, sh, rgb);
  }
}

/**
 * Renders image `index` of `total` as RGBA: a textured gradient (so it compresses like a real
 * photo, ~40 KB at 640x480 q80), a bar that moves across the picture, and the index as big digits.
 */
export function renderImage(width: number, height: number, index: number, total: number): Buffer {
  const data = Buffer.alloc(width * height * 4);
  const rnd = mulberry32(0x5eed + index * 7919);
  const phase = (index / Math.max(1, total)) * 255;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const n = (rnd() - 0.5) * 26;
      data[i] = clamp((x / width) * 200 + n + phase * 0.2);
      data[i + 1] = clamp((y / height) * 160 + n + 40);
      data[i + 2] = clamp(((x + y) / (width + height)) * 120 + n + (255 - phase) * 0.3);
      data[i + 3] = 255;
    }
  }
  // Moving bar: one full sweep per ring.
  const barW = Math.max(4, Math.round(width / 16));
  const barX = Math.round(((width - barW) * index) / Math.max(1, total - 1));
  fillRect(data, width, height, barX, 0, barW, height, [255, 255, 255]);
  // Big counter, two digits, centred.
  const dh = Math.round(height * 0.45);
  const dw = Math.round(dh * 0.5);
  const gap = Math.round(dw * 0.3);
  const x0 = Math.round((width - 2 * dw - gap) / 2);
  const y0 = Math.round((height - dh) / 2);
  fillRect(data, width, height, x0 - gap, y0 - gap, 2 * dw + 3 * gap, dh + 2 * gap, [0, 0, 0]);
  const shown = index % 100;
  drawDigit(data, width, height, Math.floor(shown / 10), x0, y0, dw, dh, [255, 220, 0]);
  drawDigit(data, width, height, shown % 10, x0 + dw + gap, y0, dw, dh, [255, 220, 0]);
  return data;
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/** A COM segment (FF FE, 2-byte length, payload). */
export function comSegment(payload: Buffer | string): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  if (p.length > MAX_SEGMENT_PAYLOAD) throw new RangeError(`COM payload too long: ${p.length}`);
  const seg = Buffer.allocUnsafe(4 + p.length);
  seg[0] = 0xff;
  seg[1] = MARKER_COM;
  seg.writeUInt16BE(p.length + 2, 2);
  p.copy(seg, 4);
  return seg;
}

/** COM segments of filler bytes totalling at least `bytes` (each segment at most 64 KiB). */
export function paddingSegments(bytes: number): Buffer {
  const parts: Buffer[] = [];
  let left = bytes;
  while (left > 0) {
    const payload = Math.min(MAX_SEGMENT_PAYLOAD, Math.max(1, left - 4));
    parts.push(comSegment(Buffer.alloc(payload, 0x20)));
    left -= payload + 4;
  }
  return Buffer.concat(parts);
}

/**
 * Offset just after the header segments that must come first (SOI, then APP0/APP1...), where a COM
 * segment may be inserted without upsetting strict decoders. Returns 2 (after SOI) as a fallback.
 */
export function insertOffset(buf: Buffer): number {
  let off = 2;
  while (off + 4 <= buf.length && buf[off] === 0xff && buf[off + 1] >= 0xe0 && buf[off + 1] <= 0xef) {
    off += 2 + buf.readUInt16BE(off + 2);
  }
  return off <= buf.length ? off : 2;
}

/** Splits an encoded JPEG at the COM insertion point. */
interface SplitJpeg {
  head: Buffer;
  tail: Buffer;
}

/** The text of the fake camera's COM segment, or undefined (walks the header segments up to SOS). */
function tagText(buf: Buffer): string | undefined {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== MARKER_SOI) return undefined;
  let off = 2;
  while (off + 4 <= buf.length) {
    if (buf[off] !== 0xff) return undefined;
    const marker = buf[off + 1];
    if (marker === 0xff) {
      off++; // fill byte
      continue;
    }
    if (marker === MARKER_SOS || marker === MARKER_EOI) return undefined;
    const len = buf.readUInt16BE(off + 2);
    if (len < 2 || off + 2 + len > buf.length) return undefined;
    if (marker === MARKER_COM) {
      const text = buf.toString('latin1', off + 4, off + 2 + len);
      if (text.startsWith(SEQ_TAG)) return text;
    }
    off += 2 + len;
  }
  return undefined;
}

/**
 * Reads the sequence number from a fake-camera frame's COM segment. Returns undefined for anything
 * else (not a JPEG, no tag, truncated header).
 */
export function frameSeqOf(buf: Buffer): number | undefined {
  const text = tagText(buf);
  const m = text === undefined ? null : /^\d+/.exec(text.slice(SEQ_TAG.length));
  return m ? Number(m[0]) : undefined;
}

/** When the fake camera made this frame (Unix epoch, microseconds), or undefined. */
export function frameTimeOf(buf: Buffer): number | undefined {
  const text = tagText(buf);
  const m = text === undefined ? null : / t=(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * The camera's picture source: `ringSize` pre-encoded images; next() returns the next whole JPEG
 * with an increasing sequence number in its COM segment (starting at 1).
 */
export class FrameRing {
  readonly width: number;
  readonly height: number;
  readonly quality: number;
  readonly size: number;
  private readonly images: SplitJpeg[] = [];
  private seq = 0;

  constructor(opts: FrameRingOptions = {}) {
    this.width = opts.width ?? 640;
    this.height = opts.height ?? 480;
    this.quality = opts.quality ?? 80;
    this.size = opts.ringSize ?? 16;
    const minBytes = opts.minBytes ?? 0;
    for (let i = 0; i < this.size; i++) {
      const raw = jpeg.encode({ width: this.width, height: this.height, data: renderImage(this.width, this.height, i, this.size) }, this.quality).data;
      const at = insertOffset(raw);
      let head = raw.subarray(0, at);
      // The seq COM segment adds at least 4 + tag + 1 digit bytes.
      const pad = minBytes - raw.length - (4 + SEQ_TAG.length + 1);
      if (pad > 0) head = Buffer.concat([head, paddingSegments(pad)]);
      this.images.push({ head: Buffer.from(head), tail: Buffer.from(raw.subarray(at)) });
    }
  }

  /** Sequence number of the last frame handed out (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** The next frame: image (seq-1) mod ringSize with COM `camrelay-fake-camera seq=<seq> t=<now µs>`. */
  next(): { seq: number; data: Buffer } {
    const seq = ++this.seq;
    return { seq, data: this.frame(seq) };
  }

  /** Frame for a given sequence number, stamped now (does not advance the counter). */
  frame(seq: number, extra?: Buffer): Buffer {
    const img = this.images[(seq - 1 + this.size) % this.size];
    const parts = [img.head, comSegment(`${SEQ_TAG}${seq}${TIME_TAG}${nowMicros()}`)];
    if (extra) parts.push(extra);
    parts.push(img.tail);
    return Buffer.concat(parts);
  }

  /** Average encoded size in bytes (without the seq segment). */
  get averageBytes(): number {
    return Math.round(this.images.reduce((n, i) => n + i.head.length + i.tail.length, 0) / this.images.length);
  }
}
