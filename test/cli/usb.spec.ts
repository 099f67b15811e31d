// `xo-mesh usb DIR` as a user runs it, with no agent on either data
// directory (the command then works on the directory itself, holding its
// lock): the school writes the stick, the mothership (role: mothership in
// its config) answers, the school takes the receipt; a wrong
// relay.mothership refuses it and keeps the items.
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tempDir } from '../support/cli.ts'
import { xo } from '../agent/support.ts'
import { Outbox } from '../../src/store/outbox.ts'
import { encodeReport } from '../../src/store/reports.ts'

async function identity (dataDir: string): Promise<string> {
  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true })
  await writeFile(join(dataDir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}

describe('xo-mesh usb', function () {
  this.timeout(120_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  before(async () => { t = await tempDir('xo-mesh-usb-cli-') })
  after(async () => { await t.cleanup() })

  it('carries a school\'s outbox to the mothership and the signed receipt back', async () => {
    const school = join(t.dir, 'school')
    const mothership = join(t.dir, 'mothership')
    const stick = join(t.dir, 'stick')
    await mkdir(stick)
    const schoolId = await identity(school)
    const mothershipId = await identity(mothership)
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await writeFile(join(mothership, 'config.yaml'), 'role: mothership\n')
    const config = (m: string): string => `advisory:\n  school: Escuela 9\nrelay:\n  mothership: ${m}\n`
    await writeFile(join(school, 'config.yaml'), config(stranger))
    const outbox = Outbox.open(school)
    for (let k = 1; k <= 12; k++) outbox.enqueue(schoolId, 'statistics', encodeReport({ school: 'Escuela 9', sampled_at: k }), Date.now())
    outbox.close()
    const usb = async (data: string): Promise<Record<string, unknown>> => {
      const r = await xo(['--data', data, '--json', 'usb', stick], { timeoutMs: 60_000 })
      assert.equal(r.code, 0, r.stderr)
      return JSON.parse(r.stdout) as Record<string, unknown>
    }
    const first = await usb(school) as { role: string, written: { items: number } }
    assert.deepEqual([first.role, first.written.items], ['school', 12])
    const m = await usb(mothership) as { role: string, schools: Array<{ from: string, status: string, added: number }> }
    assert.deepEqual(m.schools.map(s => [s.from, s.status, s.added]), [[schoolId, 'answered', 12]])
    // relay.mothership names someone else: the genuine receipt is not believed
    const refused = await usb(school) as { receipt: { status: string }, written: { items: number } }
    assert.equal(refused.receipt.status, 'refused')
    assert.equal(refused.written.items, 12)
    await writeFile(join(school, 'config.yaml'), config(mothershipId))
    await usb(mothership)
    const home = await usb(school) as { receipt: { status: string, forgotten: number }, written: { items: number } }
    assert.deepEqual([home.receipt.status, home.receipt.forgotten, home.written.items], ['accepted', 12, 0])
    const report = await xo(['--data', mothership, 'report'])
    assert.match(report.stdout, /Escuela 9\s+1\s/)
    const human = await xo(['--data', school, 'usb', stick])
    assert.match(human.stdout, /wrote the outbox \(0 items/)
  })
})
