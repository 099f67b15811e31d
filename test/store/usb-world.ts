// A school with no link and the mothership, on real files: the school
// server's outbox (items it took from its laptops and its own), the
// mothership's store, repo and trust state (a build advised for the school),
// and a stick that is a directory. Trips call the very functions
// `xo-mesh usb` runs.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Outbox } from '../../src/store/outbox.ts'
import { openDatabase } from '../../src/store/sqlite.ts'
import { MothershipStore } from '../../src/store/mothership.ts'
import { encodeReport } from '../../src/store/reports.ts'
import { mothershipTrip, schoolTrip, type SchoolAnswer, type SchoolTripResult } from '../../src/store/usb.ts'
import { publicKeyOfPeer, signingKeyOf } from '../../src/net/relay/usb.ts'
import { Repo } from '../../src/content/repo.ts'
import { addDirectory } from '../../src/content/add.ts'
import type { CID } from '../../src/content/cid.ts'
import { acceptSnapshot, anchorRoot, initialState, saveState, type SigningKey } from '../../src/trust/index.ts'
import type { Item } from '../../src/core/relay/types.ts'
import { TestDeployment, advisory } from '../trust/support.ts'
import { prng } from '../support/trees.ts'

export const SCHOOL = 'Escuela 7'
const DAY = 86_400_000

export async function newPeer (): Promise<{ id: string, key: Awaited<ReturnType<typeof generateKeyPair>> }> {
  const key = await generateKeyPair('Ed25519')
  return { id: peerIdFromPrivateKey(key).toString(), key }
}

export class UsbWorld {
  root = ''
  stick = ''
  mDir = ''
  deployment = new TestDeployment()
  mothershipId = ''
  mothershipKey!: SigningKey
  schoolId = ''
  laptops: string[] = []
  build!: CID
  outbox!: Outbox
  store!: MothershipStore
  schoolRepo!: Repo
  mRepo!: Repo
  /** The next counter of each laptop. */
  private readonly next = new Map<string, number>()
  /** Every item made, by "origin/counter". */
  readonly made = new Map<string, Item>()

  static async make (laptops = 3, prefix = 'xo-usb-'): Promise<UsbWorld> {
    const w = new UsbWorld()
    w.root = await mkdtemp(join(tmpdir(), prefix))
    w.stick = join(w.root, 'stick')
    w.mDir = join(w.root, 'mothership')
    await mkdir(w.stick)
    await mkdir(w.mDir)
    const m = await newPeer()
    w.mothershipId = m.id
    w.mothershipKey = signingKeyOf(m.key)
    w.schoolId = (await newPeer()).id
    for (let i = 0; i < laptops; i++) w.laptops.push((await newPeer()).id)
    // The mothership holds a build and the deployment's snapshot advising it to the school.
    w.mRepo = await Repo.open(w.mDir)
    const tree = join(w.root, 'tree')
    await mkdir(join(tree, 'bin'), { recursive: true })
    await writeFile(join(tree, 'bin', 'activity'), prng(3, 300_000))
    await writeFile(join(tree, 'README'), 'the advised build\n')
    const added = await addDirectory(w.mRepo.store, tree, { name: 'os-2026.11', kind: 'os' })
    await w.mRepo.noteBuild(added.cid, added.record)
    w.build = added.cid
    await w.publish(1)
    w.store = MothershipStore.open(w.mDir)
    w.schoolRepo = await Repo.open(w.schoolDir)
    w.outbox = Outbox.open(w.schoolDir)
    return w
  }

  get schoolDir (): string { return join(this.root, 'school') }
  get rootKey (): Uint8Array { return this.deployment.rootKeys[0]!.publicKey }

  /** Issues snapshot `version` (the build advised to SCHOOL, plus one for another school) and has the mothership trust it. */
  async publish (version: number): Promise<void> {
    const now = Date.now()
    const s = this.deployment.snapshot(version, [advisory(90, { name: 'elsewhere', targets: { schools: ['Otra'] } }), { ...advisory(1), build: this.build, name: 'os-2026.11', targets: { schools: [SCHOOL] } }], { issued: now, expires: now + 30 * DAY })
    const r = acceptSnapshot(initialState(anchorRoot(this.rootKey)), s.bytes, this.deployment.chain(), now)
    if (!r.ok) throw new Error(`the mothership refused its own snapshot: ${r.reason}`)
    await saveState(this.mDir, r.state)
  }

  /** n statistics samples from each laptop, taken into the school server's custody (as the relay would), and one of its own. */
  produce (n: number): void {
    for (const l of this.laptops) {
      const items: Item[] = []
      for (let k = 0; k < n; k++) {
        const counter = this.next.get(l) ?? 1
        this.next.set(l, counter + 1)
        const it: Item = { origin: l, counter, kind: counter % 5 === 0 ? 'backup-chunk' : 'statistics', created: Date.now(), body: counter % 5 === 0 ? prng(counter, 2000) : encodeReport({ school: SCHOOL, sampled_at: counter, battery: 0.5 }) }
        items.push(it)
        this.made.set(`${l}/${counter}`, it)
      }
      const r = this.outbox.accept(items)
      if (!r.ok) throw new Error('the outbox refused')
    }
    const own = this.outbox.enqueue(this.schoolId, 'statistics', encodeReport({ school: SCHOOL, sampled_at: Date.now() }), Date.now())
    this.made.set(`${own.origin}/${own.counter}`, own)
  }

  async schoolRun (options: { trustMothership?: boolean } = {}): Promise<SchoolTripResult> {
    const key = options.trustMothership === false ? undefined : publicKeyOfPeer(this.mothershipId)
    return await schoolTrip({ stick: this.stick, dataDir: this.schoolDir, self: this.schoolId, school: SCHOOL, outbox: this.outbox, repo: this.schoolRepo, ...(key !== undefined ? { mothershipKey: key } : {}), rootKey: this.rootKey, now: Date.now() })
  }

  async mothershipRun (): Promise<SchoolAnswer[]> {
    return await mothershipTrip({ stick: this.stick, dataDir: this.mDir, self: this.mothershipId, store: this.store, repo: this.mRepo, key: this.mothershipKey, now: Date.now() })
  }

  /** Per origin: [rows, min counter, max counter] in the mothership's items table. */
  atMothership (): Map<string, [number, number, number]> {
    const out = new Map<string, [number, number, number]>()
    const db = openDatabase(this.store.path)
    for (const r of db.prepare('SELECT origin, count(*) AS n, min(counter) AS lo, max(counter) AS hi FROM items GROUP BY origin').all() as Array<{ origin: string, n: number, lo: number, hi: number }>) out.set(r.origin, [r.n, r.lo, r.hi])
    db.close()
    return out
  }

  /** Every item made is at the mothership once, with its bytes. */
  everyItemOnce (): boolean {
    const db = openDatabase(this.store.path)
    try {
      const total = (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n
      if (total !== this.made.size) return false
      const get = db.prepare('SELECT body FROM items WHERE origin = ? AND counter = ?')
      for (const it of this.made.values()) {
        const row = get.get(it.origin, it.counter) as { body: Uint8Array } | undefined
        if (row === undefined || Buffer.compare(Buffer.from(row.body), Buffer.from(it.body)) !== 0) return false
      }
      return true
    } finally {
      db.close()
    }
  }

  async close (): Promise<void> {
    this.outbox.close()
    this.store.close()
    await rm(this.root, { recursive: true, force: true })
  }
}
