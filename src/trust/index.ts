/**
 * The trust layer: the deployment's keys and roles, signed roots with
 * rotation, signed advisory snapshots, the rules a laptop applies before it
 * trusts one (policy.ts), its persisted state, targeting, and stick bundles.
 * It sits beside the content layer (it may import content, nothing above):
 * the advisory core receives a verify function built from it, the agent and
 * the CLI call it. Verification never throws on received bytes: it returns a
 * Rejection with a code and a reason to log.
 */
export * from './errors.ts'
export * from './keys.ts'
export * from './envelope.ts'
export * from './limits.ts'
export * from './root.ts'
export * from './snapshot.ts'
export * from './policy.ts'
export * from './targets.ts'
export * from './store.ts'
export * from './bundle.ts'
export * from './publisher.ts'
export * from './lease.ts'
export * from './lease-batch.ts'
