// A deployment for one simulated run: root and advisory keys drawn from the
// run's seed (so equal seeds sign equal bytes), root v1, and one signed
// snapshot advising a simulated build. Made with the trust layer's own
// functions (src/trust), and verified by every laptop with them: the bytes
// that travel through the simulated mesh are what a real deployment signs.
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { CID } from 'multiformats/cid'
import {
  ROOT_TYPE, SNAPSHOT_TYPE, acceptSnapshot, anchorRoot, initialState, keyIdOf, signRoot, signSnapshot,
  type SigningKey, type TrustState
} from '../../src/trust/index.ts'
import type { Verify } from '../../src/core/advisory/index.ts'
import type { Random } from '../random.ts'
import type { SimBuild } from '../builds.ts'

/** The wall clock of a run's start (trust checks expiry against it): a fixed date, so runs do not depend on when they run. */
export const SIM_EPOCH = Date.UTC(2026, 10, 26)
const DAY = 86_400_000
/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex')

function keyFrom (random: Random): SigningKey {
  const seed = Buffer.alloc(32)
  for (let i = 0; i < 32; i += 4) seed.writeUInt32BE(random.nextU32(), i)
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' })
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  const publicKey = new Uint8Array(Buffer.from(jwk.x!, 'base64url'))
  return { keyid: keyIdOf(publicKey), publicKey, privateKey }
}

export interface SimDeployment {
  rootKey: Uint8Array
  /** Root v1, signed: what a laptop provisioned with the root key alone needs first. */
  roots: Uint8Array[]
  /** Snapshot v1 advising the build. */
  snapshot: Uint8Array
}

export function makeDeployment (random: Random, build: SimBuild): SimDeployment {
  const root = keyFrom(random)
  const advisory = keyFrom(random)
  const lease = keyFrom(random)
  const all = [root, advisory, lease]
  const r1 = signRoot({
    type: ROOT_TYPE,
    version: 1,
    expires: SIM_EPOCH + 365 * DAY,
    deployment: 'sim',
    keys: Object.fromEntries(all.map(k => [k.keyid, k.publicKey])),
    roles: {
      root: { keyids: [root.keyid], threshold: 1 },
      advisory: { keyids: [advisory.keyid], threshold: 1 },
      lease: { keyids: [lease.keyid], threshold: 1 }
    }
  }, [root])
  const snapshot = signSnapshot({
    type: SNAPSHOT_TYPE,
    version: 1,
    issued: SIM_EPOCH,
    expires: SIM_EPOCH + 30 * DAY,
    advisories: [{ build: CID.decode(build.root), name: build.name, kind: 'os', size: build.bytes, priority: 'normal', targets: {} }]
  }, [advisory])
  return { rootKey: root.publicKey, roots: [r1.bytes], snapshot: snapshot.bytes }
}

/**
 * A laptop's trust: provisioned with the root key, and the core's verify
 * over it (as the agent's advisory driver does, with the simulated clock).
 * `advised` lists the builds (CID bytes) of the snapshot it last adopted.
 */
export class LaptopTrust {
  state: TrustState
  advised: Uint8Array[] = []
  readonly verify: Verify

  constructor (rootKey: Uint8Array, now: () => number) {
    this.state = initialState(anchorRoot(rootKey))
    this.verify = (snapshot, roots) => {
      const r = acceptSnapshot(this.state, snapshot, roots, SIM_EPOCH + now())
      this.state = r.state
      if (!r.ok) return { ok: false, code: r.code, reason: r.reason, retry: r.code === 'root-expired', ...(r.roots.adopted.length > 0 ? { rootVersion: r.state.root.doc.version, roots: r.state.chain } : {}) }
      this.advised = r.snapshot.doc.advisories.map(a => a.build.bytes)
      return { ok: true, version: r.snapshot.doc.version, hash: r.snapshot.cid.bytes, rootVersion: r.state.root.doc.version, roots: r.state.chain }
    }
  }
}
