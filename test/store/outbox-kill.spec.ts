// The outbox under SIGKILL: a real child process works on an outbox and is
// killed at random moments; after each kill the outbox opens, and every item
// the child had acknowledged is there (or was forgotten after its ack),
// every custody it gave is remembered, and no counter is handed out twice.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Outbox } from '../../src/store/outbox.ts'
import { openDatabase } from '../../src/store/sqlite.ts'
import { rng } from '../core/mesh.ts'

const SELF = '12D3KooWSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1fSe1f'
const PEER = '12D3KooWPeerPeerPeerPeerPeerPeerPeerPeerPeerPeer'
const CHILD = new URL('./outbox-child.ts', import.meta.url).pathname
const KILLS = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== '' ? 40 : 6

interface Acks { own: Set<number>, forgotUpTo: number, accepted: Set<number> }

async function runAndKill (dataDir: string, afterReadyMs: number): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir, SELF, PEER], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const closed = new Promise<void>(resolve => child.on('close', () => { resolve() }))
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const before = out.length
      out += d.toString()
      if (before === 0 || !out.slice(0, before).includes('ready\n')) {
        if (out.includes('ready\n')) setTimeout(() => { child.kill('SIGKILL'); resolve() }, afterReadyMs)
      }
    })
    child.on('close', code => { reject(new Error(`child ended by itself (${code}): ${err}`)) })
  })
  await closed
  // The last line may be cut by the kill: only whole lines are acknowledgements.
  return out.split('\n').slice(0, -1)
}

describe('outbox under SIGKILL', function () {
  this.timeout(120_000)
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'xo-outbox-kill-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it(`loses no acknowledged item at ${KILLS} random kill moments`, async () => {
    const seed = Number(process.env.XO_MESH_SEED ?? Date.now() % 100_000)
    const random = rng(seed)
    const acks: Acks = { own: new Set(), forgotUpTo: 0, accepted: new Set() }
    let highestOwn = 0
    for (let k = 0; k < KILLS; k++) {
      const lines = await runAndKill(dir, 20 + Math.floor(random() * 400))
      for (const l of lines) {
        const [op, ...rest] = l.split(' ')
        if (op === 'e') acks.own.add(Number(rest[0]))
        else if (op === 'a') for (const c of rest.slice(1)) acks.accepted.add(Number(c))
        else if (op === 'F') acks.forgotUpTo = Math.max(acks.forgotUpTo, Number(rest[1]))
      }
      const db = openDatabase(join(dir, 'outbox.db'))
      assert.equal((db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok', `seed ${seed}`)
      const present = new Set((db.prepare('SELECT counter FROM items WHERE origin = ?').all(SELF) as Array<{ counter: number }>).map(r => r.counter))
      db.close()
      const o = Outbox.open(dir)
      for (const c of acks.own) {
        if (c > acks.forgotUpTo) assert.ok(present.has(c), `own item ${c} was acknowledged, not forgotten, and is gone (seed ${seed}, kill ${k})`)
        assert.ok(o.lastCounter(SELF) >= c, `own counter ${c} not remembered (seed ${seed})`)
      }
      for (const c of acks.accepted) assert.ok(o.holds(PEER, c), `custody of ${PEER} ${c} was given and is lost (seed ${seed}, kill ${k})`)
      o.close()
      const most = Math.max(0, ...acks.own)
      assert.ok(most >= highestOwn)
      highestOwn = most
    }
    assert.ok(acks.own.size > 10, `the child did some work (${acks.own.size} items; seed ${seed})`)
    // The next counter is past every one ever acknowledged.
    const o = Outbox.open(dir)
    assert.ok(o.enqueue(SELF, 'statistics', new Uint8Array(1), 0).counter > highestOwn)
    o.close()
  })
})
