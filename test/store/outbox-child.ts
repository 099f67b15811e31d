// A child for outbox-kill.spec.ts: works on an outbox as fast as it can and
// writes a line to stdout after each call returns (the acknowledgement the
// parent trusts), until it is killed.
//   e <counter>            enqueued an own item
//   a <origin> <counter>…  accepted a batch (custody given)
//   F <origin> <upTo>      about to forget own items up to upTo (written before the call:
//                          a forget may commit and the kill come before its ack)
//   f <origin> <upTo>      forgot them
import { writeSync } from 'node:fs'
import { Outbox } from '../../src/store/outbox.ts'

const [dataDir, self, peer] = process.argv.slice(2) as [string, string, string]
const o = Outbox.open(dataDir)
const say = (line: string): void => { writeSync(1, line + '\n') }
// Where the peer's items stand: continue past whatever is held.
let peerCounter = 0
while (o.holds(peer, peerCounter + 1)) peerCounter++
say('ready')
for (let i = 0; ; i++) {
  const own = o.enqueue(self, 'statistics', new Uint8Array(200 + (i % 50)), i)
  say(`e ${own.counter}`)
  const batch = Array.from({ length: 1 + (i % 16) }, (_, k) => ({ origin: peer, counter: peerCounter + 1 + k, kind: 'backup-chunk' as const, created: i, body: new Uint8Array(100) }))
  // Every fifth batch repeats the previous one: a duplicate offer.
  const offered = i % 5 === 4 ? batch.map(b => ({ ...b, counter: b.counter - batch.length })).filter(b => b.counter >= 1) : batch
  const r = o.accept(offered)
  if (r.ok) {
    say(`a ${peer} ${offered.map(b => b.counter).join(' ')}`)
    if (i % 5 !== 4) peerCounter += batch.length
  }
  if (i % 7 === 6 && own.counter > 3) {
    say(`F ${self} ${own.counter - 3}`)
    o.forget([{ origin: self, contiguous: own.counter - 3, above: [] }])
    say(`f ${self} ${own.counter - 3}`)
  }
}
