// Builds in the simulator are sizes, not bytes: a build is a record CID, a
// few interior-node CIDs and N leaf sizes drawn like FastCDC's chunks
// (64 KiB on average, 16–256 KiB), all derived from the run's seed. The
// exchange core works on CIDs, indices and sizes and never sees block bytes
// (the driver hashes them), so a synthetic build exercises the very code an
// agent runs; the simulator's store answers `store` as verified at once.
import { bitfieldLength, cidKey, countBits, fullBitfield, setBit } from '../src/core/exchange/index.ts'
import type { LoadResult } from '../src/core/exchange/index.ts'
import type { Random } from './random.ts'

/** Leaves one dag-pb interior node links to (UnixFS's default fan-out). */
const FANOUT = 174
const MIN_LEAF = 16 * 1024
const AVG_LEAF = 64 * 1024
const MAX_LEAF = 256 * 1024

export interface SimBuild {
  /** Index among the scenario's builds. */
  index: number
  name: string
  root: Uint8Array
  key: string
  /** Leaf sizes in index order (shared by every node's core: never modified). */
  sizes: Uint32Array
  bytes: number
  /** Record first, then interior nodes. */
  manifest: Uint8Array[]
  manifestSizes: number[]
  /** cidKey → position in manifest. */
  manifestIndex: Map<string, number>
}

function fakeCid (random: Random, codec: number): Uint8Array {
  const c = new Uint8Array(36)
  c.set([1, codec, 0x12, 0x20])
  for (let i = 4; i < 36; i += 4) {
    const w = random.nextU32()
    c[i] = w >>> 24
    c[i + 1] = (w >>> 16) & 0xff
    c[i + 2] = (w >>> 8) & 0xff
    c[i + 3] = w & 0xff
  }
  return c
}

/** A build of about `bytes` bytes (the last leaf is trimmed to hit it exactly). */
export function makeBuild (random: Random, index: number, name: string, bytes: number): SimBuild {
  const sizes: number[] = []
  let total = 0
  while (total < bytes) {
    // FastCDC's sizes cluster around the average: a triangular draw over [min, max] with its mode near avg
    const u = (random.next() + random.next()) / 2
    let s = u < 0.5 ? MIN_LEAF + (AVG_LEAF - MIN_LEAF) * 2 * u : AVG_LEAF + (MAX_LEAF - AVG_LEAF) * (2 * u - 1) * 0.35
    s = Math.max(1, Math.min(Math.round(s), bytes - total))
    sizes.push(s)
    total += s
  }
  const interior = Math.ceil(sizes.length / FANOUT)
  const manifest = [fakeCid(random, 0x71)]
  const manifestSizes = [400]
  for (let i = 0; i < interior; i++) {
    manifest.push(fakeCid(random, 0x70))
    manifestSizes.push(FANOUT * 44)
  }
  const manifestIndex = new Map<string, number>()
  manifest.forEach((c, i) => manifestIndex.set(cidKey(c), i))
  return { index, name, root: manifest[0]!, key: cidKey(manifest[0]!), sizes: Uint32Array.from(sizes), bytes: total, manifest, manifestSizes, manifestIndex }
}

/** What one node's disk holds of one build: manifest blocks and leaves as bits. */
export class HeldBuild {
  readonly build: SimBuild
  readonly manifest: Uint8Array
  readonly have: Uint8Array
  leaves = 0
  bytes = 0

  constructor (build: SimBuild, complete: boolean) {
    this.build = build
    this.manifest = new Uint8Array(build.manifest.length).fill(complete ? 1 : 0)
    const n = build.sizes.length
    this.have = complete ? fullBitfield(n) : new Uint8Array(bitfieldLength(n))
    if (complete) {
      this.leaves = n
      this.bytes = build.bytes
    }
  }

  get complete (): boolean { return this.leaves === this.build.sizes.length }

  hasLeaf (i: number): boolean {
    return (this.have[i >> 3]! & (0x80 >> (i & 7))) !== 0
  }

  addLeaf (i: number): boolean {
    if (this.hasLeaf(i)) return false
    setBit(this.have, i)
    this.leaves++
    this.bytes += this.build.sizes[i]!
    return true
  }

  /** The store's answer to the core's `load` (record first, then interior nodes: a flat tree). */
  load (): LoadResult {
    const b = this.build
    if (this.manifest[0] !== 1) return { status: 'manifest-missing', missing: [b.manifest[0]!] }
    const missing: Uint8Array[] = []
    for (let i = 1; i < b.manifest.length; i++) if (this.manifest[i] !== 1) missing.push(b.manifest[i]!)
    if (missing.length > 0) return { status: 'manifest-missing', missing }
    return { status: 'ready', manifest: b.manifest, sizes: b.sizes, have: this.have.slice() }
  }

  countLeaves (): number { return countBits(this.have) }
}
