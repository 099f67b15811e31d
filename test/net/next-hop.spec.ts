// Where a laptop's outbox goes: the elected school server while it is a peer
// of one, the configured upstream when it is the server or none is elected.
import { strict as assert } from 'node:assert'
import { configuredNextHop, electedNextHop, type ElectedRole } from '../../src/net/relay/index.ts'

const SERVER = '12D3KooWDFojyxVQ86HYJocLy7cLK9uaXGeYGoLVzYJuGJ8kE3BA'
const UP = '12D3KooWRH99TKg7MM3YwWuKWfXqynhs8DfZ7bgk1HbBkSnMPQ6i'
const upstream = `/ip4/10.0.0.1/tcp/4001/p2p/${UP}`

describe('the relay\'s next hop under the election', () => {
  it('is the elected server for a peer, the configured upstream for the server, and follows changes', () => {
    let e: ElectedRole = { role: 'peer', server: null }
    const hop = electedNextHop(configuredNextHop(upstream), () => e)
    assert.equal(hop()?.peerId, UP, 'no server elected yet: the configured upstream')
    e = { role: 'peer', server: SERVER }
    assert.deepEqual(hop(), { peerId: SERVER, addrs: [] })
    e = { role: 'server', server: 'self' }
    assert.equal(hop()?.peerId, UP)
    assert.deepEqual(hop()?.addrs, [upstream])
  })

  it('is nothing for a server with no upstream (it keeps the outbox until a link appears)', () => {
    const hop = electedNextHop(configuredNextHop(null), () => ({ role: 'server', server: 'self' }))
    assert.equal(hop(), null)
  })
})
