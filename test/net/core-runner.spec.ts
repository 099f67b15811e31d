import assert from 'node:assert/strict'
import { CoreRunner } from '../../src/net/core-runner.ts'
import { createLogger } from '../../src/net/logger.ts'
import type { Core } from '../../src/core/core.ts'

type In = { type: 'n', n: number } | { type: 'timer' } | { type: 'boom' }
type Out = { type: 'echo', n: number } | { type: 'bad' }

/** A core that echoes what it is fed, throws on `boom`, and wants a timer `deadlineIn` ms after each input. */
class Echo implements Core<In, Out> {
  seen: Array<{ input: In, nested: boolean }> = []
  handling = false
  deadline: number | undefined
  deadlineIn: number | undefined
  handle (input: In, now: number): Out[] {
    this.seen.push({ input, nested: this.handling })
    this.handling = true
    try {
      if (input.type === 'boom') throw new Error('boom')
      this.deadline = this.deadlineIn === undefined ? undefined : now + this.deadlineIn
      return input.type === 'n' ? [{ type: 'echo', n: input.n }, { type: 'bad' }] : []
    } finally {
      this.handling = false
    }
  }

  nextDeadline (): number | undefined { return this.deadline }
}

function runner (core: Echo, act: (o: Out, r: CoreRunner<In, Out>) => void): { r: CoreRunner<In, Out>, errors: string[] } {
  const errors: string[] = []
  const log = createLogger({ level: 'error', sink: { write: (l: string) => { errors.push(l) }, close () {} } })
  const r: CoreRunner<In, Out> = new CoreRunner<In, Out>({ name: 'test', core, act: o => { act(o, r) }, now: () => performance.now(), timer: { type: 'timer' }, log })
  return { r, errors }
}

describe('CoreRunner (src/net/core-runner.ts)', () => {
  it('handles an input caused by an action after the one being handled, never inside it, in order', () => {
    const core = new Echo()
    const { r } = runner(core, (o, r) => {
      if (o.type === 'echo' && o.n < 3) {
        r.input({ type: 'n', n: o.n + 10 })
        r.enqueue({ type: 'n', n: o.n + 20 })
      }
    })
    r.input({ type: 'n', n: 1 })
    assert.deepEqual(core.seen.map(s => s.input.type === 'n' ? s.input.n : s.input.type), [1, 11, 21])
    assert.ok(core.seen.every(s => !s.nested))
    assert.equal(r.pumping, false)
  })

  it('logs what the core or an action throws and goes on with the next input and output', () => {
    const core = new Echo()
    const acted: Out[] = []
    const { r, errors } = runner(core, o => {
      if (o.type === 'bad') throw new Error('cannot')
      acted.push(o)
    })
    r.input({ type: 'boom' })
    r.input({ type: 'n', n: 5 })
    assert.deepEqual(acted, [{ type: 'echo', n: 5 }])
    assert.equal(errors.length, 2)
    assert.match(errors[0]!, /the test core threw/)
    assert.match(errors[1]!, /carrying out test output failed/)
  })

  it('feeds the timer input at the core\'s deadline, and no more once stopped', async () => {
    const core = new Echo()
    core.deadlineIn = 20
    const { r } = runner(core, () => {})
    r.input({ type: 'n', n: 1 })
    await new Promise(resolve => setTimeout(resolve, 80))
    const timers = core.seen.filter(s => s.input.type === 'timer').length
    assert.ok(timers >= 1, 'the deadline fed a timer input')
    r.stop()
    const before = core.seen.length
    await new Promise(resolve => setTimeout(resolve, 80))
    assert.equal(core.seen.length, before, 'no timer after stop')
    // inputs are still handled after stop (a stopping driver reports its peers gone)
    r.input({ type: 'n', n: 2 })
    assert.equal(core.seen.length, before + 1)
  })
})
