// A process that simulates parts of a scenario for sim/parts.ts: it takes a
// group, simulates it in an engine of its own and sends back the part's
// result, until told to stop. One engine at a time, so its heap is one
// school's, not the district's.
import { simulate } from './run.ts'
import type { ChildMessage, ParentMessage } from './parts.ts'

const send = (m: ChildMessage): void => { process.send!(m) }

process.on('message', (m: ParentMessage) => {
  if (m.type === 'stop') {
    process.disconnect()
    return
  }
  try {
    const { part } = simulate(m.scenario, { progress: (now, events) => send({ type: 'progress', part: m.part, now, events }) }, m.part)
    const cpu = process.cpuUsage()
    send({ type: 'part', result: part, maxRssMiB: process.resourceUsage().maxRSS / 1024, cpuS: (cpu.user + cpu.system) / 1e6 })
  } catch (err) {
    send({ type: 'error', part: m.part, message: (err as Error).stack ?? String(err) })
  }
})
