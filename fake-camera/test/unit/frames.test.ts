import jpeg from 'jpeg-js';
import { checkJpeg } from '@camrelay/common';
import { comSegment, FrameRing, frameSeqOf, frameTimeOf, paddingSegments, SEQ_TAG } from '../../src/frames';

describe('FrameRing', () => {
  const ring = new FrameRing({ width: 160, height: 120, ringSize: 4 });

  test('frames are whole JPEGs that decode, with the sequence number in a COM segment', () => {
    for (let i = 1; i <= 6; i++) {
      const { seq, data } = ring.next();
      expect(seq).toBe(i);
      expect(checkJpeg(data).ok).toBe(true);
      const img = jpeg.decode(data);
      expect([img.width, img.height]).toEqual([160, 120]);
      expect(img.comments?.[0]).toMatch(new RegExp(`^${SEQ_TAG}${i} t=\\d{16}$`));
      expect(frameSeqOf(data)).toBe(i);
      expect(Math.abs(frameTimeOf(data)! - Date.now() * 1000)).toBeLessThan(5_000_000);
    }
    expect(ring.lastSeq).toBe(6);
  });

  test('consecutive frames differ in pixels, not just in the COM segment', () => {
    const a = jpeg.decode(ring.frame(1)).data;
    const b = jpeg.decode(ring.frame(2)).data;
    let diff = 0;
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 40) diff++;
    expect(diff).toBeGreaterThan(a.length / 50);
  });

  test('default size is a realistic 30-80 KB frame', () => {
    const big = new FrameRing({ ringSize: 1 });
    expect(big.averageBytes).toBeGreaterThan(30_000);
    expect(big.averageBytes).toBeLessThan(80_000);
  });

  test('minBytes pads frames with COM segments and they still decode', () => {
    const padded = new FrameRing({ width: 64, height: 48, ringSize: 2, minBytes: 150_000 });
    const { data } = padded.next();
    expect(data.length).toBeGreaterThanOrEqual(150_000);
    expect(data.length).toBeLessThan(151_000);
    expect(checkJpeg(data).ok).toBe(true);
    expect(jpeg.decode(data).width).toBe(64);
    expect(frameSeqOf(data)).toBe(1);
  });
});

describe('frameSeqOf', () => {
  test('is undefined for non-JPEG, truncated header and untagged JPEGs', () => {
    expect(frameSeqOf(Buffer.from('hello world'))).toBeUndefined();
    expect(frameSeqOf(Buffer.alloc(0))).toBeUndefined();
    const untagged = jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(256, 128) }, 50).data;
    expect(frameSeqOf(untagged)).toBeUndefined();
    const f = new FrameRing({ width: 16, height: 16, ringSize: 1 }).frame(42);
    expect(frameSeqOf(f)).toBe(42);
    expect(frameSeqOf(f.subarray(0, 30))).toBeUndefined();
    expect(frameTimeOf(untagged)).toBeUndefined();
  });

  test('paddingSegments and comSegment produce well-formed segments', () => {
    expect(comSegment('abc')).toEqual(Buffer.from([0xff, 0xfe, 0, 5, 0x61, 0x62, 0x63]));
    const p = paddingSegments(200_000);
    expect(p.length).toBeGreaterThanOrEqual(200_000);
    let off = 0;
    while (off < p.length) {
      expect(p[off]).toBe(0xff);
      expect(p[off + 1]).toBe(0xfe);
      off += 2 + p.readUInt16BE(off + 2);
    }
    expect(off).toBe(p.length);
  });
});
