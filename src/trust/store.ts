// A laptop's trust state on disk: DATA/trust/state.cbor, one dag-cbor file
// written whole and atomically (temporary file, fsync, rename, fsync of the
// directory), so a crash leaves either the old state or the new one, never a
// mix. Callers save the state a policy function returned before acting on it.
//
//   { anchor: <32-byte root key> | null, chain: [root envelopes, oldest first],
//     snapshot: <envelope> | null, floor, clock }
import * as dagCbor from '@ipld/dag-cbor'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { anchorRoot, readTrustedRoot, type Root } from './root.ts'
import { readTrustedSnapshot } from './snapshot.ts'
import { initialState, type TrustState } from './policy.ts'
import { TrustError } from './errors.ts'
import { keyIdOf } from './keys.ts'
import { isRecord } from './limits.ts'

export const TRUST_DIR = 'trust'
export const STATE_FILE = 'state.cbor'

/** Where a data directory keeps its trust state. */
export function statePath (dataDir: string): string {
  return join(dataDir, TRUST_DIR, STATE_FILE)
}

/** Writes bytes to path atomically and durably. */
export async function writeAtomic (path: string, bytes: Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  const fh = await open(tmp, 'w', mode)
  try {
    await fh.writeFile(bytes)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  const dir = await open(dirname(path), 'r')
  try { await dir.sync() } finally { await dir.close() }
}

/** Saves the state (atomically); returns once it is on the device. */
export async function saveState (dataDir: string, state: TrustState): Promise<void> {
  const doc = {
    anchor: state.anchor ?? null,
    chain: state.chain,
    snapshot: state.snapshot?.bytes ?? null,
    floor: state.floor,
    clock: state.clock
  }
  await writeAtomic(statePath(dataDir), dagCbor.encode(doc))
}

/**
 * Loads the state of a data directory; when there is none, starts from the
 * provisioned root key (undefined: returns undefined, nothing is trusted).
 * Throws TrustError when the file is unreadable or corrupt.
 */
export async function loadState (dataDir: string, provisioned?: Uint8Array): Promise<TrustState | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(statePath(dataDir))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    if (provisioned === undefined) return undefined
    return initialState(anchorRoot(provisioned))
  }
  const bad = (why: string): never => { throw new TrustError('ERR_TRUST_STATE', `${statePath(dataDir)}: ${why} (remove ${TRUST_DIR}/ to provision again)`) }
  let v: unknown
  try { v = dagCbor.decode(bytes) } catch { bad('not dag-cbor') }
  if (!isRecord(v) || !Array.isArray(v.chain) || typeof v.floor !== 'number' || typeof v.clock !== 'number') return bad('not a trust state')
  const anchor = v.anchor instanceof Uint8Array ? v.anchor : undefined
  let root: Root | undefined = anchor !== undefined ? anchorRoot(anchor) : undefined
  const chain: Uint8Array[] = []
  for (const c of v.chain) {
    const r = c instanceof Uint8Array ? readTrustedRoot(c) : undefined
    if (r === undefined) return bad('a stored root does not parse')
    root = r
    chain.push(r.bytes)
  }
  if (root === undefined) return bad('neither an anchor key nor a root')
  if (provisioned !== undefined && anchor !== undefined && keyIdOf(provisioned) !== keyIdOf(anchor)) {
    bad('the stored state started from another root key than the one provisioned')
  }
  const state: TrustState = { root, floor: v.floor, clock: v.clock, chain, ...(anchor !== undefined ? { anchor } : {}) }
  if (v.snapshot instanceof Uint8Array) {
    const s = readTrustedSnapshot(v.snapshot)
    if (s === undefined) return bad('the stored snapshot does not parse')
    state.snapshot = s
  }
  return state
}
