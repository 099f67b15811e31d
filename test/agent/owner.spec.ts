// The owner key: made once per data directory (0600), exported as text with
// check digits, imported on a fresh laptop; a mistyped key, or one that
// would silently replace another, is refused.
import assert from 'node:assert/strict'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { OWNER_KEY_FILE, OwnerKeyError, decodeOwnerKey, encodeOwnerKey, generateOwnerKey, importOwnerKey, loadOrCreateOwnerKey, loadOwnerKey, retireOwnerKey } from '../../src/agent/owner.ts'

describe('owner key', () => {
  it('is made once, kept private, and survives export and import', async () => {
    const t = await tempDir('xo-mesh-owner-')
    try {
      const a = join(t.dir, 'a')
      const b = join(t.dir, 'b')
      await Promise.all([a, b].map(async d => { await (await import('node:fs/promises')).mkdir(d) }))
      assert.equal(await loadOwnerKey(a), undefined)
      const [k1, k2] = await Promise.all([loadOrCreateOwnerKey(a), loadOrCreateOwnerKey(a)])
      assert.deepEqual(k1.privateKey, k2.privateKey, 'two first starts at once agree on one key')
      assert.equal([k1.created, k2.created].filter(Boolean).length, 1)
      assert.equal((await stat(join(a, OWNER_KEY_FILE))).mode & 0o777, 0o600)
      const text = encodeOwnerKey(k1)
      assert.equal((await readFile(join(a, OWNER_KEY_FILE), 'utf8')).trim(), text)
      const { key, replaced } = await importOwnerKey(b, `  ${text}\n`)
      assert.equal(replaced, false)
      assert.deepEqual(key.publicKey, k1.publicKey)
      assert.deepEqual((await loadOwnerKey(b))?.publicKey, k1.publicKey)
      // another key does not replace it unless forced
      const other = encodeOwnerKey(generateOwnerKey())
      await assert.rejects(importOwnerKey(b, other), OwnerKeyError)
      assert.equal((await importOwnerKey(b, other, { force: true })).replaced, true)
      // a mistyped key
      const typo = text.slice(0, 20) + (text[20] === 'A' ? 'B' : 'A') + text.slice(21)
      assert.throws(() => decodeOwnerKey(typo), /check digits/)
      assert.throws(() => decodeOwnerKey('xo-mesh-owner-1:short:00000000'), OwnerKeyError)
      await writeFile(join(b, OWNER_KEY_FILE), 'garbage')
      await assert.rejects(loadOwnerKey(b), OwnerKeyError)
    } finally {
      await t.cleanup()
    }
  })

  it('retiring a clone\'s key keeps it aside, and the next load makes a new one', async () => {
    const t = await tempDir('xo-mesh-owner-')
    try {
      const a = await loadOrCreateOwnerKey(t.dir)
      const aside = await retireOwnerKey(t.dir)
      assert.ok(aside !== undefined && (await readdir(t.dir)).some(n => n.startsWith(`${OWNER_KEY_FILE}.retired-`)))
      assert.equal(encodeOwnerKey(decodeOwnerKey(await readFile(aside, 'utf8'))), encodeOwnerKey(a), 'the retired file still opens the old backups')
      const b = await loadOrCreateOwnerKey(t.dir)
      assert.equal(b.created, true)
      assert.notDeepEqual(b.publicKey, a.publicKey)
      assert.equal(await retireOwnerKey(join(t.dir, 'none')), undefined)
    } finally {
      await t.cleanup()
    }
  })
})
