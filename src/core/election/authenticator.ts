// An authenticator for simulators and tests, where real keys would cost time
// and prove nothing: a claim's "signature" is a keyed checksum of the peer id
// and the payload. Anyone can compute anyone's, so it is NOT for a network:
// the libp2p driver signs with the peer's Ed25519 key.
import type { ClaimAuthenticator } from './types.ts'

/** FNV-1a-like (64 bits as two 32-bit halves) of the peer id, then the payload. */
function checksum (peer: string, payload: Uint8Array): Uint8Array {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  const n = peer.length + 1 + payload.length
  for (let i = 0; i < n; i++) {
    const b = i < peer.length ? peer.charCodeAt(i) & 0xff : i === peer.length ? 0 : payload[i - peer.length - 1]!
    h1 = Math.imul(h1 ^ b, 0x01000193) >>> 0
    h2 = Math.imul(h2 ^ b ^ (h1 >>> 7), 0x5bd1e995) >>> 0
  }
  return Uint8Array.of(h1 >>> 24, h1 >>> 16, h1 >>> 8, h1, h2 >>> 24, h2 >>> 16, h2 >>> 8, h2)
}

/** A checksum "signer" for peer `self` (simulators and tests only: it authenticates nothing). */
export function checksumAuthenticator (self: string): ClaimAuthenticator {
  return {
    sign: payload => checksum(self, payload),
    verify: (peer, payload, signature) => {
      const want = checksum(peer, payload)
      if (signature.length !== want.length) return false
      for (let i = 0; i < want.length; i++) if (signature[i] !== want[i]) return false
      return true
    }
  }
}
