import { utils } from 'ssh2';
import { ed25519KeyPair } from '../../ssh-keys';

describe('ed25519KeyPair', () => {
  test('every key it hands out parses, both halves, with and without a passphrase', () => {
    // ssh2 alone fails about 1 key in 256: 1000 keys would almost surely include bad ones
    for (let i = 0; i < 1000; i++) {
      const k = ed25519KeyPair();
      expect(utils.parseKey(k.private)).not.toBeInstanceOf(Error);
      expect(utils.parseKey(k.public)).not.toBeInstanceOf(Error);
    }
    const enc = ed25519KeyPair({ passphrase: 'sesame', cipher: 'aes256-ctr', rounds: 4 });
    expect(utils.parseKey(enc.private, 'sesame')).not.toBeInstanceOf(Error);
    expect(utils.parseKey(enc.private)).toBeInstanceOf(Error);
  });
});
