// Noise's primitives (SHA-256, HKDF, X25519, ChaCha20-Poly1305) from Node's
// own OpenSSL, for every message size.
//
// Why not @chainsafe/libp2p-noise's default: it sends messages under 1,200
// bytes through two WebAssembly modules (as-chacha20poly1305, as-sha256)
// that it instantiates when it is imported, and takes HKDF from @noble. An
// agent that only talks now and then pays for that all its life: the wasm
// memories, the compiled wasm code and the optimising compiler's pages it
// touches, ~2 MiB of an idle agent's RSS (docs/agent.md, "Memory"). OpenSSL
// is in the node binary already; a small message costs it a few µs more,
// which an exchange of 1 MiB frames does not see. The agent bundle
// (scripts/build-agentd.ts) also drops the default module, so the wasm is
// never instantiated.
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'

const CHACHA = 'chacha20-poly1305'
const TAG_LENGTH = 16
/** DER before a raw 32-byte X25519 private key (PKCS#8) and public key (SPKI). */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex')
const NO_INFO = new Uint8Array(0)

/** Noise's own copy of uint8arraylist (an older major): the same class at run time (one Symbol.for brand), another type. */
type NoiseList = Exclude<ReturnType<ICryptoInterface['chaCha20Poly1305Encrypt']>, Uint8Array>
const asNoiseList = (list: Uint8ArrayList): NoiseList => list as unknown as NoiseList

function bytesOf (data: Uint8Array | NoiseList): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

function privateKeyOf (raw: Uint8Array): ReturnType<typeof createPrivateKey> {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' })
}

function publicKeyOf (raw: Uint8Array): ReturnType<typeof createPublicKey> {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' })
}

export const nodeNoiseCrypto: ICryptoInterface = {
  hashSHA256 (data) {
    const hash = createHash('sha256')
    if (data instanceof Uint8Array) hash.update(data)
    else for (const buf of data) hash.update(buf)
    return hash.digest()
  },

  getHKDF (ck, ikm) {
    // HKDF-SHA256 with the chaining key as salt and no info: Noise's HKDF(ck, ikm, 3)
    const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, NO_INFO, 96))
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
  },

  generateX25519KeyPair () {
    const { publicKey, privateKey } = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } })
    return { publicKey: publicKey.subarray(SPKI_X25519.length), privateKey: privateKey.subarray(PKCS8_X25519.length) }
  },

  generateX25519KeyPairFromSeed (seed) {
    const publicKey = createPublicKey(privateKeyOf(seed)).export({ type: 'spki', format: 'der' }).subarray(SPKI_X25519.length)
    return { publicKey, privateKey: seed }
  },

  generateX25519SharedKey (privateKey, publicKey) {
    return diffieHellman({ privateKey: privateKeyOf(bytesOf(privateKey)), publicKey: publicKeyOf(bytesOf(publicKey)) })
  },

  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    const cipher = createCipheriv(CHACHA, k, nonce, { authTagLength: TAG_LENGTH })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    // the body and its tag as a list, not concatenated: Noise appends them to
    // the list it hands the socket either way, and a copy would cost a second
    // 64 KiB buffer per message, from malloc's heap (docs/agent.md, "Memory")
    const out = new Uint8ArrayList()
    if (plaintext instanceof Uint8Array) out.append(cipher.update(plaintext))
    else for (const buf of plaintext) out.append(cipher.update(buf))
    cipher.final()
    out.append(cipher.getAuthTag())
    return asNoiseList(out)
  },

  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k) {
    // throws when the tag does not verify: Noise closes the connection
    const end = ciphertext.byteLength - TAG_LENGTH
    if (end < 0) throw new Error('a Noise ciphertext shorter than its tag')
    const decipher = createDecipheriv(CHACHA, k, nonce, { authTagLength: TAG_LENGTH })
    decipher.setAAD(ad, { plaintextLength: end })
    decipher.setAuthTag(ciphertext.subarray(end))
    if (ciphertext instanceof Uint8Array) {
      const body = decipher.update(ciphertext.subarray(0, end))
      decipher.final()
      return body
    }
    const out = new Uint8ArrayList()
    for (const buf of ciphertext.sublist(0, end)) out.append(decipher.update(buf))
    decipher.final()
    return asNoiseList(out)
  }
}
