/**
 * The advisory protocol's driver: spreads the deployment's signed advisory
 * snapshot between agents and turns the advisories for this laptop into
 * wanted builds. Add it to the agent's components with
 * `advisory({ rootKey, device })`.
 */
import type { ComponentFactory } from '../component.ts'
import { AdvisoryDriver, type AdvisoryInit } from './driver.ts'

export type { AdvisoryInit } from './driver.ts'
export { AdvisoryDriver } from './driver.ts'

export function advisory (init: AdvisoryInit = {}): ComponentFactory<AdvisoryDriver> {
  return components => new AdvisoryDriver(components, init)
}
export type { OfferOutcome, ResultView } from './driver.ts'
export { ADVISORIES_OFF, RESULTS_FILE } from './driver.ts'
