// The USB round trip from the agent's side (src/store/usb.ts does the work):
// the keys it needs from libp2p identities, and one trip at a time.
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { receiptKey } from '../../store/stick.ts'
import type { SigningKey } from '../../trust/keys.ts'

/** What `xo-mesh usb` needs besides the stick: from the agent's config. */
export interface UsbInit {
  /** advisory.school: the school named on the stick. */
  school?: string | null
  /** relay.mothership: the peer id whose signature a receipt must carry. */
  mothership?: string | null
  /** advisory.root_key, raw. */
  rootKey?: Uint8Array
}

/** The agent's identity key as the key that signs the mothership's receipts. Throws for a key that is not Ed25519. */
export function signingKeyOf (key: PrivateKey): SigningKey {
  if (key.type !== 'Ed25519') throw new Error(`the identity key is ${key.type}: receipts need an Ed25519 identity`)
  return receiptKey(key.raw.subarray(0, 32), key.publicKey.raw)
}

/** The 32-byte public key inside an Ed25519 peer id (the mothership's), or undefined for another kind of id. */
export function publicKeyOfPeer (peerId: string): Uint8Array | undefined {
  try {
    const id = peerIdFromString(peerId)
    return id.type === 'Ed25519' ? id.publicKey.raw : undefined
  } catch {
    return undefined
  }
}
