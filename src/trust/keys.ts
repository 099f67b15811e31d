// Ed25519 keys of a deployment, through node:crypto (OpenSSL). A public key
// travels as its 32 raw bytes; its key id is the hex sha2-256 of those bytes
// (as TUF names keys), so a root document names keys without ambiguity. A
// private key is stored as PKCS#8 PEM, mode 0600.
//
// Every signature covers a context string before the bytes, so a signature
// made for one kind of document (a root) can never be passed off as another
// (an advisory snapshot).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { TrustError } from './errors.ts'

export const PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

/** A key pair held by the publisher. */
export interface SigningKey {
  keyid: string
  publicKey: Uint8Array
  privateKey: KeyObject
}

/** The hex sha2-256 of a raw public key. */
export function keyIdOf (publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex')
}

function rawPublic (key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' })
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TrustError('ERR_BAD_KEY', 'not an Ed25519 key')
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'))
}

/** A new Ed25519 key pair. */
export function generateKey (): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = rawPublic(publicKey)
  return { keyid: keyIdOf(raw), publicKey: raw, privateKey }
}

/** PKCS#8 PEM of the private key (write it with mode 0600). */
export function privateKeyPem (key: SigningKey): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
}

/** Reads a PKCS#8 PEM Ed25519 private key. Throws TrustError on anything else. */
export function parsePrivateKey (pem: string, where: string): SigningKey {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw new TrustError('ERR_BAD_KEY', `${where}: not a PEM private key`, { cause: err })
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TrustError('ERR_BAD_KEY', `${where}: not an Ed25519 key`)
  const raw = rawPublic(createPublicKey(privateKey))
  return { keyid: keyIdOf(raw), publicKey: raw, privateKey }
}

/** Parses a public key as provisioned in config: 64 hex digits. Throws TrustError otherwise. */
export function parsePublicKeyHex (text: string): Uint8Array {
  const t = text.trim().toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(t)) throw new TrustError('ERR_BAD_KEY', `not an Ed25519 public key (64 hex digits): ${JSON.stringify(text)}`)
  return new Uint8Array(Buffer.from(t, 'hex'))
}

export function publicKeyHex (publicKey: Uint8Array): string {
  return Buffer.from(publicKey).toString('hex')
}

function message (context: string, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(context + '\n', 'utf8'), bytes])
}

/** Signs context ‖ "\n" ‖ bytes. */
export function signBytes (key: SigningKey, context: string, bytes: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message(context, bytes), key.privateKey))
}

/** Public keys as KeyObjects, by hex: a root names few keys, and importing one costs more than a verify. */
const keyObjects = new Map<string, KeyObject>()
const MAX_CACHED_KEYS = 256

function publicKeyObject (publicKey: Uint8Array): KeyObject {
  const hex = Buffer.from(publicKey).toString('hex')
  let k = keyObjects.get(hex)
  if (k === undefined) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
    if (keyObjects.size >= MAX_CACHED_KEYS) keyObjects.delete(keyObjects.keys().next().value!)
    keyObjects.set(hex, k)
  }
  return k
}

/**
 * True when sig is publicKey's signature of context ‖ "\n" ‖ bytes. Never
 * throws: a malformed key or signature is simply not a valid signature.
 */
export function verifyBytes (publicKey: Uint8Array, context: string, bytes: Uint8Array, sig: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_BYTES || sig.length !== SIGNATURE_BYTES) return false
  try {
    return verify(null, message(context, bytes), publicKeyObject(publicKey), sig)
  } catch {
    return false
  }
}
