// The laptop owner's key pair: DATA/owner.key, an X25519 key made on first
// boot (never baked into an image), mode 0600. Backups are encrypted to it
// (docs/upstream.md, "Backups"): whoever holds this key can restore the
// owner's journal onto any laptop, and nobody else can read it, the school
// server and the mothership included. Registration sends the public half to
// the school server.
//
// The file holds one line, the same text `xo-mesh owner export` prints:
//
//   xo-mesh-owner-1:<base64url of the 32-byte private key>:<8 hex digits of its SHA-256>
//
// so a key copied by hand (a teacher's notebook, a stick) is checked when it
// is imported. The public key is derived from the private one.
import { createHash, randomBytes } from 'node:crypto'
import { chmod, link, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { x25519PrivateKey, x25519PublicKey } from '../content/backup/crypto.ts'
import { AgentError } from './errors.ts'

export const OWNER_KEY_FILE = 'owner.key'
const PREFIX = 'xo-mesh-owner-1'

/** The owner's key pair: raw X25519 keys, 32 bytes each. The private key never leaves the laptop but by `owner export`. */
export interface OwnerKey {
  publicKey: Uint8Array
  privateKey: Uint8Array
}

/** The owner key file or its text is malformed (exit 1). */
export class OwnerKeyError extends AgentError {
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_OWNER_KEY', message, options) }
}

function check (raw: Uint8Array): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, 8)
}

/** The public key of a raw X25519 private key. */
export function ownerKeyFromPrivate (privateKey: Uint8Array): OwnerKey {
  if (privateKey.length !== 32) throw new OwnerKeyError(`an owner key has 32 bytes, not ${privateKey.length}`)
  return { privateKey: new Uint8Array(privateKey), publicKey: x25519PublicKey(privateKey) }
}

/** A new random owner key. */
export function generateOwnerKey (): OwnerKey {
  return ownerKeyFromPrivate(x25519PrivateKey())
}

/** The key's text form (the file's line; what `owner export` prints). Secret: whoever has it reads the owner's backups. */
export function encodeOwnerKey (key: OwnerKey): string {
  return `${PREFIX}:${Buffer.from(key.privateKey).toString('base64url')}:${check(key.privateKey)}`
}

/** Parses the text form (surrounding whitespace ignored); throws OwnerKeyError naming what is wrong. */
export function decodeOwnerKey (text: string): OwnerKey {
  const m = /^xo-mesh-owner-1:([A-Za-z0-9_-]{43}):([0-9a-f]{8})$/.exec(text.trim())
  if (m === null) throw new OwnerKeyError(`not an owner key (expected ${PREFIX}:<43 base64url characters>:<8 hex digits>)`)
  const raw = new Uint8Array(Buffer.from(m[1]!, 'base64url'))
  if (raw.length !== 32 || check(raw) !== m[2]) throw new OwnerKeyError('the owner key does not match its check digits (mistyped?)')
  return ownerKeyFromPrivate(raw)
}

async function writeKeyFile (path: string, key: OwnerKey, exclusive: boolean): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(encodeOwnerKey(key) + '\n')
    await fh.sync()
  } finally {
    await fh.close()
  }
  if (exclusive) {
    // link fails when another process made the file first: then theirs stands
    try {
      await link(tmp, path)
    } finally {
      await unlink(tmp).catch(() => {})
    }
    return
  }
  await rename(tmp, path).catch(async e => { await unlink(tmp).catch(() => {}); throw e })
}

/** DATA/owner.key, or undefined when there is none. Throws OwnerKeyError when it is malformed. */
export async function loadOwnerKey (dataDir: string): Promise<OwnerKey | undefined> {
  const path = join(dataDir, OWNER_KEY_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600)
  try {
    return decodeOwnerKey(text)
  } catch (err) {
    throw new OwnerKeyError(`${path}: ${(err as Error).message}`, { cause: err })
  }
}

/** Loads DATA/owner.key, or makes one (first boot). `created` says which. */
export async function loadOrCreateOwnerKey (dataDir: string): Promise<OwnerKey & { created: boolean }> {
  const have = await loadOwnerKey(dataDir)
  if (have !== undefined) return { ...have, created: false }
  const key = generateOwnerKey()
  try {
    await writeKeyFile(join(dataDir, OWNER_KEY_FILE), key, true)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return { ...(await loadOwnerKey(dataDir))!, created: false }
  }
  return { ...key, created: true }
}

/**
 * Installs an owner key from its text (`owner import`): a fresh laptop given
 * its owner's key. Refuses to replace a different key unless `force` (the
 * old key would be lost, and with it the backups made under it).
 */
export async function importOwnerKey (dataDir: string, text: string, options: { force?: boolean } = {}): Promise<{ key: OwnerKey, replaced: boolean }> {
  const key = decodeOwnerKey(text)
  const have = await loadOwnerKey(dataDir).catch(() => undefined)
  if (have !== undefined && Buffer.from(have.privateKey).equals(Buffer.from(key.privateKey))) return { key, replaced: false }
  if (have !== undefined && options.force !== true) throw new OwnerKeyError(`${join(dataDir, OWNER_KEY_FILE)} holds another owner key; export it first, then import with --force`)
  await writeKeyFile(join(dataDir, OWNER_KEY_FILE), key, false)
  return { key, replaced: have !== undefined }
}

/**
 * Moves DATA/owner.key aside (owner.key.retired-<ms>), never deleting it, so
 * a backup made to it can still be opened: a laptop found to be a clone of
 * another (a copied data directory) belongs to another owner and gets a new
 * key. The next loadOrCreateOwnerKey makes one. Returns the path, or
 * undefined when there was none.
 */
export async function retireOwnerKey (dataDir: string, now = Date.now()): Promise<string | undefined> {
  const path = join(dataDir, OWNER_KEY_FILE)
  const aside = `${path}.retired-${now}`
  try {
    await rename(path, aside)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return aside
}
