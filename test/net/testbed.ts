// A temp directory of agent data directories for the process tests of this
// folder: identities made beforehand (as first start would, so agents naming
// each other as static peers can start together), every agent killed and the
// directory removed after, and the agents' logs printed when a test fails.
import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tempDir } from '../support/cli.ts'
import type { AgentProcess } from '../agent/support.ts'

export async function identity (dataDir: string): Promise<string> {
  await mkdir(dataDir, { recursive: true })
  const key = await generateKeyPair('Ed25519')
  await writeFile(join(dataDir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}

export interface Testbed {
  /** The data directory named `name` inside the temp directory. */
  dir: (name: string) => string
  /** Agents to kill after the tests. */
  agents: AgentProcess[]
}

/** Installs before/afterEach/after hooks in the calling describe block. */
export function testbed (prefix: string): Testbed {
  let t: Awaited<ReturnType<typeof tempDir>> | undefined
  const bed: Testbed = { dir: name => join(t!.dir, name), agents: [] }
  before(async () => { t = await tempDir(prefix) })
  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return
    for (const x of bed.agents) for (const l of x.find(l => l.level !== 'debug')) console.error(x.dataDir.split('/').pop(), JSON.stringify(l).slice(0, 300))
  })
  after(async () => {
    await Promise.all(bed.agents.map(async x => { await x.kill() }))
    await t?.cleanup()
  })
  return bed
}
