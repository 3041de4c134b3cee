/**
 * JPEG framing checks. A frame is "whole" when it starts with SOI (FF D8 FF) and ends with EOI (FF D9).
 * Some encoders pad after EOI; the ESP32 driver does not, so trailing bytes are tolerated only when
 * they are zero padding (they are trimmed by wholeJpegLength()).
 */
export const SOI = Buffer.from([0xff, 0xd8]);
export const EOI = Buffer.from([0xff, 0xd9]);

export type JpegCheck = { ok: true; length: number } | { ok: false; reason: 'empty' | 'not_jpeg' | 'truncated' };

export function checkJpeg(buf: Buffer): JpegCheck {
  if (buf.length === 0) return { ok: false, reason: 'empty' };
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8 || buf[2] !== 0xff) return { ok: false, reason: 'not_jpeg' };
  let end = buf.length;
  while (end > 4 && buf[end - 1] === 0x00) end--;
  if (buf[end - 2] !== 0xff || buf[end - 1] !== 0xd9) return { ok: false, reason: 'truncated' };
  return { ok: true, length: end };
}

export function isWholeJpeg(buf: Buffer): boolean {
  return checkJpeg(buf).ok;
}
