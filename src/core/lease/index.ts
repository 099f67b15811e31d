/**
 * The lease protocol's wire format (/xo-mesh/lease/1.0.0, protocols/lease.md):
 * a laptop asks a peer (its school server) for the leases of its serial, the
 * peer answers with signed leases and the root versions that verify them.
 * Verification is the trust layer's (src/trust/lease.ts).
 */
export * from './codec.ts'
