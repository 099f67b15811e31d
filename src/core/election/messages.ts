// The messages of /xo-mesh/election/1.0.0 as the core sees them, already
// checked against the protocol's limits by the codec (election.proto names
// the fields).
import type { Capability } from './capability.ts'

/** A remote peer, as the driver names it (a libp2p peer id string, a simulator node id). */
export type PeerId = string

/**
 * One peer's statement about itself, signed by it: who it is, how fresh the
 * statement is, what it can do, and whether it is serving (the school server)
 * and in which term.
 */
export interface Claim {
  peer: PeerId
  /** Grows at every restart of the peer (persisted by its driver). */
  incarnation: number
  /** Grows with every claim of one incarnation. */
  seq: number
  capability: Capability
  /** The peer holds the server role. */
  serving: boolean
  /** Serving: the term of its tenure. Not serving: the highest term it knows. */
  term: number
}

/** A claim as carried: its exact signed bytes, the decoded claim, the signature, how many relays it passed and how old it is. */
export interface SignedClaim {
  claim: Claim
  /** The encoded Claim the signature covers (after SIGNATURE_CONTEXT). */
  bytes: Uint8Array
  signature: Uint8Array
  /** 0 from the peer itself, +1 at every relay. Not signed: informational only. */
  hops: number
  /**
   * Milliseconds since the peer issued it, as the relays measured it on
   * their own clocks (0 from the peer itself; time on the links is not
   * counted). A receiver's lease of the claim ends failure-timeout after
   * issue, not after arrival, so a late relay cannot extend it.
   */
  age: number
}

/** The one message of 1.0.0: claims, the sender's own and the ones it relays. */
export interface ClaimsMessage {
  type: 'claims'
  claims: SignedClaim[]
}

export type ElectionMessage = ClaimsMessage
