// Advisory snapshots on a USB stick: a CARv1 file whose root is the
// snapshot's block (the envelope, dag-cbor) and which also carries every root
// version, so a laptop months behind walks its roots up from the stick alone.
// Builds travel in their own bundles (xo-mesh export); a stick may carry both.
import { CarReader, CarWriter } from '@ipld/car'
import { readFile, stat } from 'node:fs/promises'
import { DAG_CBOR, cidOf, matches } from '../content/cid.ts'
import { claimedRootVersion, MAX_ROOT_BYTES } from './root.ts'
import { MAX_SNAPSHOT_BYTES } from './snapshot.ts'
import { writeAtomic } from './store.ts'
import { reject, type Rejection } from './errors.ts'

/** Root versions a bundle may carry. */
export const MAX_BUNDLE_ROOTS = 1024
export const MAX_BUNDLE_BYTES = MAX_SNAPSHOT_BYTES + MAX_BUNDLE_ROOTS * MAX_ROOT_BYTES / 8

export interface TrustBundle {
  snapshot: Uint8Array
  roots: Uint8Array[]
}

/** Writes a snapshot and root versions as a CAR file (atomically). */
export async function writeTrustBundle (path: string, bundle: TrustBundle): Promise<number> {
  const snapshotCid = cidOf(DAG_CBOR, bundle.snapshot)
  const { writer, out } = CarWriter.create([snapshotCid])
  const chunks: Uint8Array[] = []
  const collect = (async () => { for await (const c of out) chunks.push(c) })()
  await writer.put({ cid: snapshotCid, bytes: bundle.snapshot })
  for (const r of bundle.roots) await writer.put({ cid: cidOf(DAG_CBOR, r), bytes: r })
  await writer.close()
  await collect
  const bytes = Buffer.concat(chunks)
  await writeAtomic(path, bytes)
  return bytes.length
}

/**
 * Reads a trust bundle. Every block must hash to its CID (a tampered bundle is
 * refused whole); the CAR's root is the snapshot; any other block that reads
 * as a root version is a root. Never throws on the file's content.
 */
export async function readTrustBundle (path: string): Promise<TrustBundle | Rejection> {
  const size = (await stat(path)).size
  if (size > MAX_BUNDLE_BYTES) return reject('too-large', `${size} bytes, more than a trust bundle may take (${MAX_BUNDLE_BYTES})`)
  let reader: CarReader
  try {
    reader = await CarReader.fromBytes(await readFile(path))
  } catch (err) {
    return reject('malformed', `not a CAR file: ${(err as Error).message}`)
  }
  const roots = await reader.getRoots()
  if (roots.length !== 1) return reject('malformed', `a trust bundle has one root (the snapshot), this one has ${roots.length}`)
  let snapshot: Uint8Array | undefined
  const rootVersions: Uint8Array[] = []
  try {
    for await (const { cid, bytes } of reader.blocks()) {
      if (!matches(cid, bytes)) return reject('tampered', `block ${cid} does not match its hash`)
      if (cid.code !== DAG_CBOR) continue // a build's blocks on the same stick: not ours to read
      if (cid.equals(roots[0])) snapshot = bytes
      else if (claimedRootVersion(bytes) !== undefined && rootVersions.length < MAX_BUNDLE_ROOTS) rootVersions.push(bytes)
    }
  } catch (err) {
    return reject('malformed', (err as Error).message)
  }
  if (snapshot === undefined) return reject('malformed', `the snapshot block is missing`)
  return { snapshot, roots: rootVersions }
}
