// `xo-mesh usb DIR`: one USB round trip on the stick mounted at DIR
// (docs/upstream.md, docs/deployment.md). Through the running agent when
// there is one (it owns the outbox and the mothership's store); otherwise on
// the data directory directly, holding its lock so no agent starts meanwhile.
import type { Command } from 'commander'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { callAgent } from '../agent/client.ts'
import { NoAgentError } from '../agent/errors.ts'
import type { UsbTripResult } from '../net/relay/index.ts'

function out (text: string): void {
  process.stdout.write(text + '\n')
}

/** The trip on a data directory no agent runs on: the same code as the agent's, in this process. */
async function tripHere (dataDir: string, stick: string): Promise<UsbTripResult> {
  const { DataDirLock } = await import('../agent/lock.ts')
  const { loadConfig } = await import('../agent/config.ts')
  const { loadIdentity } = await import('../agent/identity.ts')
  const { silentLogger } = await import('../net/logger.ts')
  const { Repo } = await import('../content/repo.ts')
  const { publicKeyOfPeer, signingKeyOf } = await import('../net/relay/index.ts')
  const { mothershipTrip, schoolTrip } = await import('../store/usb.ts')
  const lock = await DataDirLock.acquire(dataDir)
  try {
    const config = await loadConfig(dataDir)
    const { key } = await loadIdentity(dataDir, silentLogger)
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const self = peerIdFromPrivateKey(key).toString()
    const repo = await Repo.open(dataDir)
    const base = { stick, dataDir, self, repo, now: Date.now() }
    if (config.role === 'mothership' || config.relay.sink) {
      const { MothershipStore } = await import('../store/mothership.ts')
      const store = MothershipStore.open(dataDir)
      try {
        return { role: 'mothership', schools: await mothershipTrip({ ...base, store, key: signingKeyOf(key) }) }
      } finally {
        store.close()
      }
    }
    const { Outbox } = await import('../store/outbox.ts')
    const outbox = Outbox.open(dataDir, { maxBytes: config.relay.max_bytes })
    try {
      const m = config.relay.mothership !== null ? publicKeyOfPeer(config.relay.mothership) : undefined
      const rootKey = config.advisory.root_key !== null ? new Uint8Array(Buffer.from(config.advisory.root_key, 'hex')) : undefined
      const r = await schoolTrip({ ...base, school: config.advisory.school, outbox, ...(m !== undefined ? { mothershipKey: m } : {}), ...(rootKey !== undefined ? { rootKey } : {}) })
      return { role: 'school', ...r }
    } finally {
      outbox.close()
    }
  } finally {
    await lock.release()
  }
}

function print (r: UsbTripResult): void {
  if (r.role === 'mothership') {
    if (r.schools.length === 0) out('no school outbox on this stick')
    for (const s of r.schools) {
      const who = `${s.school ?? '(no school)'} (${s.from})`
      if (s.status === 'refused') { out(`${who}: refused: ${s.reason ?? ''}`); continue }
      out(`${who}: ${s.items} items read, ${s.added} new, ${s.duplicates} already held${s.skipped > 0 ? `, ${s.skipped} frames unreadable` : ''}; wrote a receipt${s.advisories !== null ? `, advisories v${s.advisories}` : ''}${s.builds.length > 0 ? `, ${s.builds.length} build(s)` : ''}`)
    }
    return
  }
  const rc = r.receipt
  if (rc.status === 'accepted') out(`receipt from the mothership: ${rc.forgotten} items it holds left the outbox`)
  else if (rc.status === 'refused') out(`receipt refused: ${rc.reason ?? ''} (the items stay in the outbox)`)
  if (r.advisories.status !== 'none') out(`advisories: ${r.advisories.status}${r.advisories.version !== undefined ? ` v${r.advisories.version}` : ''}${r.advisories.reason !== undefined ? `: ${r.advisories.reason}` : ''}`)
  for (const b of r.builds) out(`build ${b.cid}: ${b.status}${b.reason !== undefined ? `: ${b.reason}` : ''}`)
  out(`wrote the outbox (${r.written.items} items, ${r.written.bytes} bytes) and the want-list: trip ${r.written.trip}`)
}

export function addUsbCommand (program: Command): void {
  program.command('usb')
    .description('a USB round trip: on a school server, import the mothership\'s answer and write the outbox; on the mothership, ingest every outbox and write the answers')
    .argument('<dir>', 'the stick (a mounted directory)')
    .action(async (dir: string) => {
      const g = program.opts<{ data?: string, json?: boolean }>()
      const dataDir = resolve(g.data ?? defaultDataDir())
      const stick = resolve(dir)
      let r: UsbTripResult
      try {
        r = await callAgent(dataDir, '/usb', { body: { dir: stick }, timeoutMs: 3_600_000 }) as UsbTripResult
      } catch (err) {
        if (!(err instanceof NoAgentError)) throw err
        r = await tripHere(dataDir, stick)
      }
      if (g.json === true) return out(JSON.stringify(r, null, 2))
      print(r)
    })
}
