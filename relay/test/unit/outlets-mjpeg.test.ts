import { BOUNDARY, MJPEG_CONTENT_TYPE, PART_TRAILER, STREAM_PREAMBLE, partBytes, partHeader } from '../../src/outlets/mjpeg';
import { MultipartReader, fakeJpeg } from '../integration/outlets-fixture';

const frame = (seq: number, size: number) => ({ data: fakeJpeg(seq, size), seq, capturedAt: 1_700_000_000_000 + seq, publishedMono: 0 });

function encode(frames: ReturnType<typeof frame>[]): Buffer {
  const out: Buffer[] = [STREAM_PREAMBLE];
  for (const f of frames) out.push(partHeader(f), f.data, PART_TRAILER);
  return Buffer.concat(out);
}

describe('MJPEG framing', () => {
  test('content type names the boundary', () => {
    expect(MJPEG_CONTENT_TYPE).toBe(`multipart/x-mixed-replace; boundary=${BOUNDARY}`);
  });

  test('each part has Content-Type, Content-Length, seq and is followed by the boundary', () => {
    const h = partHeader(frame(7, 1234)).toString('latin1');
    expect(h).toMatch(/^Content-Type: image\/jpeg\r\n/);
    expect(h).toContain('Content-Length: 1234\r\n');
    expect(h).toContain('X-Frame-Seq: 7\r\n');
    expect(h.endsWith('\r\n\r\n')).toBe(true);
    expect(PART_TRAILER.toString()).toBe(`\r\n--${BOUNDARY}\r\n`);
    expect(STREAM_PREAMBLE.toString()).toBe(`--${BOUNDARY}\r\n`);
  });

  test('our own output parses back into the same frames, whatever the chunking', () => {
    const frames = [frame(1, 100), frame(2, 5000), frame(3, 17), frame(4, 65536)];
    const wire = encode(frames);
    expect(wire.length).toBe(STREAM_PREAMBLE.length + frames.reduce((n, f) => n + partBytes(partHeader(f), f), 0));
    for (const chunk of [wire.length, 1, 7, 1000]) {
      const r = new MultipartReader(BOUNDARY);
      for (let i = 0; i < wire.length; i += chunk) r.push(wire.subarray(i, i + chunk));
      expect(r.parts.map((p) => Number(p.headers['x-frame-seq']))).toEqual([1, 2, 3, 4]);
      r.parts.forEach((p, i) => {
        expect(p.headers['content-type']).toBe('image/jpeg');
        expect(Number(p.headers['content-length'])).toBe(frames[i].data.length);
        expect(p.body.equals(frames[i].data)).toBe(true);
      });
    }
  });

  test('a body containing the boundary text is still framed by Content-Length', () => {
    const f = frame(9, 200);
    Buffer.from(`\r\n--${BOUNDARY}\r\n`).copy(f.data, 50);
    const r = new MultipartReader(BOUNDARY);
    r.push(encode([f, frame(10, 64)]));
    expect(r.parts).toHaveLength(2);
    expect(r.parts[0].body.equals(f.data)).toBe(true);
  });

  test('the reader rejects a wrong Content-Length (so the integration tests can catch broken framing)', () => {
    const f = frame(1, 100);
    const bad = Buffer.concat([STREAM_PREAMBLE, partHeader({ ...f, data: Buffer.alloc(99) }), f.data, PART_TRAILER]);
    expect(() => new MultipartReader(BOUNDARY).push(bad)).toThrow(/boundary/);
  });
});
