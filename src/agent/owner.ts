// The laptop owner's key pair: X25519, made on first boot in the data
// directory (DATA/owner.key, PKCS#8 PEM, mode 0600), never baked into an
// image. Backups are encrypted to its public key; registration tells the
// school server (and through it the mothership) that public key, so a
// journal can be restored onto a fresh laptop holding only this key.
//
// A cloned image carries the key of the machine it was made on, so when the
// school server detects a clone, the clone retires this key with its peer
// identity (retireOwnerKey: moved aside, never deleted, so a backup made to
// it can still be opened) and makes a new one for its own owner.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { chmod, link, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { IdentityError } from './errors.ts'

export const OWNER_KEY_FILE = 'owner.key'
export const OWNER_PUBLIC_KEY_BYTES = 32

export interface OwnerKey {
  /** The raw 32-byte X25519 public key. */
  publicKey: Uint8Array
  /** The private key, for node:crypto's diffieHellman({ privateKey, publicKey }). Never leaves the laptop. */
  privateKey: KeyObject
  /** True when this call made it (first boot). */
  created: boolean
}

function rawPublic (privateKey: KeyObject): Uint8Array {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  if (jwk.crv !== 'X25519' || typeof jwk.x !== 'string') throw new IdentityError('the owner key is not an X25519 key')
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'))
}

/** Reads an X25519 public key of 32 raw bytes as a KeyObject (to encrypt to an owner). */
export function ownerPublicKeyObject (publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
}

/**
 * Loads DATA/owner.key, or makes it (0600, written then renamed into place,
 * so a crash leaves no half key). Throws IdentityError when the file is not
 * an X25519 private key (the caller must not silently replace an owner's key).
 */
export async function loadOrCreateOwnerKey (dataDir: string): Promise<OwnerKey> {
  const path = join(dataDir, OWNER_KEY_FILE)
  let pem: string
  try {
    pem = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const { privateKey } = generateKeyPairSync('x25519')
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(privateKey.export({ format: 'pem', type: 'pkcs8' }))
      await fh.sync()
    } finally {
      await fh.close()
    }
    try {
      // link, not rename: if another process made one meanwhile, theirs stays and is used
      await link(tmp, path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      return await loadOrCreateOwnerKey(dataDir)
    } finally {
      await unlink(tmp).catch(() => {})
    }
    return { publicKey: rawPublic(privateKey), privateKey, created: true }
  }
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600)
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw new IdentityError(`${path} is not a PEM private key: it is the owner's key (backups are encrypted to it), so it is not replaced; move it away only if no backup needs it`, { cause: err })
  }
  if (privateKey.asymmetricKeyType !== 'x25519') throw new IdentityError(`${path} is not an X25519 key`)
  return { publicKey: rawPublic(privateKey), privateKey, created: false }
}

/** Moves DATA/owner.key aside (owner.key.retired-<ms>); the next loadOrCreateOwnerKey makes a new one. Returns the path, or undefined when there was none. */
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
