// The agent's persistent Ed25519 identity: DATA/identity.key, the libp2p
// protobuf encoding of the private key, mode 0600. Created on first start;
// the peer id is derived from it, so it must survive restarts and updates.
//
// Two laptops imaged from one disk carry the same key and so the same peer id
// (libp2p then treats them as one peer). Imaging should leave the file out;
// when it does not, the school server detects the clone at registration
// (src/net/registration) and the clone retires its key (retireIdentity) and
// restarts with a new one, keeping its data.
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { IDENTITY_FILE } from './constants.ts'
import { IdentityError } from './errors.ts'
import type { Logger } from '../net/logger.ts'

/** Loads DATA/identity.key, or creates it (0600, written then renamed into place). */
export async function loadIdentity (dataDir: string, log: Logger): Promise<{ key: PrivateKey, created: boolean }> {
  const path = join(dataDir, IDENTITY_FILE)
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const key = await generateKeyPair('Ed25519')
    const tmp = `${path}.${process.pid}.tmp`
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(privateKeyToProtobuf(key))
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path).catch(async e => { await unlink(tmp).catch(() => {}); throw e })
    return { key, created: true }
  }
  const mode = (await stat(path)).mode & 0o777
  if ((mode & 0o077) !== 0) {
    // the key is the laptop's identity on the mesh: nobody else on the machine should read it
    log.warn('identity key was readable by others; setting mode 0600', { path, mode: mode.toString(8) })
    await chmod(path, 0o600)
  }
  try {
    return { key: privateKeyFromProtobuf(bytes), created: false }
  } catch (err) {
    throw new IdentityError(`${path} is not a libp2p private key; move it away to create a new identity (the peer id will change)`, { cause: err })
  }
}

/**
 * Moves DATA/identity.key aside (to identity.key.retired-<ms>, kept for the
 * record) so that the next start makes a new identity. Used when the school
 * server says this identity belongs to another laptop (a cloned image).
 * Returns the retired file's path.
 */
export async function retireIdentity (dataDir: string, now = Date.now()): Promise<string> {
  const path = join(dataDir, IDENTITY_FILE)
  const aside = `${path}.retired-${now}`
  await rename(path, aside)
  return aside
}
