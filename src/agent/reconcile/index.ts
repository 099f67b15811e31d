/**
 * Desired state on every laptop (docs/deployment.md): the reconciler turns
 * the advisories that target this laptop into installed builds through one
 * handler per kind (os, activity, content, config), enforces staged rollout
 * from the install results the mesh carries, and reports each outcome to the
 * outbox. Add it to the agent's components with `reconciler({ … })`.
 */
import type { ComponentFactory } from '../../net/component.ts'
import { Reconciler, type ReconcilerInit } from './reconciler.ts'

export type { ReconcilerInit, AdvisoryView, AdvisoryPhase } from './reconciler.ts'
export type { DeploySettings } from './handler.ts'
export type { InstallOutcome } from './journal.ts'
export { Reconciler } from './reconciler.ts'

export function reconciler (init: ReconcilerInit): ComponentFactory<Reconciler> {
  return components => new Reconciler(components, init)
}
