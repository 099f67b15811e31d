// The election core, peer by peer: the capability order, stickiness and the
// hold time, partitions and merges, and hostile input (forged claims, replays,
// absurd terms, malformed frames) that must not move the election.
import assert from 'node:assert/strict'
import { Election, checksumAuthenticator, encodeClaim, signedPayload } from '../../src/core/election/index.ts'
import type { Capability, Claim, ElectionOutput, SignedClaim } from '../../src/core/election/index.ts'
import { ElectionMesh, rng } from './election-mesh.ts'

const H = 2000
const F = 7000
const CONVERGENCE = 2 * H + F

function cap (over: Partial<Capability> = {}): Capability {
  return { pinned: false, upstream: false, ac: false, battery: 50, freeDiskMiB: 1000, uptimeS: 100, ...over }
}

function serverOf (mesh: ElectionMesh): string[] {
  return [...mesh.peers.keys()].filter(id => mesh.state(id)?.role === 'server')
}

function line (mesh: ElectionMesh, ids: string[]): void {
  for (let i = 1; i < ids.length; i++) mesh.link(ids[i - 1]!, ids[i]!)
}

describe('election core', () => {
  it('elects the best by capability: pinned, then upstream, then AC, then battery, then disk, then uptime, then peer id', () => {
    const cases: Array<[Partial<Capability>, Partial<Capability>]> = [
      [{ pinned: true, battery: 1 }, { upstream: true, ac: true, battery: 100 }],
      [{ upstream: true }, { ac: true, battery: 100 }],
      [{ ac: true, battery: 10 }, { battery: 100 }],
      [{ battery: 60 }, { battery: 59 }],
      [{ freeDiskMiB: 2000 }, { freeDiskMiB: 1999, uptimeS: 9999 }],
      [{ uptimeS: 101 }, {}],
      [{}, {}] // equal: the larger peer id wins, "b" > "a"
    ]
    for (const [better, worse] of cases) {
      const mesh = new ElectionMesh({ seed: 7 })
      const winner = Object.keys(better).length === 0 ? 'b' : 'a'
      mesh.add('a', cap(better))
      mesh.add('b', cap(worse))
      mesh.add('c', cap({ battery: 0, freeDiskMiB: 0, uptimeS: 0 }))
      line(mesh, ['a', 'c', 'b'])
      mesh.runUntil(CONVERGENCE)
      assert.deepEqual(serverOf(mesh), [winner], JSON.stringify([better, worse]))
      assert.equal(mesh.checkOneServer(), undefined)
    }
  })

  it('fails over within the failure timeout plus the settle time after the server crashes, and reports a role event', () => {
    const mesh = new ElectionMesh({ seed: 3, crashNoticed: 0 })
    const ids = ['a', 'b', 'c', 'd', 'e']
    ids.forEach((id, i) => mesh.add(id, cap({ battery: 10 + 10 * i })))
    line(mesh, ids)
    mesh.runUntil(CONVERGENCE)
    assert.deepEqual(serverOf(mesh), ['e'])
    assert.deepEqual(mesh.peer('a').roles.map(r => r.state), [{ role: 'peer', server: 'e', term: 1 }])
    mesh.crash('e')
    const t = mesh.now
    mesh.runUntil(t + CONVERGENCE)
    assert.deepEqual(serverOf(mesh), ['d'])
    assert.equal(mesh.checkOneServer(), undefined)
    const took = mesh.peer('d').roles.at(-1)!
    assert.deepEqual(took.state, { role: 'server', server: 'd', term: 2 })
    assert.ok(took.t - t <= F + 2000 + 200, `took the role ${took.t - t} ms after the crash`)
    assert.ok(took.t - t >= F - H, 'not before the lease could have run out')
  })

  it('keeps a sitting server when a slightly better peer joins, and hands over to a clearly better one only after the hold time', () => {
    const mesh = new ElectionMesh({ seed: 5, config: { holdMs: 20_000 } })
    mesh.add('a', cap({ battery: 50 }))
    mesh.add('b', cap({ battery: 40 }))
    mesh.link('a', 'b')
    mesh.runUntil(CONVERGENCE)
    assert.deepEqual(serverOf(mesh), ['a'])
    // better battery, but not by the margin: no change ever
    mesh.add('c', cap({ battery: 70 }))
    mesh.link('c', 'b')
    mesh.runUntil(mesh.now + 60_000)
    assert.deepEqual(serverOf(mesh), ['a'])
    assert.equal(mesh.peer('c').roles.filter(r => r.state.role === 'server').length, 0)
    // on AC: clearly better; takes over after the hold time, not before
    const t = mesh.now
    mesh.setCapability('c', cap({ battery: 70, ac: true }))
    mesh.runUntil(t + 19_000)
    assert.deepEqual(serverOf(mesh), ['a'])
    mesh.runUntil(t + 20_000 + 500)
    assert.deepEqual(serverOf(mesh), ['c'])
    assert.equal(mesh.checkOneServer(), undefined)
    assert.equal(mesh.state('a')!.term, 2)
  })

  it('elects on each side of a partition and leaves exactly one server after the merge', () => {
    const mesh = new ElectionMesh({ seed: 11 })
    const ids = ['a', 'b', 'c', 'd', 'e', 'f']
    ids.forEach((id, i) => mesh.add(id, cap({ battery: 10 * (i + 1) })))
    line(mesh, ids)
    mesh.runUntil(CONVERGENCE)
    assert.deepEqual(serverOf(mesh), ['f'])
    mesh.unlink('c', 'd')
    mesh.runUntil(mesh.now + CONVERGENCE)
    assert.deepEqual(serverOf(mesh).sort(), ['c', 'f'])
    assert.equal(mesh.checkOneServer(), undefined)
    mesh.link('c', 'd')
    mesh.runUntil(mesh.now + 500) // a merge settles in a few link delays
    assert.deepEqual(serverOf(mesh), ['f'])
    assert.equal(mesh.checkOneServer(), undefined)
  })

  it('rides out a link that flaps for less than the failure timeout', () => {
    const mesh = new ElectionMesh({ seed: 13 })
    const ids = ['a', 'b', 'c', 'd']
    ids.forEach((id, i) => mesh.add(id, cap({ battery: 10 * (i + 1) })))
    line(mesh, ids)
    mesh.runUntil(CONVERGENCE)
    const events = [...mesh.peers.values()].reduce((n, p) => n + p.roles.length, 0)
    for (let k = 0; k < 10; k++) {
      mesh.unlink('b', 'c')
      mesh.runUntil(mesh.now + 3000)
      mesh.link('b', 'c')
      mesh.runUntil(mesh.now + 3000)
    }
    assert.equal([...mesh.peers.values()].reduce((n, p) => n + p.roles.length, 0), events)
  })
})

// ---- hostile input ----------------------------------------------------------

/** A core for "v" with neighbours "x" (honest, the server) and "m" (the attacker), fed by hand. */
function victim (): { core: Election, now: number, outs: ElectionOutput[], claimOf: (c: Partial<Claim> & { peer: string }, signer?: string) => SignedClaim } {
  const core = new Election({ self: 'v', capability: cap({ battery: 10 }), authenticator: checksumAuthenticator('v'), random: rng(1), config: { startupGraceMs: 0 } })
  const outs: ElectionOutput[] = []
  const claimOf = (c: Partial<Claim> & { peer: string }, signer = c.peer): SignedClaim => {
    const claim: Claim = { incarnation: 1, seq: 1, capability: cap(), serving: false, term: 0, ...c }
    const bytes = encodeClaim(claim)
    return { claim, bytes, signature: checksumAuthenticator(signer).sign(signedPayload(bytes)), hops: 0, age: 0 }
  }
  let now = 0
  outs.push(...core.handle({ type: 'neighbour-up', peer: 'x' }, now))
  outs.push(...core.handle({ type: 'neighbour-up', peer: 'm' }, now))
  // x serves, term 3, on AC
  for (let seq = 1; seq <= 3; seq++) {
    now += 1000
    outs.push(...core.handle({ type: 'message', peer: 'x', message: { type: 'claims', claims: [claimOf({ peer: 'x', seq, serving: true, term: 3, capability: cap({ ac: true }) })] } }, now))
  }
  assert.deepEqual(core.state(), { role: 'peer', server: 'x', term: 3 })
  return { core, now, outs, claimOf }
}

describe('election core under hostile input', () => {
  it('ignores a claim about another peer that the other peer did not sign, and bans the sender', () => {
    const { core, now, claimOf } = victim()
    // m claims to be y, pinned and serving, signed with m's key
    const forged = claimOf({ peer: 'y', serving: true, term: 4, capability: cap({ pinned: true }) }, 'm')
    const outs = core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [forged] } }, now + 10)
    assert.deepEqual(core.state(), { role: 'peer', server: 'x', term: 3 })
    assert.ok(outs.some(o => o.type === 'ban' && o.peer === 'm'))
    assert.equal(core.claims().some(c => c.peer === 'y'), false)
    // and a claim of x's identity, better than x's own, from m
    const core2 = victim()
    const impersonation = core2.claimOf({ peer: 'x', seq: 99, serving: false, term: 3, capability: cap({ battery: 0 }) }, 'm')
    core2.core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [impersonation] } }, core2.now + 10)
    assert.deepEqual(core2.core.state(), { role: 'peer', server: 'x', term: 3 })
    assert.equal(core2.core.claims().find(c => c.peer === 'x')!.serving, true)
  })

  it('does not revive a departed server from a replayed claim', () => {
    const { core, claimOf } = victim()
    let now = 3000 + F + 100 // x's lease ran out
    core.handle({ type: 'timer' }, now)
    assert.equal(core.state().server, null)
    // m replays x's genuine claim of seq 2 (it kept a copy), fresh-looking: age 0
    core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [claimOf({ peer: 'x', seq: 2, serving: true, term: 3, capability: cap({ ac: true }) })] } }, now += 10)
    assert.equal(core.state().server, null)
    // and the settle time later v serves itself
    core.handle({ type: 'timer' }, now += 2100)
    assert.deepEqual(core.state(), { role: 'server', server: 'v', term: 4 })
  })

  it('drops a claim with an absurd term, and one too old to be alive', () => {
    const { core, now, claimOf } = victim()
    const absurd = claimOf({ peer: 'm', seq: 5, serving: true, term: 3 + 2_000_000, capability: cap({ ac: true, battery: 100 }) })
    core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [absurd] } }, now + 10)
    assert.deepEqual(core.state(), { role: 'peer', server: 'x', term: 3 })
    assert.equal(core.highestTerm(), 3)
    assert.equal(core.stats.claimsDropped, 1)
    const old = { ...claimOf({ peer: 'y', seq: 5, serving: true, term: 4, capability: cap({ pinned: true }) }), age: F }
    core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [old] } }, now + 20)
    assert.deepEqual(core.state(), { role: 'peer', server: 'x', term: 3 })
  })

  it('bans a neighbour that sends a malformed frame and ignores it until the ban ends', () => {
    const { core, now, claimOf } = victim()
    const outs = core.handle({ type: 'malformed', peer: 'm', reason: 'frame: zero length' }, now + 10)
    assert.ok(outs.some(o => o.type === 'ban' && o.peer === 'm'))
    core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [claimOf({ peer: 'm', seq: 9, serving: true, term: 4, capability: cap({ pinned: true }) })] } }, now + 20)
    assert.deepEqual(core.state(), { role: 'peer', server: 'x', term: 3 })
    assert.equal(core.neighbours().some(n => n.peer === 'm'), false)
  })

  it('limits the fresh claims one origin may push per heartbeat', () => {
    const { core, now, claimOf } = victim()
    let accepted = 0
    for (let seq = 1; seq <= 100; seq++) {
      const before = core.stats.claimsAccepted
      core.handle({ type: 'message', peer: 'm', message: { type: 'claims', claims: [claimOf({ peer: 'm', seq })] } }, now + seq)
      accepted += core.stats.claimsAccepted - before
    }
    assert.ok(accepted <= 8, `${accepted} of 100 claims within 100 ms accepted`)
  })

  it('outgrows an older life of itself that others still remember', () => {
    const { core, now, claimOf } = victim()
    const before = core.currentIncarnation()
    core.handle({ type: 'message', peer: 'x', message: { type: 'claims', claims: [{ ...claimOf({ peer: 'v', incarnation: before, seq: 500 }), hops: 1 }] } }, now + 10)
    assert.equal(core.currentIncarnation(), before + 1)
  })
})
