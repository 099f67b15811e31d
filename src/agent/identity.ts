// The agent's persistent Ed25519 identity: DATA/identity.key, the libp2p
// protobuf encoding of the private key, mode 0600. Created on first start;
// the peer id is derived from it, so it must survive restarts and updates.
//
// Not handled: two laptops imaged from one disk carry the same key and so the
// same peer id (libp2p then treats them as one peer). Imaging must leave the
// file out, or delete it on first boot; detecting a clone is out of scope.
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
