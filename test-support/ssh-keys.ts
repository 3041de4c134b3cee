/**
 * Test SSH keys from ssh2's generator. Its ed25519 keys fail its own parser about once in 256
 * ("Malformed OpenSSH private/public key": it strips a leading zero byte of the public key;
 * mscdex/ssh2#1390, #1513), which made random tests fail: generate until both halves parse.
 */
import { utils } from 'ssh2';

type KeyOptions = Parameters<typeof utils.generateKeyPairSync>[1];

export function ed25519KeyPair(options?: KeyOptions): { private: string; public: string } {
  for (let i = 0; ; i++) {
    const k = options ? utils.generateKeyPairSync('ed25519', options) : utils.generateKeyPairSync('ed25519');
    const passphrase = (options as { passphrase?: string } | undefined)?.passphrase;
    const ok = !(utils.parseKey(k.private, passphrase) instanceof Error) && !(utils.parseKey(k.public) instanceof Error);
    if (ok) return k;
    if (i >= 50) throw new Error('ssh2 generated 50 ed25519 keys in a row that it cannot parse');
  }
}
