// The components every agent runs, in start order. A protocol driver is one
// more line here, e.g. when the block exchange lands:
//
//   import { blocks } from '../net/blocks.ts'
//   ...
//   blocks({ uploadCapBytesPerSecond: … }),
//
// Each entry is a ComponentFactory (src/net/component.ts): it receives the
// shared components (libp2p node, repo, logger, events, API routes, dialer,
// traffic counters) and returns an object with beforeStart/start/stop/status.
import { mdnsDiscovery } from '../net/mdns.ts'
import { blocks } from '../net/blocks/index.ts'
import { election } from '../net/election/index.ts'
import { advisory } from '../net/advisory/index.ts'
import type { ComponentFactory } from '../net/component.ts'
import type { AgentConfig } from './config.ts'
import { factsReader } from './facts.ts'

export function defaultComponents (config: AgentConfig, dataDir: string): ComponentFactory[] {
  const list: ComponentFactory[] = []
  if (config.mdns.enabled) {
    list.push(mdnsDiscovery({
      interfaces: config.mdns.interfaces,
      queryIntervalMs: config.mdns.query_interval_s * 1000,
      ttl: config.mdns.ttl_s
    }))
  }
  list.push(blocks({ uploadSlots: config.blocks.upload_slots, uploadRate: config.blocks.upload_rate }))
  const e = config.election
  list.push(components => election({
    facts: factsReader(dataDir, e, components.logger.child('facts')),
    factsIntervalMs: e.facts_interval_s * 1000,
    config: {
      heartbeatMs: e.heartbeat_s * 1000,
      failureTimeoutMs: e.failure_timeout_s * 1000,
      settleMs: e.settle_s * 1000,
      startupGraceMs: e.startup_grace_s * 1000,
      holdMs: e.hold_s * 1000,
      batteryMargin: e.battery_margin
    }
  })(components))
  // after blocks: the builds it advises are handed to the exchange as it starts
  const a = config.advisory
  const device = Object.fromEntries(Object.entries({ school: a.school, group: a.group, model: a.model, serial: a.serial }).filter(([, v]) => v !== null)) as { school?: string, group?: string, model?: string, serial?: string }
  list.push(advisory({ ...(a.root_key !== null ? { rootKey: new Uint8Array(Buffer.from(a.root_key, 'hex')) } : {}), device }))
  return list
}
