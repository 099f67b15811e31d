// `xo-mesh usb DIR`: the USB round trip (docs/upstream.md, "The USB round
// trip"; the stick's layout is stick.ts).
//
// On a school server (an outbox): import what the mothership left in this
// school's directory (its signed receipt: forget the items it covers; the
// advisory snapshot; the builds), then write the outbox and the want-list.
// On the mothership (its store): for every school directory on the stick,
// take the items in (exactly once, by (origin, counter)), then write back a
// signed receipt and a bundle of exactly what that school lacks.
//
// The stick is a hop of the relay whose receipt is the mothership's import:
// items leave a school's outbox only when a receipt signed by the configured
// mothership comes back. Everything else fails safe: a truncated or corrupt
// outbox file is not read (no receipt: the school writes it again next trip),
// a receipt that does not verify is ignored, a bundle that does not verify is
// not imported, a second reading of a stick stores nothing twice.
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { FrameReader, decodeFrame, encodeFrame } from '../core/relay/index.ts'
import type { Item } from '../core/relay/types.ts'
import { DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ITEMS } from '../core/relay/constants.ts'
import type { Repo } from '../content/repo.ts'
import { parseCid, type CID } from '../content/cid.ts'
import { buildCids, readRecord } from '../content/build.ts'
import { exportBundle, importBundle } from '../content/bundle.ts'
import { acceptSnapshot, loadState, readTrustBundle, saveState, writeTrustBundle, type SigningKey } from '../trust/index.ts'
import type { Outbox } from './outbox.ts'
import type { MothershipStore } from './mothership.ts'
import {
  ADVISORIES_FILE, BUILDS_DIR, MANIFEST_FILE, MANIFEST_FORMAT, RECEIPT_FILE, RECEIPT_TYPE, REPLY_FILE, REPLY_FORMAT, STICK_DIR,
  digestFile, fileMatches, openReceipt, readManifest, readReply, schoolDir, signReceipt, writeFileAtomic,
  type Manifest, type Reply
} from './stick.ts'

/** Offers stored per transaction when the mothership reads a stick. */
const OFFERS_PER_COMMIT = 8

export interface SchoolTripInit {
  stick: string
  dataDir: string
  /** This agent's peer id: its directory on the stick. */
  self: string
  /** The deployment's name for the school (advisory.school), written for the mothership. */
  school: string | null
  outbox: Outbox
  repo: Repo
  /** The mothership's public key (from relay.mothership, its peer id); without it no receipt is believed. */
  mothershipKey?: Uint8Array
  /** The provisioned root key (advisory.root_key): needed only before the first snapshot is trusted. */
  rootKey?: Uint8Array
  now: number
}

export interface SchoolTripResult {
  /** What came back from the mothership. */
  receipt: { status: 'none' | 'accepted' | 'refused', reason?: string, forgotten: number }
  advisories: { status: 'none' | 'accepted' | 'unchanged' | 'refused', version?: number, reason?: string }
  builds: Array<{ cid: string, status: 'imported' | 'refused', reason?: string }>
  /** What the stick now carries up. */
  written: { trip: string, items: number, bytes: number }
}

async function completeBuilds (repo: Repo): Promise<string[]> {
  return (await repo.builds()).map(b => b.cid)
}

/** Runs a school's side of a trip. Throws only on a local failure (the stick not writable, the outbox unreadable). */
export async function schoolTrip (init: SchoolTripInit): Promise<SchoolTripResult> {
  const dir = schoolDir(init.stick, init.self)
  const result: SchoolTripResult = { receipt: { status: 'none', forgotten: 0 }, advisories: { status: 'none' }, builds: [], written: { trip: '', items: 0, bytes: 0 } }
  const reply = await readReply(dir)
  if (reply !== undefined) {
    await importReply(init, dir, reply, result)
    // Consumed: the reply first, so a stick pulled out now shows no half-answered trip (importing again would change nothing anyway).
    await rm(join(dir, REPLY_FILE), { force: true })
    for (const f of reply.files) await rm(join(dir, f.file), { force: true })
  }
  result.written = await writeOutbox(init, dir)
  return result
}

async function importReply (init: SchoolTripInit, dir: string, reply: Reply, result: SchoolTripResult): Promise<void> {
  const checked = async (f: Reply['files'][number]): Promise<boolean> => await fileMatches(join(dir, f.file), f.bytes, f.sha256)
  for (const f of reply.files.filter(f => f.kind === 'receipt')) {
    if (!await checked(f)) { result.receipt = { status: 'refused', reason: 'the receipt file is truncated or corrupt', forgotten: 0 }; continue }
    if (init.mothershipKey === undefined) { result.receipt = { status: 'refused', reason: 'no mothership is configured (relay.mothership): its receipt cannot be checked, the items stay', forgotten: 0 }; continue }
    const r = openReceipt(await readFile(join(dir, f.file)), init.mothershipKey, init.self)
    if (!r.ok) { result.receipt = { status: 'refused', reason: r.reason, forgotten: 0 }; continue }
    result.receipt = { status: 'accepted', forgotten: init.outbox.forget(r.receipt.custody) }
  }
  for (const f of reply.files.filter(f => f.kind === 'advisories')) {
    if (!await checked(f)) { result.advisories = { status: 'refused', reason: 'the bundle is truncated or corrupt' }; continue }
    const bundle = await readTrustBundle(join(dir, f.file))
    if ('ok' in bundle) { result.advisories = { status: 'refused', reason: `${bundle.code}: ${bundle.reason}` }; continue }
    const state = await loadState(init.dataDir, init.rootKey)
    if (state === undefined) { result.advisories = { status: 'refused', reason: 'no root key is provisioned (advisory.root_key)' }; continue }
    const r = acceptSnapshot(state, bundle.snapshot, bundle.roots, init.now)
    await saveState(init.dataDir, r.state) // roots walked and the clock seen are kept even on refusal
    result.advisories = r.ok ? { status: r.changed ? 'accepted' : 'unchanged', version: r.snapshot.doc.version } : { status: 'refused', reason: `${r.code}: ${r.reason}` }
  }
  for (const f of reply.files.filter(f => f.kind === 'build')) {
    const cid = f.cid ?? basename(f.file, '.car')
    if (!await checked(f)) { result.builds.push({ cid, status: 'refused', reason: 'the bundle is truncated or corrupt' }); continue }
    try {
      const expect = parseCid(cid)
      await importBundle(init.repo.store, join(dir, f.file), { expect })
      await init.repo.store.flush()
      if ((await buildCids(init.repo.store, expect)).missing.length > 0) throw new Error('the build is still incomplete after the import')
      await init.repo.noteBuild(expect, await readRecord(init.repo.store, expect))
      result.builds.push({ cid, status: 'imported' })
    } catch (err) {
      result.builds.push({ cid, status: 'refused', reason: (err as Error).message })
    }
  }
}

/** Writes every item of the outbox as offer frames, then the manifest naming the file; removes older outbox files. */
async function writeOutbox (init: SchoolTripInit, dir: string): Promise<SchoolTripResult['written']> {
  const trip = randomBytes(8).toString('hex')
  const file = `outbox-${trip}.bin`
  let items = 0
  await writeFileAtomic(join(dir, file), async fh => {
    let after = 0
    let batch = 0
    for (;;) {
      const r = init.outbox.load(after, DEFAULT_BATCH_ITEMS, DEFAULT_BATCH_BYTES)
      if (r.items.length === 0) break
      after = r.items[r.items.length - 1]!.seq
      const offer: Item[] = r.items.map(({ origin, counter, kind, created, body }) => ({ origin, counter, kind, created, body }))
      await fh.write(encodeFrame({ type: 'offer', batch: ++batch, items: offer }))
      items += offer.length
      if (!r.more) break
    }
  })
  const { sha256, bytes } = await digestFile(join(dir, file))
  const state = await loadState(init.dataDir, init.rootKey).catch(() => undefined)
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    from: init.self,
    school: init.school,
    trip,
    written: init.now,
    outbox: { file, bytes, sha256, items },
    want: { builds: await completeBuilds(init.repo), snapshot: state?.snapshot?.doc.version ?? 0, root: state?.root.doc.version ?? 0 }
  }
  await writeFileAtomic(join(dir, MANIFEST_FILE), new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'))
  for (const n of await readdir(dir)) if (/^outbox-[0-9a-f]+\.bin$/.test(n) && n !== file) await rm(join(dir, n), { force: true })
  return { trip, items, bytes }
}

// ---- the mothership's side ------------------------------------------------------

export interface MothershipTripInit {
  stick: string
  dataDir: string
  /** The mothership's peer id (named in its receipts). */
  self: string
  store: MothershipStore
  repo: Repo
  /** Its identity key: school servers check receipts against its peer id. */
  key: SigningKey
  now: number
}

export interface SchoolAnswer {
  /** The school server's peer id (its directory). */
  from: string
  school: string | null
  status: 'answered' | 'refused'
  reason?: string
  trip?: string
  /** Items the stick carried, those stored now, those already held (a replay), frames that did not decode. */
  items: number
  added: number
  duplicates: number
  skipped: number
  /** What was written back. */
  advisories: number | null
  builds: string[]
}

/** Runs the mothership's side of a trip: every school directory on the stick. */
export async function mothershipTrip (init: MothershipTripInit): Promise<SchoolAnswer[]> {
  let names: string[]
  try {
    names = (await readdir(join(init.stick, STICK_DIR), { withFileTypes: true })).filter(d => d.isDirectory()).map(d => d.name).sort()
  } catch {
    return []
  }
  const out: SchoolAnswer[] = []
  for (const name of names) out.push(await answerSchool(init, name))
  return out
}

async function answerSchool (init: MothershipTripInit, name: string): Promise<SchoolAnswer> {
  const dir = join(init.stick, STICK_DIR, name)
  const answer: SchoolAnswer = { from: name, school: null, status: 'refused', items: 0, added: 0, duplicates: 0, skipped: 0, advisories: null, builds: [] }
  const m = await readManifest(dir)
  if (m === undefined) return { ...answer, reason: 'no readable manifest (a trip written halfway, or not a school directory)' }
  answer.school = m.school
  answer.trip = m.trip
  if (m.from !== name) return { ...answer, reason: `the manifest names ${m.from}, not the directory's school server` }
  const outboxPath = join(dir, m.outbox.file)
  // A truncated or corrupt file is not read at all: no receipt, and the school writes it again next trip.
  if (!await fileMatches(outboxPath, m.outbox.bytes, m.outbox.sha256)) return { ...answer, reason: 'the outbox file is truncated or corrupt (size or sha-256 differs): nothing taken' }

  const offered = new Map<string, number[]>()
  let group: Item[][] = []
  const commit = (): void => {
    if (group.length === 0) return
    for (const r of init.store.acceptMany(group)) if (r.ok) { answer.added += r.added; answer.duplicates += r.duplicates }
    group = []
  }
  const reader = new FrameReader()
  try {
    for await (const chunk of createReadStream(outboxPath, { highWaterMark: 1 << 20 })) {
      for (const body of reader.push(chunk as Buffer)) {
        let msg
        try { msg = decodeFrame(body) } catch { answer.skipped++; continue }
        if (msg.type !== 'offer') { answer.skipped++; continue }
        for (const it of msg.items) {
          const c = offered.get(it.origin)
          if (c === undefined) offered.set(it.origin, [it.counter])
          else c.push(it.counter)
        }
        answer.items += msg.items.length
        group.push(msg.items)
        if (group.length >= OFFERS_PER_COMMIT) commit()
      }
    }
  } catch (err) {
    // The framing broke (the school wrote garbage under a good checksum): what was read stands, the receipt covers it.
    answer.reason = `the outbox file stops making sense after ${answer.items} items: ${(err as Error).message}`
  }
  commit()
  init.store.noteTrip(m.from, m.trip, m.school, [...offered.keys()], answer.items, answer.added, init.now)

  const custody = [...offered].map(([origin, counters]) => init.store.held(origin, counters))
  const files: Reply['files'] = []
  const receipt = signReceipt({ type: RECEIPT_TYPE, mothership: init.self, school: m.from, trip: m.trip, outbox: m.outbox.sha256, custody, issued: init.now }, init.key)
  await writeFileAtomic(join(dir, RECEIPT_FILE), receipt)
  files.push({ file: RECEIPT_FILE, ...await digestFile(join(dir, RECEIPT_FILE)), kind: 'receipt' })

  // What the school lacks: a newer snapshot, and the advised builds for it that it does not hold.
  const state = await loadState(init.dataDir).catch(() => undefined)
  const snapshot = state?.snapshot
  if (snapshot !== undefined && snapshot.doc.version > m.want.snapshot) {
    await writeTrustBundle(join(dir, ADVISORIES_FILE), { snapshot: snapshot.bytes, roots: state!.chain })
    files.push({ file: ADVISORIES_FILE, ...await digestFile(join(dir, ADVISORIES_FILE)), kind: 'advisories' })
    answer.advisories = snapshot.doc.version
  }
  if (snapshot !== undefined) {
    const has = new Set(m.want.builds)
    const have: CID[] = []
    for (const b of m.want.builds) {
      try {
        const cid = parseCid(b)
        if ((await buildCids(init.repo.store, cid)).missing.length === 0) have.push(cid)
      } catch { /* a build we do not hold, or not a CID: no delta against it */ }
    }
    const sent = new Set<string>()
    for (const a of snapshot.doc.advisories) {
      const cid = a.build.toString()
      const schools = a.targets.schools ?? []
      if (has.has(cid) || sent.has(cid) || (schools.length > 0 && (m.school === null || !schools.includes(m.school)))) continue
      if ((await buildCids(init.repo.store, a.build)).missing.length > 0) continue // not here yet: a later trip
      const file = `${BUILDS_DIR}/${cid}.car`
      const tmp = join(dir, `${file}.${process.pid}.tmp`)
      await mkdir(join(dir, BUILDS_DIR), { recursive: true })
      await exportBundle(init.repo.store, a.build, tmp, { have, delta: have.length > 0 })
      await rename(tmp, join(dir, file))
      files.push({ file, ...await digestFile(join(dir, file)), kind: 'build', cid })
      answer.builds.push(cid)
      sent.add(cid)
    }
  }
  const reply: Reply = { format: REPLY_FORMAT, trip: m.trip, files }
  await writeFileAtomic(join(dir, REPLY_FILE), new TextEncoder().encode(JSON.stringify(reply, null, 2) + '\n'))
  return { ...answer, status: 'answered' }
}
