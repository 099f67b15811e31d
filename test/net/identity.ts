// Gives a data directory its identity beforehand (as first start would), so
// agents naming each other as static peers can start together.
import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

export async function identity (dataDir: string): Promise<string> {
  await mkdir(dataDir, { recursive: true })
  const key = await generateKeyPair('Ed25519')
  await writeFile(join(dataDir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}
