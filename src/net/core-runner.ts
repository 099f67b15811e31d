// Running a sans-IO core (src/core/core.ts) inside the agent: the loop every
// synchronous driver shared, in one place.
//
// Inputs are handled one at a time, in the order they came: an input that
// arrives while one is being handled (an output acted on at once may cause
// one: a write that fails, a frame that was waiting) is queued behind it, never
// handled inside it, so the core never sees a call within a call. After the
// queue empties, one timer is set at the core's next deadline; it feeds
// `timer`. Whatever the core or an action throws is logged, never raised:
// one bad input must not stop the protocol.
import type { Core } from '../core/core.ts'
import type { Logger } from './logger.ts'

export interface CoreRunnerInit<In, Out> {
  /** The protocol's name in the logs ("the exchange core threw"). */
  name: string
  core: Core<In, Out>
  /** Carries out one output; called in the order the core returned them. */
  act: (output: Out) => void
  /** The core's clock: monotonic milliseconds. */
  now: () => number
  /** The input a deadline feeds. */
  timer: In
  log: Logger
}

export class CoreRunner<In extends { type: string }, Out extends { type: string }> {
  /** True while an input is being handled: an input given now waits behind it. */
  pumping = false
  private readonly init: CoreRunnerInit<In, Out>
  private readonly queue: In[] = []
  private timer: NodeJS.Timeout | undefined
  private timerAt: number | undefined
  private stopped = false

  constructor (init: CoreRunnerInit<In, Out>) {
    this.init = init
  }

  /** Handles an input (after the ones queued), carries out the outputs, sets the timer. */
  input (input: In): void {
    this.queue.push(input)
    if (this.pumping) return
    this.pumping = true
    try {
      for (let i = this.queue.shift(); i !== undefined; i = this.queue.shift()) {
        let outputs: Out[]
        try {
          outputs = this.init.core.handle(i, this.init.now())
        } catch (err) {
          this.init.log.error(`the ${this.init.name} core threw`, { input: i.type, error: err, stack: (err as Error).stack })
          continue
        }
        for (const o of outputs) {
          try {
            this.init.act(o)
          } catch (err) {
            this.init.log.error(`carrying out ${this.init.name} output failed`, { output: o.type, error: err, stack: (err as Error).stack })
          }
        }
      }
    } finally {
      this.pumping = false
    }
    this.arm()
  }

  /** Queues an input for the pump now running (an action's result that must follow it), or handles it at once. */
  enqueue (input: In): void {
    if (this.pumping) this.queue.push(input)
    else this.input(input)
  }

  /** No more timers (inputs are still handled: a stopping driver reports its peers gone). */
  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = undefined
  }

  private arm (): void {
    if (this.stopped) return
    const d = this.init.core.nextDeadline()
    if (d === undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.timerAt = undefined
      return
    }
    if (this.timer !== undefined && this.timerAt === d) return
    clearTimeout(this.timer)
    this.timerAt = d
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.timerAt = undefined
      this.input(this.init.timer)
    }, Math.max(1, Math.ceil(d - this.init.now())))
    this.timer.unref()
  }
}
