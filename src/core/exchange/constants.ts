// Limits and defaults of /xo-mesh/blocks/1.0.0. The MAX_* limits are part of
// the protocol (protocols/blocks.md): a peer that exceeds one is banned. The
// DEFAULT_* values are local tuning and may differ between peers.

export const PROTOCOL = '/xo-mesh/blocks/1.0.0'

/** Largest frame body (after the length prefix), in bytes. */
export const MAX_FRAME_SIZE = 4 * 1024 * 1024
/** Largest protobuf header of a frame, in bytes (a bitfield of MAX_LEAVES fits). */
export const MAX_HEADER_SIZE = 256 * 1024
/** Largest block, in bytes (bitswap's limit). */
export const MAX_BLOCK_SIZE = 2 * 1024 * 1024
/** Most leaves a build may have (64 GiB at 64 KiB per leaf). */
export const MAX_LEAVES = 1 << 20
/** Most leaf indices in one message. */
export const MAX_INDICES = 4096
/** Most CIDs in one message. */
export const MAX_CIDS = 512
/** Most requests (leaves and CIDs) a server queues for one peer; one more is a ban. */
export const MAX_QUEUED_REQUESTS = 2048
/** Most builds a peer may declare interest in at once; more are ignored. */
export const MAX_INTERESTS = 256

/** Peers served at once (upload slots); the others are choked. */
export const DEFAULT_UPLOAD_SLOTS = 4
/** Global upload cap in bytes per second; 0 is no cap. */
export const DEFAULT_UPLOAD_RATE = 0
/** Connected peers at most. */
export const DEFAULT_MAX_PEERS = 64
/** New peers accepted per second (a token bucket with a burst of twice this). */
export const DEFAULT_NEW_PEERS_PER_SECOND = 10
/** How long a misbehaving peer stays banned, in ms. */
export const DEFAULT_BAN_MS = 10 * 60 * 1000
/** Control bytes a peer may send per second (a token bucket with 4 s of burst); more is a ban for flooding. */
export const DEFAULT_CONTROL_RATE = 1024 * 1024

/** Tuning of the scheduler; every field has a DEFAULT_TUNING value. */
export interface Tuning {
  /** Bytes of blocks in one served frame (one larger block goes alone). */
  serveBatchBytes: number
  /** Serve frames in flight to one peer (written by the driver, not yet reported served). */
  servePipeline: number
  /** First request window per peer, bytes. */
  initialWindow: number
  /** Smallest and largest request windows, bytes. */
  minWindow: number
  maxWindow: number
  /** Most leaves and CIDs outstanding at one peer (below MAX_QUEUED_REQUESTS). */
  maxWindowBlocks: number
  /** Window = gain × delivery rate × minimum delay. */
  windowGain: number
  /** Manifest CIDs outstanding at one peer. */
  manifestWindow: number
  /** Newly stored leaves are announced after this delay, ms… */
  announceDelay: number
  /** …or as soon as this many are pending. */
  announceBatch: number
  /**
   * Peers we are not serving hear of newly stored leaves this long after the
   * first of them once quietAnnounceLeaves are pending, ms; with fewer, ten
   * times as long; with announceBatch, at once. Nobody is waiting on those
   * updates, and on a shared channel each is a frame of airtime: a laptop
   * storing a leaf every half minute would otherwise tell every peer of
   * every leaf alone.
   */
  quietAnnounceDelay: number
  quietAnnounceLeaves: number
  /** End-game (a second request for an outstanding leaf) only when at most this many leaves are missing. */
  endgameBlocks: number
  /**
   * Sources at once: a fetcher asks a peer with nothing outstanding for
   * leaves only while fewer peers have requests outstanding (end-game
   * aside). On a shared channel every source is another transfer splitting
   * the same airtime.
   */
  maxSources: number
  /** A peer that delivers nothing for max(this, 4 × its smoothed delay) loses its requests, ms. */
  stallTimeout: number
  /** A stalled peer gets no requests for this long (× its strikes, up to 6), ms. */
  snubTime: number
  /** With peers waiting for a slot, the longest-served peer is choked after this long, ms. */
  rotateTime: number
  /** A slot unused for this long is taken back, ms. */
  slotIdleTime: number
}

export const DEFAULT_TUNING: Tuning = {
  serveBatchBytes: 1024 * 1024,
  servePipeline: 2,
  initialWindow: 256 * 1024,
  minWindow: 128 * 1024,
  maxWindow: 32 * 1024 * 1024,
  maxWindowBlocks: 1024,
  windowGain: 2,
  manifestWindow: 64,
  announceDelay: 50,
  announceBatch: 64,
  quietAnnounceDelay: 60_000,
  quietAnnounceLeaves: 32,
  endgameBlocks: 8,
  maxSources: 4,
  stallTimeout: 5000,
  snubTime: 10_000,
  rotateTime: 10_000,
  slotIdleTime: 1000
}
