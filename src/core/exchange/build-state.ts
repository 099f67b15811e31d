// What the exchange core knows of one held build, and how the leaves that
// peers hold are counted into its availability (complete peers once per
// build, partial peers once per leaf they hold).
import { FetchState } from './fetch-state.ts'
import { forEachBit, type PeerBuild } from './peer-state.ts'
import type { Root } from './messages.ts'
import type { PeerId } from './types.ts'

const NO_LEAVES = new Uint32Array(0)

/** A manifest block (record or interior node) the store lacks. */
export interface ManifestWant {
  cid: Uint8Array
  /** The peer it is requested from. */
  peer: PeerId | undefined
  storing: boolean
  /** Peers that said they do not have it. */
  tried: Set<PeerId>
}

/** A held build: loading, fetching its manifest, or ready (fetching leaves or complete). */
export class Build {
  readonly key: string
  readonly root: Root
  priority: number
  readonly seq: number
  phase: 'loading' | 'manifest' | 'ready' = 'loading'
  readonly wants = new Map<string, ManifestWant>()
  manifest = new Set<string>()
  n = 0
  sizes: Uint32Array = NO_LEAVES
  totalBytes = 0
  complete = false
  /** Per-leaf state while ready and incomplete. */
  fetch: FetchState | undefined
  /** Connected peers holding every leaf (while fetching). */
  completePeers = 0
  interestSent = false
  /** Leaves stored since the last announcement to the peers we serve… */
  pending: number[] = []
  announceAt: number | undefined
  /** …and since the last one to every interested peer (Exchange.announce). */
  quietPending: number[] = []
  /** When the first of quietPending was stored, and when they are due (Exchange.quietDue). */
  quietSince = 0
  quietAt: number | undefined
  /** After the store failed to write (a full disk), no requests until then. */
  pausedUntil = 0

  constructor (root: Root, key: string, priority: number, seq: number) {
    this.root = root
    this.key = key
    this.priority = priority
    this.seq = seq
  }
}

/** Adds a peer's leaves to the build's availability (once the index space is known and matches). */
export function countPeer (b: Build, pb: PeerBuild): void {
  const st = b.fetch
  if (st === undefined || pb.counted || !pb.known || pb.leaves !== b.n) return
  pb.counted = true
  if (pb.bits === null) {
    b.completePeers++
    return
  }
  forEachBit(pb.bits, i => { st.avail[i] = st.avail[i]! + 1 })
}

/** Takes a peer's leaves out of the build's availability (before its bitfield changes, or when it goes). */
export function uncountPeer (b: Build, pb: PeerBuild): void {
  if (!pb.counted) return
  pb.counted = false
  const st = b.fetch
  if (st === undefined) return
  if (pb.bits === null) {
    b.completePeers--
    return
  }
  forEachBit(pb.bits, i => { if (st.avail[i]! > 0) st.avail[i] = st.avail[i]! - 1 })
}
