// An in-memory deployment for trust tests: keys, signed roots and snapshots
// made with the real functions, a fixed clock, and a fake build CID.
import { CID } from 'multiformats/cid'
import { DAG_CBOR, cidOf } from '../../src/content/cid.ts'
import {
  ROOT_TYPE, SNAPSHOT_TYPE, anchorRoot, generateKey, initialState, signRoot, signSnapshot,
  type Advisory, type Root, type RootDoc, type SigningKey, type Snapshot, type SnapshotDoc, type TrustState
} from '../../src/trust/index.ts'

export const T0 = Date.UTC(2026, 10, 26)
export const DAY = 86_400_000

export function fakeBuild (n: number): CID {
  return cidOf(DAG_CBOR, new TextEncoder().encode(`build ${n}`))
}

export function advisory (n: number, extra: Partial<Advisory> = {}): Advisory {
  return { build: fakeBuild(n), name: `os-${n}`, kind: 'os', size: 1000 + n, priority: 'normal', targets: {}, ...extra }
}

/** A deployment: root keys, one advisory key, a chain of roots. */
export class TestDeployment {
  rootKeys: SigningKey[]
  advisoryKeys: SigningKey[]
  leaseKey = generateKey()
  roots: Root[] = []
  threshold: number

  constructor (rootKeys = 1, threshold = 1) {
    this.rootKeys = Array.from({ length: rootKeys }, generateKey)
    this.advisoryKeys = [generateKey()]
    this.threshold = threshold
    this.roots.push(signRoot(this.doc(1), this.rootKeys))
  }

  doc (version: number): RootDoc {
    const all = [...this.rootKeys, ...this.advisoryKeys, this.leaseKey]
    return {
      type: ROOT_TYPE,
      version,
      expires: T0 + 365 * DAY,
      deployment: 'test',
      keys: Object.fromEntries(all.map(k => [k.keyid, k.publicKey])),
      roles: {
        root: { keyids: this.rootKeys.map(k => k.keyid), threshold: this.threshold },
        advisory: { keyids: this.advisoryKeys.map(k => k.keyid), threshold: 1 },
        lease: { keyids: [this.leaseKey.keyid], threshold: 1 }
      }
    }
  }

  get root (): Root { return this.roots[this.roots.length - 1]! }

  /** Rotates a role to a fresh key: the next root signed by old and new root keys. */
  rotate (role: 'root' | 'advisory'): Root {
    const oldRoot = this.rootKeys
    if (role === 'root') this.rootKeys = [generateKey()]
    else this.advisoryKeys = [generateKey()]
    if (role === 'root') this.threshold = 1
    const signers = new Map([...oldRoot, ...this.rootKeys].map(k => [k.keyid, k]))
    const r = signRoot(this.doc(this.root.doc.version + 1), [...signers.values()])
    this.roots.push(r)
    return r
  }

  snapshot (version: number, advisories: Advisory[] = [advisory(version)], over: Partial<SnapshotDoc> = {}, keys = this.advisoryKeys): Snapshot {
    return signSnapshot({ type: SNAPSHOT_TYPE, version, issued: T0, expires: T0 + 30 * DAY, advisories, ...over }, keys)
  }

  /** A laptop provisioned with the root key only. */
  laptop (): TrustState {
    return initialState(anchorRoot(this.rootKeys[0]!.publicKey))
  }

  chain (): Uint8Array[] {
    return this.roots.map(r => r.bytes)
  }
}
