// The agent's event bus (Syncthing's model): components publish what
// happened, and the API, the logs and other components subscribe. A
// driver adds its own events by declaration merging:
//
//   declare module '../net/events.ts' {
//     interface MeshEvents { 'blocks:progress': { cid: string, have: number, total: number } }
//   }

/** Every event on the bus and the detail it carries. */
export interface MeshEvents {
  /** A connection to a peer opened (the first one, when several do). */
  'peer:connect': { peerId: string, remoteAddr: string, direction: 'inbound' | 'outbound' }
  /** The last connection to a peer closed. */
  'peer:disconnect': { peerId: string }
  /** A peer was found: on the LAN by mDNS, or configured. Addresses include /p2p/<id>. */
  'peer:discovery': { peerId: string, addrs: string[], via: 'mdns' | 'static' }
  /** This agent's listen addresses changed (an interface came or went). */
  'self:addresses': { addrs: string[] }
  /** A build was noted complete in the data directory (by `xo-mesh add`, `import`, a driver). */
  'build:added': { cid: string, name: string }
  /** A build was asked for (`xo-mesh fetch`, POST /fetch): the block exchange fetches what is missing. */
  'build:fetch': { cid: string, priority: number }
  /** The block exchange gave up on a build (its record or manifest is not what its CID names). */
  'build:failed': { cid: string, reason: string }
  /** A build should be held here (an advisory targets this laptop): the block exchange fetches it. maxBytes: its signed size. */
  'build:want': { cid: string, priority: number, maxBytes: number }
}

export type Unsubscribe = () => void

/**
 * A typed, synchronous publish/subscribe bus. A listener that throws does not
 * stop the others: the error goes to `onError` (the agent logs it).
 */
export class EventBus<E extends object = MeshEvents> {
  private readonly listeners = new Map<keyof E, Set<(detail: never) => void>>()
  private readonly anyListeners = new Set<(name: keyof E & string, detail: E[keyof E]) => void>()
  private readonly onError: (name: string, err: unknown) => void

  constructor (onError: (name: string, err: unknown) => void = () => {}) {
    this.onError = onError
  }

  /** Calls `fn` for every `name` event until the returned function is called. */
  on<K extends keyof E> (name: K, fn: (detail: E[K]) => void): Unsubscribe {
    let set = this.listeners.get(name)
    if (set === undefined) this.listeners.set(name, set = new Set())
    set.add(fn as (detail: never) => void)
    return () => { set.delete(fn as (detail: never) => void) }
  }

  /** Calls `fn` for every event of any name, after that name's own listeners (the dashboard's recent events). */
  onAny (fn: (name: keyof E & string, detail: E[keyof E]) => void): Unsubscribe {
    this.anyListeners.add(fn)
    return () => { this.anyListeners.delete(fn) }
  }

  /** Calls every listener of `name` now, in subscription order, then those of onAny. */
  emit<K extends keyof E> (name: K, detail: E[K]): void {
    const set = this.listeners.get(name)
    for (const fn of [...(set ?? [])]) {
      try {
        (fn as (detail: E[K]) => void)(detail)
      } catch (err) {
        this.onError(String(name), err)
      }
    }
    for (const fn of [...this.anyListeners]) {
      try {
        fn(name as keyof E & string, detail)
      } catch (err) {
        this.onError(String(name), err)
      }
    }
  }

  /** Number of listeners of `name` (tests). */
  listenerCount (name: keyof E): number {
    return this.listeners.get(name)?.size ?? 0
  }
}
