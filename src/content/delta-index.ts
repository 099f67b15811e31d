// Where computed deltas are found again: <data dir>/deltas/<from>-<to>, a
// text file holding the CID of the delta's pack manifest. The manifest, its
// pack blocks, the patch record and its patch blocks are ordinary blocks of
// the store, so a laptop that imported an update can export the same bundle
// again, byte for byte, without computing anything.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { CID } from './cid.ts'
import { canonicalFrom, decodeDelta, decodeManifest, keyOf, patchBlocks, sameBuilds, type DeltaRecord, type PackManifest } from './delta-record.ts'
import type { BlockStore } from './blockstore.ts'

/** A delta as the index finds it: the manifest and, when it has one, the patch record. */
export interface StoredDelta {
  /** The pack manifest's CID: the bundle's second root. */
  cid: CID
  manifest: PackManifest
  patches?: { cid: CID, record: DeltaRecord }
}

/**
 * Where the CID of the delta from `from` to `to` is kept: a text file under
 * <data dir>/deltas, the data dir being the block store's parent. One base
 * build gives `<from>-<to>`; several give a hash of their sorted CIDs, since
 * their names together could pass the file name limit.
 */
export function deltaIndexPath (store: BlockStore, from: CID[], to: CID): string {
  const keys = canonicalFrom(from).map(c => c.toString())
  const fromKey = keys.length === 1 ? keys[0]! : 'set-' + createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 32)
  return join(dirname(store.dir), 'deltas', `${fromKey}-${keyOf(to)}`)
}

/**
 * The stored delta from `from` to `to`, when its index entry, manifest,
 * pack blocks, patch record and patch blocks are all in place; else
 * undefined (a stale or damaged entry, or one an older version wrote, just
 * means computing it again).
 */
export async function storedDelta (store: BlockStore, from: CID[], to: CID): Promise<StoredDelta | undefined> {
  try {
    const text = await readFile(deltaIndexPath(store, from, to), 'utf8')
    const cid = CID.parse(text.trim())
    const manifest = decodeManifest(cid, await store.get(cid))
    if (!manifest.to.equals(to.toV1()) || !sameBuilds(manifest.from, from)) return undefined
    for (const b of manifest.pack) if (!await store.has(b)) return undefined
    if (manifest.delta === undefined) return { cid, manifest }
    const record = decodeDelta(manifest.delta, await store.get(manifest.delta))
    if (!record.to.equals(manifest.to) || !sameBuilds(record.from, manifest.from)) return undefined
    for (const b of patchBlocks(record)) if (!await store.has(b)) return undefined
    return { cid, manifest, patches: { cid: manifest.delta, record } }
  } catch {
    return undefined
  }
}

/** Records a delta's manifest CID in the index (atomically: a reader sees the old entry or the new one). */
export async function rememberDelta (store: BlockStore, manifest: PackManifest, cid: CID): Promise<void> {
  const path = deltaIndexPath(store, manifest.from, manifest.to)
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, cid.toString() + '\n')
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}
