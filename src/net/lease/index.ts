/**
 * The lease service as an agent component: holds verified activation leases
 * (a school server's batch, a laptop's own), answers /xo-mesh/lease/1.0.0,
 * renews this laptop's lease from its school server before it expires, and
 * reports (and hooks) an expired one. Add it with
 * `lease({ rootKey, serial, checkMs, renewBeforeMs, hook })`.
 */
import type { ComponentFactory } from '../component.ts'
import { addLeaseRoutes } from './api.ts'
import { LeaseDriver, type LeaseInit } from './driver.ts'

export { LeaseDriver, type LeaseInit, type LeaseState } from './driver.ts'

export function lease (init: LeaseInit): ComponentFactory<LeaseDriver> {
  return components => {
    const d = new LeaseDriver(components, init)
    addLeaseRoutes(components.api, d)
    return d
  }
}
