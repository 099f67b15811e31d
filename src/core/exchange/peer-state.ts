// What the exchange core knows of one connected peer: what it holds of each
// build we hold, what we asked it for, how fast its link is, and how much it
// may still send us or ask of us.
import type { Tuning } from './constants.ts'
import { RequestWindow } from './window.ts'
import { TokenBucket } from './token-bucket.ts'
import type { ControlMessage } from './messages.ts'
import type { PeerId } from './types.ts'

/** What we know of one peer for one build we hold. */
export interface PeerBuild {
  /** The peer sent a Have: it holds the manifest and this bitfield. */
  known: boolean
  /** Leaves the peer says the build has. */
  leaves: number
  /** Its bitfield; null when it holds every leaf. */
  bits: Uint8Array | null
  count: number
  /** Its leaves are counted in the build's availability. */
  counted: boolean
  /** Leaves requested from it: index → time sent. */
  out: Map<number, number>
  outBytes: number
  /** Manifest blocks requested from it: CID key → time sent. */
  outCids: Map<string, number>
  /** Manifest blocks requested from it and given up on, which may still arrive. */
  lateCids: Set<string>
  /** The build's epoch when this (partial) peer last had nothing we could request; -1 when it may have. */
  dryEpoch: number
}

export class Peer {
  readonly id: PeerId
  readonly builds = new Map<string, PeerBuild>()
  /** Builds the peer wants our Have and updates for. */
  readonly interests = new Set<string>()
  readonly window: RequestWindow
  readonly control: TokenBucket
  chokedUs = false
  snubbedUntil = 0
  strikes = 0
  /** Last time the peer answered a request, or we sent one after a quiet spell. */
  lastProgress: number
  /** Bytes of blocks the peer may send us unrequested (requests we withdrew that may be on the wire). */
  credit = 0
  bytesIn = 0
  bytesOut = 0

  constructor (id: PeerId, tuning: Tuning, controlRate: number, now: number) {
    this.id = id
    this.window = new RequestWindow(tuning)
    this.control = new TokenBucket(controlRate / 1000, controlRate * 4, now)
    this.lastProgress = now
  }
}

/** A PeerBuild that knows nothing yet. */
export function newPeerBuild (): PeerBuild {
  return { known: false, leaves: 0, bits: null, count: 0, counted: false, out: new Map(), outBytes: 0, outCids: new Map(), lateCids: new Set(), dryEpoch: -1 }
}

/** What handling a control message may cost us, in bytes of the control budget. */
export function controlCost (m: ControlMessage): number {
  switch (m.type) {
    case 'have': return 64 + (m.bitfield?.length ?? 0)
    case 'have-update': return 64 + m.indices.length * 4
    case 'request':
    case 'cancel':
    case 'dont-have': return 64 + m.indices.length * 4 + m.cids.length * 40
    default: return 64
  }
}

/** Calls f with the index of every set bit. */
export function forEachBit (bf: Uint8Array, f: (i: number) => void): void {
  for (let byte = 0; byte < bf.length; byte++) {
    const v = bf[byte]!
    if (v === 0) continue
    for (let bit = 0; bit < 8; bit++) if ((v & (0x80 >>> bit)) !== 0) f(byte * 8 + bit)
  }
}
