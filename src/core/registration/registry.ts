// A school server's registry of its laptops, as pure decisions over a map of
// entries by peer id: the driver persists what decide() returns and answers
// the laptop.
//
// A peer id is an identity made on a laptop's first boot. Two machines
// presenting one peer id, told apart by their hardware serial or their
// machine id, are a cloned image (Kolibri's Morango #8824): the second to
// register is answered "conflict" and makes a new identity, keeping its data.
// A serial that comes back under a new peer id is a laptop that made a new
// identity (a clone resolved, a reinstall): its old entry is dropped.
import type { Registration, RegistryEntry } from './types.ts'

export type Decision =
  /** First registration of this peer id, or of this serial under a new peer id (`replaced`: the old one). */
  | { verdict: 'registered', entry: RegistryEntry, replaced?: RegistryEntry }
  /** Known and unchanged but for its boot id and last seen. */
  | { verdict: 'renewed', entry: RegistryEntry }
  /** Known; its nickname, owner key or school changed. */
  | { verdict: 'changed', entry: RegistryEntry, previous: RegistryEntry }
  /** The peer id is registered to another machine: a cloned identity. */
  | { verdict: 'conflict', holder: RegistryEntry, reason: string }

function hex (b: Uint8Array): string {
  let out = ''
  for (const x of b) out += x.toString(16).padStart(2, '0')
  return out
}

/** What the server does with a registration from peerId at `now` (ms). */
export function decide (entries: ReadonlyMap<string, RegistryEntry>, peerId: string, g: Registration, now: number): Decision {
  const held = entries.get(peerId)
  if (held !== undefined && (held.serial !== g.serial || held.machineId !== g.machineId)) {
    const what = held.serial !== g.serial ? `serial ${held.serial}` : `machine id ${held.machineId.slice(0, 12)}…`
    const mine = held.serial !== g.serial ? `serial ${g.serial}` : `machine id ${g.machineId.slice(0, 12)}…`
    return { verdict: 'conflict', holder: held, reason: `peer id ${peerId} is registered to ${what}; this laptop is ${mine}: a cloned identity, make a new one` }
  }
  const entry: RegistryEntry = {
    peerId,
    serial: g.serial,
    machineId: g.machineId,
    bootId: g.bootId,
    nickname: g.nickname,
    ownerKey: hex(g.ownerKey),
    school: g.school,
    registeredAt: held?.registeredAt ?? now,
    lastSeen: now
  }
  if (held === undefined) {
    let replaced: RegistryEntry | undefined
    for (const e of entries.values()) if (e.serial === g.serial) { replaced = e; break }
    return { verdict: 'registered', entry, ...(replaced !== undefined ? { replaced } : {}) }
  }
  if (held.nickname !== entry.nickname || held.ownerKey !== entry.ownerKey || held.school !== entry.school) return { verdict: 'changed', entry, previous: held }
  return { verdict: 'renewed', entry }
}

/** The registry after a decision (a conflict changes nothing). */
export function applyDecision (entries: ReadonlyMap<string, RegistryEntry>, d: Decision): Map<string, RegistryEntry> {
  const next = new Map(entries)
  if (d.verdict === 'conflict') return next
  if (d.verdict === 'registered' && d.replaced !== undefined) next.delete(d.replaced.peerId)
  next.set(d.entry.peerId, d.entry)
  return next
}
