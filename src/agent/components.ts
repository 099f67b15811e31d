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
import { configuredNextHop, electedNextHop, relay, type ElectedRole, type RelayDriver } from '../net/relay/index.ts'
import type { AdvisoryDriver } from '../net/advisory/index.ts'
import { homedir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { reconciler } from './reconcile/index.ts'
import { backupService, type BackupService } from '../net/backup/index.ts'
import type { ItemKind } from '../core/relay/index.ts'
import { journalBackup } from './backup.ts'
import { statisticsSampler } from './statistics.ts'
import { lease } from '../net/lease/index.ts'
import { registration } from '../net/registration/index.ts'
import type { ComponentFactory } from '../net/component.ts'
import type { AgentConfig } from './config.ts'
import { factsReader } from './facts.ts'
import { readMachine } from './machine.ts'
import { loadOrCreateOwnerKey, retireOwnerKey } from './owner.ts'
import { retireIdentity } from './identity.ts'

declare module '../net/events.ts' {
  interface MeshEvents {
    /** A component asks the agent to stop and start again (a new identity): run.ts does it. */
    'agent:restart': { reason: string }
  }
}

function safeUserName (): string {
  try { return userInfo().username } catch { return '' }
}

export function defaultComponents (config: AgentConfig, dataDir: string): ComponentFactory[] {
  const list: ComponentFactory[] = []
  let relayDriver: RelayDriver | undefined
  if (config.mdns.enabled) {
    list.push(mdnsDiscovery({
      interfaces: config.mdns.interfaces,
      queryIntervalMs: config.mdns.query_interval_s * 1000,
      ttl: config.mdns.ttl_s
    }))
  }
  list.push(blocks({ uploadSlots: config.blocks.upload_slots, uploadRate: config.blocks.upload_rate, receiveWindow: config.blocks.receive_window }))
  // A staging agent and the mothership serve schools but are no school's server: they stay out of the election.
  const inSchool = config.role === 'laptop'
  const e = config.election
  if (inSchool) list.push(components => election({
    // "has uplink": the election's own upstream, else the relay's next hop towards the mothership
    facts: factsReader(dataDir, e.upstream === null && config.upstream !== null ? { ...e, upstream: config.upstream } : e, components.logger.child('facts')),
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
  let advisoryDriver: AdvisoryDriver | undefined
  list.push(components => (advisoryDriver = advisory({ ...(a.root_key !== null ? { rootKey: new Uint8Array(Buffer.from(a.root_key, 'hex')) } : {}), device, stageAll: !inSchool })(components)))
  // The outbox goes to the elected school server; the server (or a laptop
  // while none is elected) hands it to the configured upstream.
  let elected: ElectedRole = { role: 'peer', server: null }
  const nextHop = electedNextHop(configuredNextHop(config.upstream), () => elected)
  // Backups: the server keeps what it relays (before taking custody) and hands it back to restoring laptops.
  let service: BackupService | undefined
  list.push(components => (service = backupService({ keep: config.backup.keep_relayed, maxBytes: config.backup.keep_max_bytes, nextHop })(components)))
  const sink = config.relay.sink || config.role === 'mothership'
  list.push(components => {
    components.events.on('election:role', s => {
      elected = { role: s.role, server: s.server }
      components.events.emit('relay:next-hop-changed', {})
    })
    relayDriver = relay({
      nextHop,
      accept: config.relay.accept,
      maxBytes: config.relay.max_bytes,
      sink,
      core: { backoffMaxMs: config.relay.retry_max_s * 1000, receiptTimeoutMs: config.relay.receipt_timeout_s * 1000 },
      usb: { school: a.school, mothership: config.relay.mothership, ...(a.root_key !== null ? { rootKey: new Uint8Array(Buffer.from(a.root_key, 'hex')) } : {}) },
      beforeCustody: items => { service?.keepRelayed(items) }
    })(components)
    return relayDriver
  })
  const enqueue = (kind: ItemKind, body: Uint8Array): unknown => relayDriver!.enqueue(kind, body)
  const b = config.backup
  list.push(journalBackup({ journal: config.journal, enabled: b.enabled && !sink, intervalS: b.interval_s, exclude: b.exclude, enqueue, service: () => service }))
  const st = config.statistics
  if (st.enabled && inSchool && !sink) {
    list.push(statisticsSampler({ journal: config.journal, powerSupply: st.power_supply, installRoot: st.install_root, fields: st.fields, school: config.advisory.school, serial: config.advisory.serial, intervalS: st.interval_s, enqueue }))
  }
  // Desired state: the advised builds applied, one handler per kind, reports into the outbox above
  const d = config.deploy
  if (d.enabled && a.root_key !== null && inSchool) {
    list.push(reconciler({
      settings: {
        osRoot: resolve(dataDir, d.os_root ?? 'os'),
        postInstall: d.post_install,
        hookTimeoutMs: d.hook_timeout_s * 1000,
        activitiesDir: resolve(dataDir, d.activities_dir ?? join(homedir(), 'Activities')),
        configRoot: resolve(dataDir, d.config_root ?? 'config-root')
      },
      intervalMs: d.interval_s * 1000,
      retryMs: d.retry_s * 1000,
      ...(a.school !== null ? { school: a.school } : {}),
      advisory: () => advisoryDriver,
      relay: () => relayDriver
    }))
  }
  // Activation leases: this laptop's serial is the one advisories target.
  list.push(lease({
    ...(a.root_key !== null ? { rootKey: new Uint8Array(Buffer.from(a.root_key, 'hex')) } : {}),
    ...(a.serial !== null ? { serial: a.serial } : {}),
    checkMs: config.lease.check_s * 1000,
    renewBeforeMs: config.lease.renew_before_s * 1000,
    hook: config.lease.hook
  }))
  // Registration with the school server; a clone retires its identity and the agent restarts (run.ts).
  const r = config.registration
  list.push(components => registration({
    self: async () => {
      // made on first boot, whether or not this laptop can register yet
      const owner = await loadOrCreateOwnerKey(dataDir)
      const m = await readMachine({ serial: a.serial, machineId: r.machine_id })
      if (m.serial === undefined || m.machineId === undefined) return undefined
      return { serial: m.serial, machineId: m.machineId, bootId: m.bootId, nickname: r.nickname ?? safeUserName(), ownerKey: owner.publicKey, school: a.school ?? '' }
    },
    intervalMs: r.interval_s * 1000,
    enqueue: body => { relayDriver?.enqueue('registration', body) },
    onConflict: async reason => {
      const aside = await retireIdentity(dataDir)
      const owner = await retireOwnerKey(dataDir)
      components.logger.warn('identity and owner key retired: restarting with new ones', { retired: aside, owner, reason })
      components.events.emit('agent:restart', { reason: `cloned identity: ${reason}` })
    }
  })(components))
  return list
}
