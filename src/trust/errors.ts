// Named errors of the trust layer. Verification of what came from a peer or a
// stick does not throw: it returns a Rejection (a code and a sentence, logged
// by the caller). TrustError is for the publisher's own mistakes and for
// files on this machine that are not what they claim (the CLI prints the
// message and exits 1).

/** A deployment directory, key file or trust state that cannot be used. */
export class TrustError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'TrustError'
  }
}

/**
 * Why a root or an advisory snapshot was refused. Each code is one attack of
 * TUF's list (docs/deployment.md) or a plain malformation.
 */
export type RejectionCode =
  | 'malformed' // not a signed document of the expected type, or out of limits
  | 'unknown-key' // no signature by a key the trusted root names for the role (arbitrary installation)
  | 'bad-signature' // a named key's signature does not verify (forgery, tampering, mix-and-match)
  | 'threshold' // valid signatures by fewer distinct named keys than the role's threshold
  | 'rollback' // a version lower than the one already trusted
  | 'replay' // the version already trusted, with other bytes
  | 'fast-forward' // a version absurdly far above the trusted one
  | 'expired' // expiry at or before the highest clock ever seen (indefinite freeze)
  | 'root-expired' // the trusted root itself has expired: nothing signed under it is used
  | 'root-chain' // a root version that does not follow from the trusted one
  | 'too-large' // more bytes than the protocol allows
  | 'tampered' // a bundle block whose bytes do not hash to its CID
  | 'wrong-serial' // a lease for another laptop's serial number

/** A refusal: nothing was adopted. */
export interface Rejection {
  ok: false
  code: RejectionCode
  reason: string
}

export function reject (code: RejectionCode, reason: string): Rejection {
  return { ok: false, code, reason }
}
