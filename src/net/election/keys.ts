// Claims signed with the peer's libp2p identity (Ed25519), checked against the
// key inside the claimed peer id: a peer can speak for itself only, and a
// relay can forward a claim but not forge one. node:crypto does the work
// synchronously, as the core wants (about 50 µs a signature, less a check).
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { ClaimAuthenticator } from '../../core/election/index.ts'

/** Public keys kept, by peer id (a school is tens of peers; a flood of made-up ids cycles through). */
const MAX_CACHED_KEYS = 1024

function b64url (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url')
}

/** An Ed25519 KeyObject from libp2p's raw private key (32-byte seed then 32-byte public key). */
function privateKeyObject (key: PrivateKey): KeyObject {
  if (key.type !== 'Ed25519') throw new TypeError(`claims need an Ed25519 identity, not ${key.type}`)
  const raw = key.raw
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x: b64url(key.publicKey.raw) }, format: 'jwk' })
}

/** The peer's Ed25519 public key from its id, or undefined when the id holds none (RSA, malformed). */
function publicKeyOf (peer: string): KeyObject | undefined {
  try {
    const pk = peerIdFromString(peer).publicKey
    if (pk === undefined || pk.type !== 'Ed25519') return undefined
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pk.raw) }, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** Signs with this peer's identity key; checks others' signatures against their peer ids. Never throws. */
export function ed25519Authenticator (key: PrivateKey): ClaimAuthenticator {
  const own = privateKeyObject(key)
  const keys = new Map<string, KeyObject | null>()
  return {
    sign: payload => sign(null, payload, own),
    verify: (peer, payload, signature) => {
      let k = keys.get(peer)
      if (k === undefined) {
        k = publicKeyOf(peer) ?? null
        if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value!)
        keys.set(peer, k)
      }
      if (k === null || signature.length !== 64) return false
      try {
        return verify(null, payload, k, signature)
      } catch {
        return false
      }
    }
  }
}
