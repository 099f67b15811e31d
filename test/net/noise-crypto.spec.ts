// Noise on Node's OpenSSL (src/net/noise-crypto.ts) must compute what the
// reference implementation the Noise package ships (@noble, pure JS)
// computes, for messages of every size and for bodies split over lists, or
// an agent could not talk to a peer running libp2p's defaults.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { pureJsCrypto } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'
import { nodeNoiseCrypto } from '../../src/net/noise-crypto.ts'

const bytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n })
/** Message bodies either side of the 1,200 bytes where the package's default switches implementation. */
const body = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 1100, maxLength: 1300 }), fc.uint8Array({ maxLength: 70_000 }))

/** A list as Noise passes one (its own copy of uint8arraylist: the same at run time, another type). */
type NoiseList = Exclude<Parameters<typeof nodeNoiseCrypto.hashSHA256>[0], Uint8Array>

/** The same bytes as a list of 1–4 pieces. */
function split (b: Uint8Array, cuts: number[]): NoiseList {
  const at = [...new Set(cuts.map(c => c % (b.length + 1)))].sort((x, y) => x - y)
  const list = new Uint8ArrayList()
  let from = 0
  for (const c of [...at, b.length]) {
    list.append(b.subarray(from, c))
    from = c
  }
  return list as unknown as NoiseList
}

const hex = (b: { subarray: () => Uint8Array }): string => Buffer.from(b.subarray()).toString('hex')

describe('Noise crypto on OpenSSL', () => {
  it('hashes and derives keys as the reference does', () => {
    fc.assert(fc.property(body, fc.array(fc.nat(), { maxLength: 3 }), bytes(32), fc.uint8Array({ maxLength: 64 }), (data, cuts, ck, ikm) => {
      assert.equal(hex(nodeNoiseCrypto.hashSHA256(data)), hex(pureJsCrypto.hashSHA256(data)))
      assert.equal(hex(nodeNoiseCrypto.hashSHA256(split(data, cuts))), hex(pureJsCrypto.hashSHA256(data)))
      assert.deepEqual(nodeNoiseCrypto.getHKDF(ck, ikm).map(hex), pureJsCrypto.getHKDF(ck, ikm).map(hex))
    }), { numRuns: 200 })
  })

  it('agrees on X25519 keys and shared secrets', () => {
    fc.assert(fc.property(bytes(32), bytes(32), (a, b) => {
      const ours = nodeNoiseCrypto.generateX25519KeyPairFromSeed(a)
      assert.equal(hex(ours.publicKey), hex(pureJsCrypto.generateX25519KeyPairFromSeed(a).publicKey))
      const theirs = pureJsCrypto.generateX25519KeyPairFromSeed(b)
      assert.equal(hex(nodeNoiseCrypto.generateX25519SharedKey(a, theirs.publicKey)), hex(pureJsCrypto.generateX25519SharedKey(b, ours.publicKey)))
    }), { numRuns: 50 })
    const fresh = nodeNoiseCrypto.generateX25519KeyPair()
    assert.equal(fresh.privateKey.length, 32)
    assert.equal(hex(fresh.publicKey), hex(pureJsCrypto.generateX25519KeyPairFromSeed(fresh.privateKey).publicKey))
  })

  it('seals and opens as the reference does, and refuses a changed byte', () => {
    fc.assert(fc.property(body, fc.array(fc.nat(), { maxLength: 3 }), bytes(12), fc.uint8Array({ maxLength: 40 }), bytes(32), fc.nat(), (plain, cuts, nonce, ad, k, flip) => {
      const sealed = nodeNoiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k)
      assert.equal(hex(sealed), hex(pureJsCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k)))
      assert.equal(hex(nodeNoiseCrypto.chaCha20Poly1305Encrypt(split(plain, cuts), nonce, ad, k)), hex(sealed))
      assert.equal(hex(nodeNoiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)), hex(plain))
      assert.equal(hex(nodeNoiseCrypto.chaCha20Poly1305Decrypt(split(sealed.subarray(), cuts), nonce, ad, k)), hex(plain))
      const bad = Uint8Array.from(sealed.subarray())
      bad[flip % bad.length]! ^= 1 << (flip % 8)
      assert.throws(() => nodeNoiseCrypto.chaCha20Poly1305Decrypt(bad, nonce, ad, k))
    }), { numRuns: 100 })
    assert.throws(() => nodeNoiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(15), new Uint8Array(12), new Uint8Array(0), new Uint8Array(32)), /shorter than its tag/)
  })
})
