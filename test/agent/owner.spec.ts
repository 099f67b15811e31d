// The owner's X25519 key: made once on first boot (0600), read back the same,
// usable for a Diffie-Hellman with another X25519 key; a corrupt file is an
// error, never silently replaced; retiring it keeps the old key aside.
import assert from 'node:assert/strict'
import { diffieHellman, generateKeyPairSync } from 'node:crypto'
import { readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { OWNER_KEY_FILE, loadOrCreateOwnerKey, ownerPublicKeyObject, retireOwnerKey } from '../../src/agent/owner.ts'

describe('owner key', () => {
  let t: Awaited<ReturnType<typeof tempDir>>
  beforeEach(async () => { t = await tempDir('xo-mesh-owner-') })
  afterEach(async () => { await t.cleanup() })

  it('is made once, mode 0600, and read back the same', async () => {
    const a = await loadOrCreateOwnerKey(t.dir)
    assert.equal(a.created, true)
    assert.equal(a.publicKey.length, 32)
    assert.equal((await stat(join(t.dir, OWNER_KEY_FILE))).mode & 0o777, 0o600)
    const b = await loadOrCreateOwnerKey(t.dir)
    assert.equal(b.created, false)
    assert.deepEqual(b.publicKey, a.publicKey)
    // a sender who knows only the public key agrees on a secret with the owner
    const eph = generateKeyPairSync('x25519')
    const s1 = diffieHellman({ privateKey: eph.privateKey, publicKey: ownerPublicKeyObject(a.publicKey) })
    const s2 = diffieHellman({ privateKey: b.privateKey, publicKey: eph.publicKey })
    assert.deepEqual(s1, s2)
  })

  it('two first boots at once end with one key', async () => {
    const [a, b] = await Promise.all([loadOrCreateOwnerKey(t.dir), loadOrCreateOwnerKey(t.dir)])
    assert.deepEqual(a.publicKey, b.publicKey)
    assert.deepEqual((await readdir(t.dir)).filter(n => n.includes('.tmp')), [])
  })

  it('refuses a corrupt key file rather than replacing the owner\'s key', async () => {
    await writeFile(join(t.dir, OWNER_KEY_FILE), 'not a key')
    await assert.rejects(loadOrCreateOwnerKey(t.dir), /owner's key/)
  })

  it('retiring keeps the old key aside and the next load makes a new one', async () => {
    const a = await loadOrCreateOwnerKey(t.dir)
    const aside = await retireOwnerKey(t.dir)
    assert.ok(aside !== undefined && (await readdir(t.dir)).some(n => n.startsWith('owner.key.retired-')))
    const b = await loadOrCreateOwnerKey(t.dir)
    assert.equal(b.created, true)
    assert.notDeepEqual(b.publicKey, a.publicKey)
  })
})
