// The upstream relay as an agent component (src/agent/components.ts):
//
//   relay({ nextHop: configuredNextHop(config.upstream) })
//
// registers /xo-mesh/relay/1.0.0, hands the outbox to the next hop, takes
// custody of what peers offer, and adds POST /outbox and GET /relay to the API.
import type { ComponentFactory } from '../component.ts'
import { addRelayRoutes } from './api.ts'
import { RelayDriver, type RelayDriverInit } from './driver.ts'

export { RelayDriver, type RelayDriverInit, type UsbTripResult } from './driver.ts'
export { publicKeyOfPeer, signingKeyOf, type UsbInit } from './usb.ts'
export { configuredNextHop, electedNextHop, hopFromMultiaddr, type ElectedRole, type NextHop, type UpstreamHop } from './next-hop.ts'

export function relay (init: RelayDriverInit = {}): ComponentFactory<RelayDriver> {
  return components => {
    const driver = new RelayDriver(components, init)
    addRelayRoutes(components.api, driver)
    return driver
  }
}
