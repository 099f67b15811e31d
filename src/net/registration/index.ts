/**
 * Registration as an agent component: a laptop registers with its school
 * server (serial, machine id, owner's nickname and public key), the server
 * keeps the registry, detects a cloned identity and relays registrations
 * upstream; GET /api/v1/roster serves the school's roster. Add it with
 * `registration({ self, intervalMs, enqueue, onConflict })`.
 */
import type { ComponentFactory } from '../component.ts'
import { RegistrationDriver, type RegistrationInit } from './driver.ts'

export { RegistrationDriver, REGISTRY_FILE, type RegistrationInit, type Self } from './driver.ts'

export function registration (init: RegistrationInit): ComponentFactory<RegistrationDriver> {
  return components => {
    const d = new RegistrationDriver(components, init)
    components.api.add('GET', '/roster', () => ({ body: d.rosterView() }))
    return d
  }
}
