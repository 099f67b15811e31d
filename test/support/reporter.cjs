// The spec reporter, closed by the one line CI reads: "N passed, N failed, N skipped".
'use strict'
const Mocha = require('mocha')
const { EVENT_RUN_END } = Mocha.Runner.constants

class Reporter extends Mocha.reporters.Spec {
  constructor (runner, options) {
    super(runner, options)
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats ?? {}
      // registered after the spec reporter's epilogue, so it prints last
      console.log(`\n${s.passes ?? 0} passed, ${s.failures ?? 0} failed, ${s.pending ?? 0} skipped`)
    })
  }
}
module.exports = Reporter
