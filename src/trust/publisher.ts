// The deployment team's side: a deployment directory, kept offline (the root
// keys above all), holding the keys, every root version and the current
// advisory snapshot.
//
//   DIR/keys/<role>-<keyid prefix>.key   PKCS#8 PEM private keys, mode 0600
//   DIR/root/<N>.cbor                    every signed root version, 1 … N
//   DIR/root.pub                         the root public key(s) of v1, hex: what laptops are provisioned with
//   DIR/advisories.cbor                  the current signed snapshot
//   DIR/advisories/<N>.cbor              every snapshot issued (history)
//
// Every write is atomic; keys are written before the root that names them.
import { mkdir, readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKey, parsePrivateKey, privateKeyPem, publicKeyHex, type SigningKey } from './keys.ts'
import { ROOT_TYPE, readTrustedRoot, signRoot, type Root, type RoleName, type RootDoc } from './root.ts'
import { SNAPSHOT_TYPE, readTrustedSnapshot, signSnapshot, type Advisory, type Snapshot, type SnapshotDoc } from './snapshot.ts'
import { writeAtomic } from './store.ts'
import { TrustError } from './errors.ts'
import { MAX_VERSION } from './limits.ts'

export const DAY_MS = 86_400_000
/** A root lasts a year by default: laptops refuse every snapshot once the newest root they know has expired. */
export const DEFAULT_ROOT_EXPIRY_MS = 365 * DAY_MS
/**
 * A snapshot lasts 30 days by default: long enough for a stick to reach a
 * school with no link, short enough that a stale stick or peer cannot hold a
 * school back for longer (indefinite freeze). Publish again before it ends.
 */
export const DEFAULT_SNAPSHOT_EXPIRY_MS = 30 * DAY_MS

export interface Deployment {
  dir: string
  /** Root versions 1 … N, in order. */
  roots: Root[]
  /** Private keys held in DIR/keys, by key id. */
  keys: Map<string, SigningKey>
  snapshot?: Snapshot
}

async function exists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch { return false }
}

async function writeKey (dir: string, role: RoleName, key: SigningKey): Promise<void> {
  await writeAtomic(join(dir, 'keys', `${role}-${key.keyid.slice(0, 16)}.key`), new TextEncoder().encode(privateKeyPem(key)), 0o600)
}

function current (d: Deployment): Root {
  return d.roots[d.roots.length - 1]!
}

/** The keys of d that a role of a root names (those held here). Throws TrustError when fewer than the threshold are. */
export function signers (d: Deployment, root: RootDoc, role: RoleName): SigningKey[] {
  const out: SigningKey[] = []
  for (const id of root.roles[role].keyids) {
    const k = d.keys.get(id)
    if (k !== undefined) out.push(k)
  }
  if (out.length < root.roles[role].threshold) throw new TrustError('ERR_MISSING_KEYS', `${d.dir}: only ${out.length} of the ${root.roles[role].threshold} ${role} keys needed are in keys/`)
  return out
}

export interface KeygenOptions {
  now: number
  deployment?: string
  rootKeys?: number
  rootThreshold?: number
  expiresMs?: number
}

/** Makes a new deployment in dir: one key per role (rootKeys for the root role), root v1. Refuses to overwrite one. */
export async function keygen (dir: string, options: KeygenOptions): Promise<Deployment> {
  if (await exists(join(dir, 'root'))) throw new TrustError('ERR_EXISTS', `${dir} already holds a deployment (root/): refusing to overwrite its keys`)
  const n = options.rootKeys ?? 1
  const t = options.rootThreshold ?? 1
  if (!Number.isInteger(n) || n < 1 || n > 16 || !Number.isInteger(t) || t < 1 || t > n) throw new TrustError('ERR_BAD_OPTION', `need 1 ≤ threshold (${t}) ≤ root keys (${n}) ≤ 16`)
  await mkdir(join(dir, 'keys'), { recursive: true, mode: 0o700 })
  const roots = Array.from({ length: n }, generateKey)
  const advisory = generateKey()
  const lease = generateKey()
  for (const k of roots) await writeKey(dir, 'root', k)
  await writeKey(dir, 'advisory', advisory)
  await writeKey(dir, 'lease', lease)
  const doc: RootDoc = {
    type: ROOT_TYPE,
    version: 1,
    expires: options.now + (options.expiresMs ?? DEFAULT_ROOT_EXPIRY_MS),
    deployment: options.deployment ?? 'xo-mesh deployment',
    keys: Object.fromEntries([...roots, advisory, lease].map(k => [k.keyid, k.publicKey])),
    roles: {
      root: { keyids: roots.map(k => k.keyid), threshold: t },
      advisory: { keyids: [advisory.keyid], threshold: 1 },
      lease: { keyids: [lease.keyid], threshold: 1 }
    }
  }
  const root = signRoot(doc, roots)
  await writeAtomic(join(dir, 'root', '1.cbor'), root.bytes)
  await writeAtomic(join(dir, 'root.pub'), new TextEncoder().encode(roots.map(k => publicKeyHex(k.publicKey)).join('\n') + '\n'))
  return { dir, roots: [root], keys: new Map([...roots, advisory, lease].map(k => [k.keyid, k])) }
}

/** Reads a deployment directory. Throws TrustError when it is not one. */
export async function openDeployment (dir: string): Promise<Deployment> {
  let names: string[]
  try {
    names = await readdir(join(dir, 'root'))
  } catch {
    throw new TrustError('ERR_NO_DEPLOYMENT', `${dir} is not a deployment directory (make one with: xo-mesh deploy keygen --out ${dir})`)
  }
  const versions = names.map(n => /^(\d+)\.cbor$/.exec(n)).filter(m => m !== null).map(m => Number(m[1])).sort((a, b) => a - b)
  const roots: Root[] = []
  for (const v of versions) {
    const r = readTrustedRoot(await readFile(join(dir, 'root', `${v}.cbor`)))
    if (r === undefined || r.doc.version !== v || v !== roots.length + 1) throw new TrustError('ERR_BAD_DEPLOYMENT', `${dir}/root/${v}.cbor: not root version ${roots.length + 1}`)
    roots.push(r)
  }
  if (roots.length === 0) throw new TrustError('ERR_NO_DEPLOYMENT', `${dir}/root/ holds no root`)
  const keys = new Map<string, SigningKey>()
  for (const n of await readdir(join(dir, 'keys')).catch(() => [] as string[])) {
    if (!n.endsWith('.key')) continue
    const k = parsePrivateKey(await readFile(join(dir, 'keys', n), 'utf8'), join(dir, 'keys', n))
    keys.set(k.keyid, k)
  }
  const d: Deployment = { dir, roots, keys }
  if (await exists(join(dir, 'advisories.cbor'))) {
    const s = readTrustedSnapshot(await readFile(join(dir, 'advisories.cbor')))
    if (s === undefined) throw new TrustError('ERR_BAD_DEPLOYMENT', `${dir}/advisories.cbor is not a snapshot`)
    d.snapshot = s
  }
  return d
}

async function publish (d: Deployment, doc: SnapshotDoc): Promise<Snapshot> {
  const s = signSnapshot(doc, signers(d, current(d).doc, 'advisory'))
  await writeAtomic(join(d.dir, 'advisories', `${doc.version}.cbor`), s.bytes)
  await writeAtomic(join(d.dir, 'advisories.cbor'), s.bytes)
  d.snapshot = s
  return s
}

function nextVersion (d: Deployment): number {
  const v = (d.snapshot?.doc.version ?? 0) + 1
  if (v > MAX_VERSION) throw new TrustError('ERR_VERSION', 'snapshot versions are exhausted')
  return v
}

export interface PublishOptions { now: number, expiresMs?: number }

/**
 * Issues the next snapshot: the current advisories with `advisory` added (an
 * entry of the same name is replaced).
 */
export async function advise (d: Deployment, advisory: Advisory, options: PublishOptions): Promise<Snapshot> {
  const kept = (d.snapshot?.doc.advisories ?? []).filter(a => a.name !== advisory.name)
  return await publish(d, { type: SNAPSHOT_TYPE, version: nextVersion(d), issued: options.now, expires: options.now + (options.expiresMs ?? DEFAULT_SNAPSHOT_EXPIRY_MS), advisories: [...kept, advisory] })
}

/** Issues the next snapshot without the advisory named `name`. Throws TrustError when there is none. */
export async function withdraw (d: Deployment, name: string, options: PublishOptions): Promise<Snapshot> {
  const all = d.snapshot?.doc.advisories ?? []
  if (!all.some(a => a.name === name)) throw new TrustError('ERR_NO_ADVISORY', `no advisory is named ${JSON.stringify(name)}`)
  return await publish(d, { type: SNAPSHOT_TYPE, version: nextVersion(d), issued: options.now, expires: options.now + (options.expiresMs ?? DEFAULT_SNAPSHOT_EXPIRY_MS), advisories: all.filter(a => a.name !== name) })
}

/**
 * Rotates a role's keys: a new key replaces every key of the role in root
 * N+1, signed by the root keys of N and of N+1. When the advisory keys
 * change, the current advisories are signed again as a new snapshot (laptops
 * drop the old one with the old keys).
 */
export async function rotate (d: Deployment, role: RoleName, options: PublishOptions): Promise<{ root: Root, snapshot?: Snapshot }> {
  const old = current(d).doc
  const fresh = generateKey()
  await writeKey(d.dir, role, fresh)
  d.keys.set(fresh.keyid, fresh)
  const roles = { ...old.roles, [role]: { keyids: [fresh.keyid], threshold: 1 } }
  const used = new Set(Object.values(roles).flatMap(r => r.keyids))
  const keys: Record<string, Uint8Array> = {}
  for (const id of used) keys[id] = id === fresh.keyid ? fresh.publicKey : old.keys[id]!
  const doc: RootDoc = { ...old, version: old.version + 1, expires: options.now + (options.expiresMs ?? DEFAULT_ROOT_EXPIRY_MS), keys, roles }
  const signing = new Map<string, SigningKey>()
  for (const k of [...signers(d, old, 'root'), ...signers(d, doc, 'root')]) signing.set(k.keyid, k)
  const root = signRoot(doc, [...signing.values()])
  await writeAtomic(join(d.dir, 'root', `${doc.version}.cbor`), root.bytes)
  d.roots.push(root)
  if (role !== 'advisory' || d.snapshot === undefined) return { root }
  const snapshot = await publish(d, { ...d.snapshot.doc, version: nextVersion(d), issued: options.now, expires: options.now + DEFAULT_SNAPSHOT_EXPIRY_MS })
  return { root, snapshot }
}
