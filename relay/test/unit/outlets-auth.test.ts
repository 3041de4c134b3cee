import crypto from 'node:crypto';
import { ViewerAuth, safeEqual } from '../../src/outlets/auth';
import { etagFor, etagMatches } from '../../src/outlets/snapshot';

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('ViewerAuth', () => {
  test('no credentials configured: open', () => {
    const a = new ViewerAuth({});
    expect(a.enabled).toBe(false);
    expect(a.check(undefined, null)).toBe(true);
    expect(a.challenges()).toEqual([]);
  });

  test('token: Bearer header or ?token=, nothing else', () => {
    const a = new ViewerAuth({ viewerToken: 's3cret-token' });
    expect(a.enabled).toBe(true);
    expect(a.check('Bearer s3cret-token', null)).toBe(true);
    expect(a.check('bearer   s3cret-token ', null)).toBe(true);
    expect(a.check(undefined, 's3cret-token')).toBe(true);
    expect(a.check('Bearer wrong', 's3cret-token')).toBe(true);
    expect(a.check(undefined, null)).toBe(false);
    expect(a.check('Bearer s3cret-toke', null)).toBe(false);
    expect(a.check('Bearer s3cret-token2', null)).toBe(false);
    expect(a.check(undefined, '')).toBe(false);
    expect(a.check(basic('viewer', 's3cret-token'), null)).toBe(false);
    expect(a.check('s3cret-token', null)).toBe(false);
    expect(a.challenges()).toEqual(['Bearer realm="camrelay"']);
  });

  test('basic: user and password must both match; password may contain ":"', () => {
    const a = new ViewerAuth({ viewerUser: 'alice', viewerPassword: 'pa:ss word' });
    expect(a.check(basic('alice', 'pa:ss word'), null)).toBe(true);
    expect(a.check(basic('alice', 'pa:ss'), null)).toBe(false);
    expect(a.check(basic('bob', 'pa:ss word'), null)).toBe(false);
    expect(a.check('Basic !!!notbase64', null)).toBe(false);
    expect(a.check(`Basic ${Buffer.from('nocolon').toString('base64')}`, null)).toBe(false);
    expect(a.check(undefined, 'pa:ss word')).toBe(false);
    expect(a.challenges()).toEqual(['Basic realm="camrelay", charset="UTF-8"']);
  });

  test('basic user defaults to "viewer"; token and password together accept either', () => {
    const a = new ViewerAuth({ viewerToken: 'tok-12345', viewerPassword: 'hunter22' });
    expect(a.check(basic('viewer', 'hunter22'), null)).toBe(true);
    expect(a.check('Bearer tok-12345', null)).toBe(true);
    expect(a.check(basic('viewer', 'tok-12345'), null)).toBe(false);
    expect(a.challenges()).toHaveLength(2);
  });

  test('safeEqual is exact and works on different lengths', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
  });

  test('every comparison goes through crypto.timingSafeEqual on fixed-length digests', () => {
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    try {
      const a = new ViewerAuth({ viewerToken: 'a-rather-long-token-value', viewerPassword: 'pw123456' });
      expect(a.check('Bearer short', 'x')).toBe(false);
      expect(a.check(basic('viewer', 'pw123456'), null)).toBe(true);
      // token from query + bearer + user + password
      expect(spy).toHaveBeenCalledTimes(4);
      for (const [x, y] of spy.mock.calls) {
        expect((x as Buffer).length).toBe(32);
        expect((y as Buffer).length).toBe(32);
      }
    } finally {
      spy.mockRestore();
    }
  });
});

describe('snapshot ETags', () => {
  test('ETag carries the boot id and seq', () => {
    expect(etagFor('ab12cd34', 42)).toBe('"ab12cd34-42"');
  });
  test('If-None-Match: exact, weak, lists and *', () => {
    const e = etagFor('b', 3);
    expect(etagMatches(undefined, e)).toBe(false);
    expect(etagMatches('"b-3"', e)).toBe(true);
    expect(etagMatches('W/"b-3"', e)).toBe(true);
    expect(etagMatches('"b-2", "b-3"', e)).toBe(true);
    expect(etagMatches('*', e)).toBe(true);
    expect(etagMatches('"b-30"', e)).toBe(false);
    expect(etagMatches('"a-3"', e)).toBe(false);
  });
});
