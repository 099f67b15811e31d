// The engine has one slot for a protocol beside the exchange (election.ts's
// ElectionModel: told of nodes and links, carries messages, one deadline per
// node). Protocols fills it with the election and the advisory at once, so
// the advisory needs nothing of the engine it does not already give the
// election: messages are told apart by type, the deadline is the earlier of
// the two, and each is woken only when its own deadline is due.
import type { ElectionModel } from '../election.ts'
import { AdvisoryFrame, type SimAdvisory } from './model.ts'

export class Protocols implements ElectionModel {
  readonly name: string
  readonly election: ElectionModel | undefined
  readonly advisory: SimAdvisory

  constructor (election: ElectionModel | undefined, advisory: SimAdvisory) {
    this.election = election
    this.advisory = advisory
    this.name = election?.name ?? 'advisory'
  }

  up (node: number, now: number): void {
    this.election?.up(node, now)
    this.advisory.up(node)
  }

  down (node: number, now: number): void {
    this.election?.down(node, now)
  }

  connected (a: number, b: number, now: number): void {
    this.election?.connected(a, b, now)
    this.advisory.connected(a, b)
  }

  disconnected (a: number, b: number, now: number): void {
    this.election?.disconnected(a, b, now)
    this.advisory.disconnected(a, b)
  }

  message (to: number, from: number, message: unknown, now: number): void {
    if (message instanceof AdvisoryFrame) this.advisory.message(to, from, message)
    else this.election?.message(to, from, message, now)
  }

  timer (node: number, now: number): void {
    const el = this.election
    if (el !== undefined && (el.nextDeadline(node) ?? Infinity) <= now) el.timer(node, now)
    if ((this.advisory.nextDeadline(node) ?? Infinity) <= now) this.advisory.timer(node)
  }

  nextDeadline (node: number): number | undefined {
    const a = this.election?.nextDeadline(node)
    const b = this.advisory.nextDeadline(node)
    return a === undefined ? b : b === undefined ? a : Math.min(a, b)
  }

  serverOf (node: number): number | undefined {
    return this.election?.serverOf(node)
  }
}
