// The messages of /xo-mesh/advisory/1.0.0 as typed values (advisory.proto
// names the fields). Version 0 with an empty hash: holds no snapshot.

/** What the sender holds: the Trickle advert. */
export interface StateMessage {
  type: 'state'
  /** Version of the snapshot held (0: none). */
  version: number
  /** The snapshot's hash (its binary CID), empty when none. */
  hash: Uint8Array
  /** The newest root version the sender trusts (0: only a provisioned key). */
  rootVersion: number
  /** Digest of the install results held (XOR of their ids, 32 bytes), empty when none (results.ts). */
  resultsDigest?: Uint8Array
  /** Install results held. */
  resultsCount?: number
}

/** Send me your snapshot, and the root versions after `rootVersion`. */
export interface RequestMessage {
  type: 'request'
  /** The version the requester saw advertised (for logs). */
  version: number
  rootVersion: number
}

/** The signed snapshot, and root versions the requester lacks (oldest first). */
export interface SnapshotMessage {
  type: 'snapshot'
  snapshot: Uint8Array
  roots: Uint8Array[]
}

/** Install results the sender holds (each signed by the laptop it is about: results.ts), sent to a peer whose results differ. */
export interface ResultsMessage {
  type: 'results'
  records: Uint8Array[]
}

export type AdvisoryMessage = StateMessage | RequestMessage | SnapshotMessage | ResultsMessage
