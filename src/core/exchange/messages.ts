// The messages of /xo-mesh/blocks/1.0.0 as typed values (protocols/blocks.md,
// blocks.proto). A decoded message has passed every check that needs no
// knowledge of the build: lengths, counts, CID shapes, ascending indices.
// Byte fields are views into the received frame: copy what you keep.

/** Binary CID of a build's record, the name the mesh uses for a build. */
export type Root = Uint8Array

/** What the sender holds of a build (sent on connect, in reply to Interest, on completion). */
export interface Have {
  type: 'have'
  root: Root
  /** Leaves in the build's index space. */
  leaves: number
  /** Holds every leaf; `bitfield` is then absent. */
  complete: boolean
  /** ceil(leaves / 8) bytes, bit i = leaf i (MSB first), padding clear; absent when complete. */
  bitfield?: Uint8Array
}

/** Leaves the sender has stored since its last Have or HaveUpdate (to peers interested in the build). */
export interface HaveUpdate {
  type: 'have-update'
  root: Root
  /** Strictly ascending, at least one. */
  indices: Uint32Array
}

/** The sender wants (or no longer wants) a build: send me your Have and later updates. */
export interface Interest {
  type: 'interest'
  root: Root
  interested: boolean
}

/** Send me these leaves (by index) or manifest blocks (by CID) of a build. */
export interface Request {
  type: 'request'
  root: Root
  /** Strictly ascending. */
  indices: Uint32Array
  cids: Uint8Array[]
}

/** Forget these requests (not yet served). */
export interface Cancel {
  type: 'cancel'
  root: Root
  indices: Uint32Array
  cids: Uint8Array[]
}

/** I will not send these; with neither indices nor CIDs: I do not hold this build at all. */
export interface DontHave {
  type: 'dont-have'
  root: Root
  indices: Uint32Array
  cids: Uint8Array[]
}

/** I dropped your queued requests and will serve you nothing until Unchoke. */
export interface Choke { type: 'choke' }

/** You may request again. */
export interface Unchoke { type: 'unchoke' }

/** What a data frame's header says; the blocks' bytes follow it unencoded. */
export interface BlocksHead {
  root: Root
  /** Leaf entries, strictly ascending; or empty when the frame carries manifest blocks. */
  indices: ArrayLike<number>
  /** Manifest entries (record, dag-pb nodes), distinct; or empty when the frame carries leaves. */
  cids: Uint8Array[]
  /** Size of each entry, in order, bytes. */
  sizes: ArrayLike<number>
}

/** A decoded data frame. Entry p's bytes are payload.subarray(offsets[p], offsets[p + 1]). */
export interface Blocks {
  type: 'blocks'
  root: Root
  indices: Uint32Array
  cids: Uint8Array[]
  sizes: Uint32Array
  /** Entry count + 1 prefix sums of sizes. */
  offsets: Uint32Array
  payload: Uint8Array
}

export type ControlMessage = Have | HaveUpdate | Interest | Request | Cancel | DontHave | Choke | Unchoke
export type Message = ControlMessage | Blocks
