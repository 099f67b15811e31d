// The encryption of journal backups (docs/upstream.md, "Backups"): what the
// school server and the mothership hold is opaque to them; only the owner's
// key opens it.
//
// Every key comes from the owner's X25519 private key through HKDF-SHA256:
//
//   bucket   names the owner's backups on a server (a pseudonym: it cannot
//            be linked to the owner's public key, and only the key holder
//            can compute it, so it is also what lets one fetch them)
//   id key   a blob's id is HMAC(id key, the block's CID): the server stores
//            blobs by id and cannot confirm a guess of their content
//   blob key a blob's key is HMAC(blob key, the block's CID): convergent
//            within one owner (the same block gives the same blob, so a
//            second backup sends only what changed), never across owners
//   auth key mixed into each snapshot's key, so that knowing the public key
//            is not enough to forge a snapshot
//
// Blobs are ChaCha20-Poly1305 with the blob's id as associated data. The
// nonce is fixed: each key encrypts exactly one plaintext (it is derived from
// that plaintext's hash), so a nonce is never reused with a second message.
// A snapshot (the root of one backup) is sealed to the owner's public key: an
// ephemeral X25519 key, HKDF over the shared secret and the auth key.
import { createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto'
import { CID, matches } from '../cid.ts'
import { ContentError } from '../errors.ts'

export const ID_BYTES = 32
const TAG_BYTES = 16
const NONCE = Buffer.alloc(12)
const INFO = 'xo-mesh/backup/1 '
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex')

/** The raw X25519 public key of a raw private key (32 bytes each). */
export function x25519PublicKey (privateKey: Uint8Array): Uint8Array {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, privateKey]), format: 'der', type: 'pkcs8' })
  return new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length))
}

/** A new random X25519 private key, raw (32 bytes). */
export function x25519PrivateKey (): Uint8Array {
  const { privateKey } = generateKeyPairSync('x25519')
  return new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_X25519.length))
}

/** A blob or snapshot that does not open: wrong key, or bytes changed on the way or on a disk. */
export class BackupCorruptError extends ContentError {
  constructor (message: string) { super('ERR_BACKUP_CORRUPT', message) }
}

/** The owner's keys for backups (derived, never stored). */
export interface BackupKeys {
  /** The owner's public key (32 bytes, X25519). */
  publicKey: Uint8Array
  /** Names this owner's backups on a server (32 bytes). */
  bucket: Uint8Array
  readonly idKey: Buffer
  readonly blobKey: Buffer
  readonly authKey: Buffer
  readonly privateKey: Uint8Array
}

function derive (secret: Uint8Array, what: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'xo-mesh backup', INFO + what, 32))
}

/** Derives the backup keys from the owner's X25519 key pair (raw, 32 bytes each). */
export function backupKeys (owner: { publicKey: Uint8Array, privateKey: Uint8Array }): BackupKeys {
  return {
    publicKey: owner.publicKey,
    privateKey: owner.privateKey,
    bucket: new Uint8Array(derive(owner.privateKey, 'bucket')),
    idKey: derive(owner.privateKey, 'blob id'),
    blobKey: derive(owner.privateKey, 'blob key'),
    authKey: derive(owner.privateKey, 'snapshot auth')
  }
}

/** The id under which the block of this CID is stored on servers. */
export function blobId (keys: BackupKeys, cid: CID): Uint8Array {
  return new Uint8Array(createHmac('sha256', keys.idKey).update(cid.bytes).digest())
}

function aead (key: Buffer, plain: Uint8Array, aad: Uint8Array): Uint8Array {
  const c = createCipheriv('chacha20-poly1305', key, NONCE, { authTagLength: TAG_BYTES })
  c.setAAD(aad, { plaintextLength: plain.length })
  const body = c.update(plain)
  c.final()
  return new Uint8Array(Buffer.concat([body, c.getAuthTag()]))
}

function unaead (key: Buffer, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_BYTES) return undefined
  try {
    const d = createDecipheriv('chacha20-poly1305', key, NONCE, { authTagLength: TAG_BYTES })
    d.setAAD(aad, { plaintextLength: sealed.length - TAG_BYTES })
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
    const out = d.update(sealed.subarray(0, sealed.length - TAG_BYTES))
    d.final()
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  } catch {
    return undefined
  }
}

/** Encrypts one block (its bytes hash to cid) for the server: its id and the blob. */
export function sealBlob (keys: BackupKeys, cid: CID, bytes: Uint8Array): { id: Uint8Array, blob: Uint8Array } {
  const id = blobId(keys, cid)
  const key = createHmac('sha256', keys.blobKey).update(cid.bytes).digest()
  return { id, blob: aead(key, bytes, id) }
}

/** Decrypts a blob and checks it is the block of cid; throws BackupCorruptError naming what. */
export function openBlob (keys: BackupKeys, cid: CID, blob: Uint8Array, what = `block ${cid}`): Uint8Array {
  const id = blobId(keys, cid)
  const key = createHmac('sha256', keys.blobKey).update(cid.bytes).digest()
  const plain = unaead(key, blob, id)
  if (plain === undefined) throw new BackupCorruptError(`backup blob ${Buffer.from(id).toString('hex').slice(0, 16)}… (${what}) is corrupt or truncated: it does not authenticate under the owner's key`)
  if (!matches(cid, plain)) throw new BackupCorruptError(`backup blob ${Buffer.from(id).toString('hex').slice(0, 16)}… (${what}) does not hash to ${cid}`)
  return plain
}

/** What a snapshot says: one backup of the journal. */
export interface Snapshot {
  /** When it was made, ms since the epoch (the laptop's clock). */
  created: number
  /** The journal's root directory: a UnixFS DAG whose blocks are the blobs. */
  root: string
  files: number
  bytes: number
}

function snapshotKey (keys: BackupKeys, shared: Uint8Array, ephemeral: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.concat([shared, keys.authKey]), Buffer.concat([ephemeral, keys.publicKey]), INFO + 'snapshot', 32))
}

function rawPublic (pub: Uint8Array): ReturnType<typeof createPublicKey> {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, pub]), format: 'der', type: 'spki' })
}

/** Seals a snapshot to the owner: a random id and the bytes (ephemeral public key, then the AEAD). */
export function sealSnapshot (keys: BackupKeys, snapshot: Snapshot): { id: Uint8Array, bytes: Uint8Array } {
  const id = new Uint8Array(randomBytes(ID_BYTES))
  const eph = generateKeyPairSync('x25519')
  const ephPub = eph.publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length)
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: rawPublic(keys.publicKey) })
  const sealed = aead(snapshotKey(keys, shared, ephPub), new TextEncoder().encode(JSON.stringify(snapshot)), id)
  return { id, bytes: new Uint8Array(Buffer.concat([ephPub, sealed])) }
}

/** Opens a snapshot; throws BackupCorruptError when it is not the owner's or was changed. */
export function openSnapshot (keys: BackupKeys, id: Uint8Array, bytes: Uint8Array): Snapshot {
  const bad = (why: string): never => { throw new BackupCorruptError(`backup snapshot ${Buffer.from(id).toString('hex').slice(0, 16)}… ${why}`) }
  if (bytes.length < 32 + TAG_BYTES) bad('is truncated')
  const ephPub = bytes.subarray(0, 32)
  let shared: Buffer
  try {
    const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, keys.privateKey]), format: 'der', type: 'pkcs8' })
    shared = diffieHellman({ privateKey: priv, publicKey: rawPublic(ephPub) })
  } catch {
    return bad('has no valid ephemeral key')
  }
  const plain = unaead(snapshotKey(keys, shared, ephPub), bytes.subarray(32), id)
  if (plain === undefined) return bad('does not authenticate under the owner\'s key')
  let v: unknown
  try {
    v = JSON.parse(new TextDecoder().decode(plain))
  } catch {
    return bad('is not JSON')
  }
  const s = v as Partial<Snapshot> | null
  if (s === null || typeof s !== 'object' || typeof s.created !== 'number' || typeof s.root !== 'string' || typeof s.files !== 'number' || typeof s.bytes !== 'number') return bad('is malformed')
  try {
    CID.parse(s.root)
  } catch {
    return bad('names no root')
  }
  return { created: s.created, root: s.root, files: s.files, bytes: s.bytes }
}
