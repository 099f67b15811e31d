// A deterministic harness for relay cores: a chain of agents (laptops →
// school server → staging → mothership) over a fake network that loses,
// duplicates and reorders frames, with fake durable stores that survive a
// crash and fake drivers whose unfinished work a crash throws away. One event
// queue ordered by (time, sequence); no sockets, no sleeps, no Math.random.
import { FrameReader, HeldCounters, Relay, decodeFrame, encodeFrame } from '../../src/core/relay/index.ts'
import type { Custody, Item, OutboxEntry, RelayInput, RelayInit, RelayOutput } from '../../src/core/relay/index.ts'
import { rng } from './mesh.ts'
import { EventQueue } from './event-queue.ts'

const key = (origin: string, counter: number): string => `${origin}#${counter}`

/** What survives a crash at a laptop or a hop: the outbox (its items; custody is what it holds now). */
export class FakeOutbox {
  readonly items = new Map<number, OutboxEntry>()
  /** origin#counter → seq of the items held now. */
  private readonly byKey = new Map<string, number>()
  private readonly bySeq: number[] = []
  private seq = 0
  private readonly counters = new Map<string, number>()
  readonly maxItems: number
  constructor (maxItems = Infinity) {
    this.maxItems = maxItems
  }

  enqueue (origin: string, body: Uint8Array, created: number): Item {
    const counter = (this.counters.get(origin) ?? 0) + 1
    this.counters.set(origin, counter)
    this.put({ origin, counter, kind: 'statistics', created, body })
    return this.items.get(this.seq)!
  }

  private put (it: Item): void {
    this.seq++
    this.items.set(this.seq, { ...it, seq: this.seq })
    this.bySeq.push(this.seq)
    this.byKey.set(key(it.origin, it.counter), this.seq)
  }

  holds (origin: string, counter: number): boolean { return this.byKey.has(key(origin, counter)) }

  accept (items: Item[]): { custody: Custody[] } | 'full' {
    const fresh = items.filter((it, i) => !this.holds(it.origin, it.counter) && items.findIndex(x => x.origin === it.origin && x.counter === it.counter) === i)
    // As many as fit are taken (the receipt covers those); none fitting is a refusal.
    const room = Math.max(0, this.maxItems - this.items.size)
    if (fresh.length > 0 && room === 0) return 'full'
    for (const it of fresh.slice(0, room)) this.put(it)
    const origins = new Map<string, number[]>()
    for (const it of items) origins.set(it.origin, [...(origins.get(it.origin) ?? []), it.counter])
    // Custody is what it holds now, of what was offered.
    return { custody: [...origins].map(([origin, c]) => ({ origin, contiguous: 0, above: [...new Set(c.filter(n => this.holds(origin, n)))].sort((a, b) => a - b) })) }
  }

  load (after: number, maxItems: number): { items: OutboxEntry[], more: boolean } {
    const out: OutboxEntry[] = []
    for (const s of this.bySeq) {
      if (s <= after) continue
      const e = this.items.get(s)
      if (e === undefined) continue
      if (out.length >= maxItems) return { items: out, more: true }
      out.push(e)
    }
    return { items: out, more: false }
  }

  forget (custody: Custody[]): void {
    for (const c of custody) {
      const above = new Set(c.above)
      for (const [s, e] of this.items) {
        if (e.origin === c.origin && (e.counter <= c.contiguous || above.has(e.counter))) {
          this.items.delete(s)
          this.byKey.delete(key(e.origin, e.counter))
        }
      }
    }
  }
}

/** The mothership's store: every item it ever took, and how many times each was stored. */
export class FakeSink {
  readonly held = new HeldCounters()
  readonly items = new Map<string, Item>()
  readonly stored = new Map<string, number>()
  readonly conflicts: string[] = []

  accept (items: Item[]): { custody: Custody[] } {
    for (const it of items) {
      const k = key(it.origin, it.counter)
      const had = this.items.get(k)
      if (had !== undefined) {
        if (Buffer.compare(had.body, it.body) !== 0) this.conflicts.push(k)
        continue
      }
      this.items.set(k, { ...it, body: it.body.slice() })
      this.stored.set(k, (this.stored.get(k) ?? 0) + 1)
      this.held.add(it.origin, it.counter)
    }
    const origins = new Map<string, number[]>()
    for (const it of items) origins.set(it.origin, [...(origins.get(it.origin) ?? []), it.counter])
    return { custody: [...origins].map(([o, c]) => this.held.custody(o, c)) }
  }
}

interface Agent {
  id: string
  upstream: string | null
  neighbours: string[]
  store: FakeOutbox | FakeSink
  core: Relay
  /** Bumped at each crash: work and frames of an older epoch are lost. */
  epoch: number
  up: boolean
  timerToken: number
  /** When its store's last operation is done: one writer, so operations apply in the order they were asked for. */
  diskFree: number
}

export interface LinkModel {
  loss: number
  duplicate: number
  /** Frame delay, uniform in [1, maxDelayMs]: reorders frames. */
  maxDelayMs: number
  /** Store operations take up to this long. */
  diskDelayMs: number
}

export class Chain {
  readonly random: () => number
  readonly agents = new Map<string, Agent>()
  now = 0
  private readonly queue = new EventQueue()
  link: LinkModel = { loss: 0, duplicate: 0, maxDelayMs: 20, diskDelayMs: 5 }
  /** Frames a third party sends: forged receipts. */
  forged = 0
  /** Every frame goes through the codec and a FrameReader, split at a random point. */
  framesEncoded = 0
  readonly enqueued: Item[] = []

  private readonly init: Partial<RelayInit>
  constructor (seed: number, init: Partial<RelayInit> = {}) {
    this.init = init
    this.random = rng(seed)
  }

  private newCore (): Relay {
    const r = rng(Math.floor(this.random() * 2 ** 31))
    return new Relay({ receiptTimeoutMs: 2_000, backoffMinMs: 200, backoffMaxMs: 5_000, ...this.init, random: r })
  }

  add (id: string, upstream: string | null, store: FakeOutbox | FakeSink): void {
    this.agents.set(id, { id, upstream, neighbours: [], store, core: this.newCore(), epoch: 0, up: true, timerToken: 0, diskFree: 0 })
  }

  /** Links a and b (both directions: a stream each way). */
  connect (a: string, b: string): void {
    this.agents.get(a)!.neighbours.push(b)
    this.agents.get(b)!.neighbours.push(a)
  }

  /** Points id at another next hop (the election moved the server role, as id sees it). */
  setUpstream (id: string, upstream: string | null): void {
    const a = this.agents.get(id)!
    a.upstream = upstream
    this.feed(a, { type: 'upstream', peer: upstream })
  }

  /** Feeds every agent its upstream and its connections. */
  start (): void {
    for (const a of this.agents.values()) this.boot(a)
  }

  private boot (a: Agent): void {
    this.feed(a, { type: 'upstream', peer: a.upstream })
    for (const n of a.neighbours) {
      const b = this.agents.get(n)!
      if (!b.up) continue
      this.feed(a, { type: 'connected', peer: n })
      this.feed(b, { type: 'connected', peer: a.id })
    }
  }

  at (delay: number, run: () => void): void {
    this.queue.at(this.now + delay, run)
  }

  enqueue (id: string, size: number): void {
    const a = this.agents.get(id)!
    const body = new Uint8Array(size)
    for (let i = 0; i < size; i++) body[i] = Math.floor(this.random() * 256)
    this.enqueued.push((a.store as FakeOutbox).enqueue(id, body, this.now))
    if (a.up) this.feed(a, { type: 'enqueued' })
  }

  /** Kills agent id: its core and every unfinished operation are lost; it comes back after downMs. */
  crash (id: string, downMs: number): void {
    const a = this.agents.get(id)!
    if (!a.up) return
    a.up = false
    a.epoch++
    for (const n of a.neighbours) {
      const b = this.agents.get(n)!
      if (b.up) this.feed(b, { type: 'disconnected', peer: id })
    }
    this.at(downMs, () => {
      a.up = true
      a.core = this.newCore()
      this.boot(a)
    })
  }

  feed (a: Agent, input: RelayInput): void {
    if (!a.up) return
    for (const o of a.core.handle(input, this.now)) this.act(a, o)
    const d = a.core.nextDeadline()
    if (d !== undefined) {
      const token = ++a.timerToken
      const epoch = a.epoch
      this.at(Math.max(0, d - this.now), () => {
        if (a.epoch === epoch && a.timerToken === token) this.feed(a, { type: 'timer' })
      })
    }
  }

  private disk (a: Agent, run: () => void): void {
    const epoch = a.epoch
    // The driver calls its store in the order the core asks: a forget asked before a persist is done before it.
    a.diskFree = Math.max(this.now, a.diskFree) + Math.floor(this.random() * (this.link.diskDelayMs + 1))
    this.at(a.diskFree - this.now, () => { if (a.epoch === epoch && a.up) run() })
  }

  private act (a: Agent, o: RelayOutput): void {
    switch (o.type) {
      case 'load':
        this.disk(a, () => {
          const r = (a.store as FakeOutbox).load(o.after, o.maxItems)
          this.feed(a, { type: 'loaded', request: o.request, items: r.items, more: r.more })
        })
        break
      case 'persist':
        this.disk(a, () => {
          const r = a.store.accept(o.items)
          // The answer comes a moment later: a crash in between loses the receipt, not the items.
          this.disk(a, () => this.feed(a, r === 'full' ? { type: 'refused', peer: o.peer, batch: o.batch, reason: 'full' } : { type: 'persisted', peer: o.peer, batch: o.batch, custody: r.custody }))
        })
        break
      case 'forget':
        this.disk(a, () => { (a.store as FakeOutbox).forget(o.custody) })
        break
      case 'send':
        if (o.message.type === 'offer') {
          const recent = this.offered.get(a.id) ?? []
          recent.push(o.message.batch)
          this.offered.set(a.id, recent.slice(-8))
        }
        this.send(a, o.peer, encodeFrame(o.message))
        break
      case 'event':
        break
    }
  }

  /** Carries a frame from a to peer over the lossy link; lost if either end crashes meanwhile. */
  send (a: Agent, peer: string, frame: Uint8Array, asPeer = a.id): void {
    const b = this.agents.get(peer)
    if (b === undefined || !b.up) return
    this.framesEncoded++
    const copies = this.random() < this.link.loss ? 0 : this.random() < this.link.duplicate ? 2 : 1
    const ea = a.epoch
    const eb = b.epoch
    for (let i = 0; i < copies; i++) {
      this.at(1 + Math.floor(this.random() * this.link.maxDelayMs), () => {
        if (a.epoch !== ea || b.epoch !== eb || !b.up) return
        const reader = new FrameReader()
        const cut = Math.floor(this.random() * frame.length)
        const bodies = [...reader.push(frame.subarray(0, cut)), ...reader.push(frame.subarray(cut))]
        for (const body of bodies) this.feed(b, { type: 'message', peer: asPeer, message: decodeFrame(body) })
      })
    }
  }

  /** Batch ids of each agent's latest offers (what an intruder sniffing the air would learn). */
  readonly offered = new Map<string, number[]>()

  /**
   * A third party (`intruder`) sends `victim` receipts for its latest offers,
   * claiming custody of everything of the given origins.
   */
  forge (intruder: string, victim: string, origins: string[]): void {
    const v = this.agents.get(victim)!
    for (const batch of this.offered.get(victim) ?? []) {
      this.forged++
      const frame = encodeFrame({ type: 'receipt', batch, custody: origins.map(origin => ({ origin, contiguous: 1_000_000, above: [] })) })
      this.send({ ...v, id: intruder, epoch: v.epoch } as Agent, victim, frame, intruder)
    }
  }

  /** Runs events up to time `until` (ms); returns how many ran. */
  run (until: number, maxEvents = 2_000_000): number {
    let n = 0
    while (n < maxEvents) {
      const e = this.queue.peek()
      if (e === undefined || e.time > until) break
      this.queue.pop()
      this.now = Math.max(this.now, e.time)
      e.run()
      n++
    }
    this.now = Math.max(this.now, until)
    return n
  }
}
