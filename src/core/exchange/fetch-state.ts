// What a fetcher knows about each leaf of a build it is completing, in typed
// arrays (a few bytes per leaf, no per-leaf objects): whether it is missing,
// being stored or held, how many requests for it are outstanding, and how
// many partial peers hold it. Complete peers are counted once per build, not
// per leaf, so a seed's Have costs nothing here.
import { bitfieldLength, hasBit, setBit, clearBit } from './bitfield.ts'

export const MISSING = 0
export const STORING = 1
export const HELD = 2

export class FetchState {
  readonly n: number
  readonly sizes: Uint32Array
  /** Leaves held, as a bitfield (what Have announces). */
  readonly have: Uint8Array
  /** MISSING, STORING or HELD per leaf. */
  readonly state: Uint8Array
  /** Requests outstanding per leaf (2 at most, in end-game). */
  readonly req: Uint8Array
  /** Connected partial peers that hold each leaf. */
  readonly avail: Uint16Array
  /** Missing leaves in a random order (ties of rarity break by it); entries no longer missing are skipped, then compacted away. */
  order: Uint32Array
  /** Each missing leaf's place in that random order (compaction keeps the order, so ranks stay comparable). */
  rank: Uint16Array | Uint32Array
  /**
   * The requestable leaves (missing, no request outstanding) as a bitfield,
   * so what a partial peer can give us is one AND over its bitfield: n / 8
   * byte operations, not a walk over every missing leaf.
   */
  readonly idleBits: Uint8Array
  orderLength = 0
  haveCount = 0
  haveBytes = 0
  readonly totalBytes: number
  /** Leaves being stored. */
  storing = 0
  /** Missing leaves with no request outstanding. */
  idle = 0
  /** Leaves with two requests outstanding (end-game). */
  doubled = 0
  /** End-game requests made for leaves stuck at a slower peer (before the last few). */
  rescued = 0
  /** Grows whenever a leaf becomes requestable again (a request given up, a store failure, a loss). */
  epoch = 0
  /** order[0, cursor) holds no requestable leaf (valid while cursorEpoch is the epoch). */
  private cursor = 0
  private cursorEpoch = -1
  private dead = 0
  private readonly random: () => number

  /** sizes: one per leaf (kept, not copied); have: the bitfield of leaves already on disk (copied). */
  constructor (sizes: Uint32Array, have: Uint8Array, random: () => number) {
    this.n = sizes.length
    this.sizes = sizes
    this.random = random
    this.have = new Uint8Array(bitfieldLength(this.n))
    this.state = new Uint8Array(this.n)
    this.req = new Uint8Array(this.n)
    this.avail = new Uint16Array(this.n)
    this.idleBits = new Uint8Array(bitfieldLength(this.n))
    let total = 0
    for (let i = 0; i < this.n; i++) {
      total += sizes[i]!
      if (hasBit(have, i)) {
        this.state[i] = HELD
        setBit(this.have, i)
        this.haveCount++
        this.haveBytes += sizes[i]!
      }
    }
    this.totalBytes = total
    this.order = new Uint32Array(0)
    this.rank = this.n <= 0x10000 ? new Uint16Array(this.n) : new Uint32Array(this.n)
    this.rebuildOrder()
  }

  get complete (): boolean { return this.haveCount === this.n }

  /** Missing leaves that have a request outstanding. */
  get requested (): number { return this.n - this.haveCount - this.storing - this.idle }

  /** Rebuilds the random order of the missing leaves (Fisher–Yates with the core's random). */
  rebuildOrder (): void {
    const order = new Uint32Array(this.n - this.haveCount)
    let k = 0
    this.idle = 0
    this.idleBits.fill(0)
    for (let i = 0; i < this.n; i++) {
      if (this.state[i] !== MISSING) continue
      order[k++] = i
      if (this.req[i] === 0) {
        this.idle++
        setBit(this.idleBits, i)
      }
    }
    for (let i = k - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      const t = order[i]!
      order[i] = order[j]!
      order[j] = t
    }
    for (let p = 0; p < k; p++) this.rank[order[p]!] = p
    this.order = order
    this.orderLength = k
    this.dead = 0
    this.cursorEpoch = -1
  }

  /**
   * Where a scan for requestable leaves may start in `order`: every entry
   * before it is requested, being stored or held. Amortised O(1).
   */
  scanStart (): number {
    if (this.cursorEpoch !== this.epoch) {
      this.cursor = 0
      this.cursorEpoch = this.epoch
    }
    while (this.cursor < this.orderLength) {
      const i = this.order[this.cursor]!
      if (this.state[i] === MISSING && this.req[i] === 0) break
      this.cursor++
    }
    return this.cursor
  }

  /** Drops entries no longer missing once they are half the order. */
  private compact (): void {
    if (this.dead * 2 < this.orderLength) return
    this.cursorEpoch = -1
    let k = 0
    for (let p = 0; p < this.orderLength; p++) {
      const i = this.order[p]!
      if (this.state[i] === MISSING) this.order[k++] = i
    }
    this.orderLength = k
    this.dead = 0
  }

  addRequest (i: number): void {
    if (this.state[i] === MISSING && this.req[i] === 0) {
      this.idle--
      clearBit(this.idleBits, i)
    }
    if (this.req[i] === 1) this.doubled++
    this.req[i] = this.req[i]! + 1
  }

  removeRequest (i: number): void {
    if (this.req[i] === 0) return
    this.req[i] = this.req[i]! - 1
    if (this.req[i] === 1) this.doubled--
    if (this.state[i] === MISSING && this.req[i] === 0) {
      this.idle++
      setBit(this.idleBits, i)
      this.epoch++
    }
  }

  /** A missing leaf arrived and goes to the store. */
  arrive (i: number): void {
    if (this.state[i] !== MISSING) return
    if (this.req[i] === 0) {
      this.idle--
      clearBit(this.idleBits, i)
    }
    this.state[i] = STORING
    this.storing++
  }

  /** The store holds the leaf now. */
  stored (i: number): void {
    if (this.state[i] !== STORING) return
    this.state[i] = HELD
    this.storing--
    setBit(this.have, i)
    this.haveCount++
    this.haveBytes += this.sizes[i]!
    this.dead++
    this.compact()
  }

  /** Storing failed (a bad block, a full disk): the leaf is missing again. */
  storeFailed (i: number): void {
    if (this.state[i] !== STORING) return
    this.state[i] = MISSING
    this.storing--
    if (this.req[i] === 0) {
      this.idle++
      setBit(this.idleBits, i)
      this.epoch++
    }
  }

  /** A held leaf turned out to be gone from the store: missing again. */
  lost (i: number): void {
    if (this.state[i] !== HELD) return
    this.state[i] = MISSING
    clearBit(this.have, i)
    this.haveCount--
    this.haveBytes -= this.sizes[i]!
    this.rebuildOrder()
    this.epoch++
  }
}
