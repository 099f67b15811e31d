// What the election core takes in and gives out (protocols/election.md,
// "Driving the core").
import type { Capability } from './capability.ts'
import type { ElectionConfig } from './constants.ts'
import type { ElectionMessage, PeerId } from './messages.ts'

export type Role = 'server' | 'peer'

/**
 * Signs this peer's claims and checks other peers' signatures. The libp2p
 * driver uses the peer's Ed25519 identity key (the key is in the peer id);
 * a simulator may use a fake one. Both are synchronous and must not throw.
 */
export interface ClaimAuthenticator {
  /** Signs payload (SIGNATURE_CONTEXT + claim bytes) with this peer's key. */
  sign (payload: Uint8Array): Uint8Array
  /** Whether signature is peer's signature of payload. */
  verify (peer: PeerId, payload: Uint8Array, signature: Uint8Array): boolean
}

export type ElectionInput =
  /** A stream to this neighbour is open (a direct link): frames can be sent to it. */
  | { type: 'neighbour-up', peer: PeerId }
  /** The neighbour's stream or connection closed. */
  | { type: 'neighbour-down', peer: PeerId }
  /** A frame from a neighbour (the driver knows who it is: the stream is authenticated), decoded with decodeFrame. */
  | { type: 'message', peer: PeerId, message: ElectionMessage }
  /** The neighbour sent something decodeFrame or FrameReader refused (InvalidMessageError's message). */
  | { type: 'malformed', peer: PeerId, reason: string }
  /** This peer's facts changed (the agent re-reads them now and then). */
  | { type: 'capability', capability: Capability }
  /** nextDeadline() has passed. */
  | { type: 'timer' }

/** The election as this peer sees it. */
export interface RoleState {
  role: Role
  /** The server this peer follows (itself when serving), or null while there is none. */
  server: PeerId | null
  /** The server's term; with no server, the highest term known. */
  term: number
}

export type ElectionOutput =
  /** Encode with encodeFrame and write to this neighbour. */
  | { type: 'send', peer: PeerId, message: ElectionMessage }
  /** Encode once and write to every neighbour that is up, but `except` (on a radio: one transmission). */
  | { type: 'broadcast', message: ElectionMessage, except?: PeerId }
  /** The role, the server or the term changed: the agent acts on it (a server's duties start or stop). */
  | { type: 'role', state: RoleState, previous: RoleState }
  /** Close the neighbour's stream and ignore it until `until` (it sent a malformed frame or a forged claim). */
  | { type: 'ban', peer: PeerId, reason: string, until: number }

export interface ElectionInit {
  /** This peer's id, as the authenticator and the other peers name it. */
  self: PeerId
  /** This peer's facts at the start. */
  capability: Capability
  authenticator: ClaimAuthenticator
  /** Uniform random numbers in [0, 1), seeded by the caller (heartbeat jitter). */
  random: () => number
  /** Grows at every start of this peer (the driver persists it): old claims of a previous life cannot be replayed. Default 1. */
  incarnation?: number
  /** The highest term this peer knew before it stopped (the driver persists it). Default 0. */
  term?: number
  config?: Partial<ElectionConfig>
  /** The driver's clock at creation, ms (0). */
  now?: number
}

/** A neighbour as `xo-mesh peers` shows it: what its own latest claim says. */
export interface NeighbourView {
  peer: PeerId
  capability: Capability | null
  serving: boolean
  term: number
}

/** A claim this peer holds live. */
export interface KnownClaim {
  peer: PeerId
  capability: Capability
  serving: boolean
  term: number
  /** Relays it passed before reaching this peer. */
  hops: number
  /** When it was last refreshed (driver's clock). */
  heardAt: number
}

/** Counters, for status and tests. */
export interface ElectionStats {
  claimsAccepted: number
  claimsRelayed: number
  /** Dropped: not newer, too many hops, absurd term, over the per-origin budget, table full. */
  claimsDropped: number
  badSignatures: number
  malformed: number
  bans: number
}
