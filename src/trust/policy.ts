// What a laptop trusts and the rules for changing it. Pure functions over a
// TrustState value: the caller persists the state a function returns (store.ts,
// atomic) BEFORE it acts on anything in it (TUF 5: trusted metadata reaches
// non-volatile storage before use; go-tuf's CVE-2022-29173 was this missing).
//
// The rules for an advisory snapshot, in order:
//   1. the clock: never earlier than the highest clock ever seen (Uptane);
//   2. roots carried with it are walked first (rotation, catch-up);
//   3. the trusted root must not have expired;
//   4. signatures: a threshold of distinct keys the trusted root names for
//      the advisory role (arbitrary installation, mix-and-match);
//   5. the version: strictly above the highest ever trusted (rollback,
//      replay), and at most MAX_VERSION_JUMP above it (fast-forward);
//   6. the expiry: after the clock (indefinite freeze).
// A verified snapshot raises the clock floor to its `issued` time: a laptop
// whose clock was reset learns that time has passed from signed data only.
import { sameRole, walkRoots, type Root } from './root.ts'
import { openSnapshot, type Snapshot } from './snapshot.ts'
import { reject, type Rejection, type RejectionCode } from './errors.ts'
import { MAX_VERSION_JUMP } from './limits.ts'

export interface TrustState {
  root: Root
  /** The snapshot in force, if any. */
  snapshot?: Snapshot
  /** The highest snapshot version ever trusted; only a rotation of the advisory keys resets it. */
  floor: number
  /** The highest wall clock (ms since the epoch) ever seen. */
  clock: number
  /** Every root version trusted, oldest first, as signed envelopes: served to laptops that are behind. */
  chain: Uint8Array[]
  /** The provisioned root key the state started from, when it started from a key rather than a root document. */
  anchor?: Uint8Array
}

/** A fresh laptop's state: provisioned with a root document, or with the root key alone (anchorRoot). */
export function initialState (root: Root): TrustState {
  if (root.doc.version === 0) return { root, floor: 0, clock: 0, chain: [], anchor: root.doc.keys[root.doc.roles.root.keyids[0]!]! }
  return { root, floor: 0, clock: 0, chain: [root.bytes] }
}

export interface RootUpdate {
  state: TrustState
  adopted: Root[]
  rejections: Rejection[]
  /** Set when the advisory keys changed and the snapshot in force was dropped. */
  dropped?: string
}

/**
 * Walks the candidate roots from the trusted one. When the new root names
 * other advisory keys, the snapshot in force and the version floor are
 * dropped (TUF's recovery from a fast-forward by a compromised key): only
 * snapshots signed by the new keys count from then on.
 */
export function acceptRoots (state: TrustState, roots: Uint8Array[], now: number): RootUpdate {
  const clock = Math.max(state.clock, now)
  const walk = walkRoots(state.root, roots)
  const chain = walk.adopted.length > 0 ? [...state.chain, ...walk.adopted.map(a => a.bytes)] : state.chain
  let next: TrustState = { ...state, root: walk.root, clock, chain }
  let dropped: string | undefined
  const held = state.floor > 0 || state.snapshot !== undefined
  if (held && walk.adopted.length > 0 && !sameRole(state.root.doc, walk.root.doc, 'advisory')) {
    dropped = `advisory keys rotated in root v${walk.root.doc.version}: snapshot v${state.snapshot?.doc.version ?? 0} and version floor ${state.floor} dropped`
    next = { root: walk.root, floor: 0, clock, chain }
  }
  return { state: next, adopted: walk.adopted, rejections: walk.rejections, ...(dropped !== undefined ? { dropped } : {}) }
}

export interface Accepted {
  ok: true
  state: TrustState
  snapshot: Snapshot
  /** False when the bytes are the snapshot already in force (nothing to persist or do). */
  changed: boolean
  roots: RootUpdate
}

export interface Refused extends Rejection {
  /** The state to persist anyway: roots walked and the clock seen are kept even when the snapshot is refused. */
  state: TrustState
  roots: RootUpdate
}

function refuse (roots: RootUpdate, state: TrustState, code: RejectionCode, reason: string): Refused {
  return { ...reject(code, reason), state, roots }
}

/**
 * Decides on an advisory snapshot (envelope bytes) that came with `roots`
 * (signed roots, any versions, any order) at wall-clock `now` (ms). Never
 * throws; on refusal nothing of the snapshot is in the returned state.
 */
export function acceptSnapshot (state: TrustState, bytes: Uint8Array, roots: Uint8Array[], now: number): Accepted | Refused {
  const r = acceptRoots(state, roots, now)
  const s = r.state
  if (s.root.doc.expires <= s.clock) return refuse(r, s, 'root-expired', `the trusted root v${s.root.doc.version} expired at ${iso(s.root.doc.expires)} (clock ${iso(s.clock)}): a newer root is needed`)
  const opened = openSnapshot(s.root, bytes)
  if ('ok' in opened) return refuse(r, s, opened.code, opened.reason)
  const { doc } = opened
  if (s.snapshot !== undefined && doc.version === s.snapshot.doc.version && opened.cid.equals(s.snapshot.cid)) {
    return { ok: true, state: s, snapshot: s.snapshot, changed: false, roots: r }
  }
  if (doc.version < s.floor) return refuse(r, s, 'rollback', `advisory snapshot v${doc.version} is older than v${s.floor}, already trusted`)
  if (doc.version === s.floor) return refuse(r, s, 'replay', `advisory snapshot v${doc.version} is the version already trusted, with other bytes`)
  if (doc.version > s.floor + MAX_VERSION_JUMP) return refuse(r, s, 'fast-forward', `advisory snapshot v${doc.version} jumps more than ${MAX_VERSION_JUMP} above v${s.floor}`)
  if (doc.expires <= s.clock) return refuse(r, s, 'expired', `advisory snapshot v${doc.version} expired at ${iso(doc.expires)} (clock ${iso(s.clock)})`)
  const next: TrustState = { ...s, snapshot: opened, floor: doc.version, clock: Math.max(s.clock, doc.issued) }
  return { ok: true, state: next, snapshot: opened, changed: true, roots: r }
}

/** Whether the snapshot in force may still be used at `now` (it may expire while held). */
export function snapshotInForce (state: TrustState, now: number): Snapshot | Rejection {
  const clock = Math.max(state.clock, now)
  if (state.snapshot === undefined) return reject('malformed', 'no advisory snapshot is trusted yet')
  if (state.root.doc.expires <= clock) return reject('root-expired', `the trusted root v${state.root.doc.version} expired at ${iso(state.root.doc.expires)}`)
  if (state.snapshot.doc.expires <= clock) return reject('expired', `advisory snapshot v${state.snapshot.doc.version} expired at ${iso(state.snapshot.doc.expires)}`)
  return state.snapshot
}

function iso (ms: number): string {
  return ms >= 8.64e15 ? 'never' : new Date(ms).toISOString()
}
