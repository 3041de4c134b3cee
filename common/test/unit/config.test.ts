import { CidrList, ConfigError, readBool, readCidrs, readEnum, readInt, readNumber, readPort } from '../../src/config';

describe('env readers', () => {
  test('defaults apply for missing and blank values', () => {
    expect(readInt({}, 'X', 5)).toBe(5);
    expect(readInt({ X: '  ' }, 'X', 5)).toBe(5);
    expect(readBool({}, 'B', true)).toBe(true);
  });

  test('readInt parses and enforces range with a message naming variable, value and range', () => {
    expect(readInt({ X: '42' }, 'X', 1, { min: 0, max: 100 })).toBe(42);
    expect(() => readInt({ X: '101' }, 'X', 1, { min: 0, max: 100 })).toThrow('invalid X="101": expected an integer from 0 to 100');
    expect(() => readInt({ X: '1.5' }, 'X', 1)).toThrow(ConfigError);
    expect(() => readInt({ X: '12abc' }, 'X', 1)).toThrow(ConfigError);
  });

  test('readPort allows 0 (pick a free port) and rejects out-of-range ports', () => {
    expect(readPort({ P: '0' }, 'P', 8080)).toBe(0);
    expect(() => readPort({ P: '65536' }, 'P', 8080)).toThrow(/P="65536".*0 to 65535/);
    expect(() => readPort({ P: '-1' }, 'P', 8080)).toThrow(ConfigError);
  });

  test('readNumber accepts decimals only', () => {
    expect(readNumber({ F: '0.5' }, 'F', 1, { min: 0 })).toBe(0.5);
    expect(() => readNumber({ F: 'abc' }, 'F', 1)).toThrow(ConfigError);
    expect(() => readNumber({ F: '-1' }, 'F', 1, { min: 0 })).toThrow(/from 0/);
  });

  test('readBool and readEnum list what is allowed', () => {
    expect(readBool({ B: 'Yes' }, 'B', false)).toBe(true);
    expect(readBool({ B: 'off' }, 'B', true)).toBe(false);
    expect(() => readBool({ B: 'maybe' }, 'B', true)).toThrow(/one of 1, true/);
    expect(readEnum({ M: 'push' }, 'M', 'pull', ['pull', 'push'] as const)).toBe('push');
    expect(() => readEnum({ M: 'poll' }, 'M', 'pull', ['pull', 'push'] as const)).toThrow('invalid M="poll": expected one of pull, push');
  });
});

describe('CIDR allow-lists', () => {
  test('empty list allows everyone', () => {
    expect(readCidrs({}, 'A').allows('203.0.113.9')).toBe(true);
  });

  test('matches IPv4, IPv6 and IPv4-mapped IPv6 addresses', () => {
    const l = readCidrs({ A: '192.168.1.0/24, 10.0.0.7 ,::1' }, 'A');
    expect(l.allows('192.168.1.77')).toBe(true);
    expect(l.allows('::ffff:192.168.1.77')).toBe(true);
    expect(l.allows('10.0.0.7')).toBe(true);
    expect(l.allows('10.0.0.8')).toBe(false);
    expect(l.allows('::1')).toBe(true);
    expect(l.allows('2001:db8::1')).toBe(false);
    expect(l.allows(undefined)).toBe(false);
  });

  test('bad entries are config errors', () => {
    expect(() => readCidrs({ A: '192.168.1.0/33' }, 'A')).toThrow(/invalid A=.*bad prefix length/);
    expect(() => readCidrs({ A: 'example.com' }, 'A')).toThrow(/not an IP address/);
    expect(() => new CidrList(['1.2.3.4/x'])).toThrow();
  });
});
