// What the exchange core takes in and gives out (protocols/blocks.md,
// "Driving the core"). The core never touches the store or a stream: it asks
// the driver to load a build, to store received blocks and to serve blocks,
// and is told how that went.
import type { Blocks, ControlMessage, Message, Root } from './messages.ts'
import type { Tuning } from './constants.ts'

/** A remote peer, as the driver names it (a libp2p peer id string, a simulator node id). */
export type PeerId = string

/** What the driver found in the store for a build. */
export type LoadResult =
  /** Part of the manifest is missing: the dag-pb/dag-cbor CIDs the store lacks whose parents it holds (the record's CID when it has nothing). */
  | { status: 'manifest-missing', missing: Uint8Array[] }
  /**
   * The manifest is complete. `manifest`: record and interior node CIDs
   * (served on request); `sizes`: the leaf sizes in index order (kept, not
   * copied: do not modify); `have`: bitfield of the leaves on disk (copied).
   */
  | { status: 'ready', manifest: Uint8Array[], sizes: Uint32Array, have: Uint8Array }
  /** Not a build, or unreadable. */
  | { status: 'failed', reason: string }

export type ExchangeInput =
  /** A stream to the peer is open: frames can be sent. */
  | { type: 'connected', peer: PeerId }
  /** The peer's stream closed (or its connection). */
  | { type: 'disconnected', peer: PeerId }
  /** A frame from the peer, decoded with decodeFrame. */
  | { type: 'message', peer: PeerId, message: Message }
  /** The peer sent something decodeFrame or FrameReader refused (InvalidMessageError's message). */
  | { type: 'malformed', peer: PeerId, reason: string }
  /** Keep this build: load it, fetch what is missing, announce and serve it. Again to change its priority (higher first). */
  | { type: 'hold', root: Root, priority?: number }
  /** Stop fetching, announcing and serving a build. */
  | { type: 'drop', root: Root }
  /** Answer to a `load` output. */
  | { type: 'loaded', root: Root, result: LoadResult }
  /**
   * Answer to a `store` output (one or several per output): these blocks were
   * verified and are durable ('ok'), failed verification ('corrupt': the
   * core bans the peer), or could not be written ('failed': a local problem).
   */
  | { type: 'stored', peer: PeerId, root: Root, indices: ArrayLike<number>, cids: readonly Uint8Array[], result: 'ok' | 'corrupt' | 'failed' }
  /** Answer to a `serve` output once its frame is written (or the write failed); lists what the store could not provide. */
  | { type: 'served', peer: PeerId, root: Root, missingIndices?: ArrayLike<number>, missingCids?: readonly Uint8Array[] }
  /** nextDeadline() has passed. */
  | { type: 'timer' }

export type ExchangeOutput =
  /** Encode with encodeFrame and write to the peer's stream. */
  | { type: 'send', peer: PeerId, message: ControlMessage }
  /**
   * Read these blocks of a build from the store (leaves by index, manifest
   * blocks by CID), write them to the peer as one data frame (encodeBlocksHead
   * then the bytes, in this order, leaving out what the store lacks), then
   * input `served`.
   */
  | { type: 'serve', peer: PeerId, root: Root, indices: Uint32Array, cids: Uint8Array[] }
  /**
   * Verify and store entries of a received data frame: `entries` are
   * positions in `blocks.indices` (leaf frames, hash against the leaf's CID)
   * or `blocks.cids` (manifest frames, hash against that CID). Then input
   * `stored`. Other entries are duplicates: drop them.
   */
  | { type: 'store', peer: PeerId, root: Root, blocks: Blocks, entries: Uint32Array }
  /** Find out what the store holds of a build; answer with `loaded`. */
  | { type: 'load', root: Root }
  /** Close the peer's streams and refuse it until `until`. */
  | { type: 'ban', peer: PeerId, reason: string, until: number }
  /** Close the peer's streams (a limit, not misbehaviour). */
  | { type: 'disconnect', peer: PeerId, reason: string }
  /** Every leaf of a held build is stored. */
  | { type: 'complete', root: Root }
  /** A held build cannot be used (loaded said failed); it is dropped. */
  | { type: 'failed', root: Root, reason: string }
  /** A peer announced a build this core does not hold (for the agent to decide whether to hold it). */
  | { type: 'available', peer: PeerId, root: Root, leaves: number, complete: boolean }

export interface ExchangeInit {
  /** Uniform random numbers in [0, 1), seeded by the caller. */
  random: () => number
  /** Peers served at once (DEFAULT_UPLOAD_SLOTS). */
  uploadSlots?: number
  /** Upload cap in bytes per second, all peers together; 0 for none (DEFAULT_UPLOAD_RATE). */
  uploadRate?: number
  /** Connected peers at most (DEFAULT_MAX_PEERS). */
  maxPeers?: number
  /** New peers accepted per second (DEFAULT_NEW_PEERS_PER_SECOND). */
  newPeersPerSecond?: number
  /** Ban length, ms (DEFAULT_BAN_MS). */
  banTime?: number
  /** Control bytes a peer may send per second (DEFAULT_CONTROL_RATE). */
  controlRate?: number
  /** Scheduler tuning (DEFAULT_TUNING). */
  tuning?: Partial<Tuning>
  /** The driver's clock at creation, ms (0). */
  now?: number
}

/** A held build as the agent reports it. */
export interface BuildStatus {
  root: Root
  priority: number
  /** 'loading': waiting for the store; 'manifest': fetching the record and interior nodes; 'ready': the index space is known. */
  phase: 'loading' | 'manifest' | 'ready'
  complete: boolean
  leaves: number
  haveLeaves: number
  bytes: number
  haveBytes: number
  /** Connected peers known to hold some or all of it. */
  holders: number
}

/** Counters of one core, for status and tests. */
export interface ExchangeStats {
  /** Block bytes handed to the driver to serve. */
  bytesServed: number
  /** Block bytes received in data frames (duplicates included). */
  bytesReceived: number
  /** Leaves received that were already held or being stored. */
  duplicateBlocks: number
  duplicateBytes: number
  /** Second requests for a leaf (end-game). */
  endgameRequests: number
  /** Peers that stalled with requests outstanding. */
  stalls: number
  bans: number
}
