// The agent survives a connection closing under a libp2p write it did not
// make (src/net/faults.ts): the errors libp2p really throws on a closed
// stream are recognised, and a fault of ours is not mistaken for one.
import assert from 'node:assert/strict'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { StreamStateError, StreamResetError, ConnectionClosedError } from '@libp2p/interface'
import { isConnectionFault } from '../../src/net/faults.ts'

const PROTOCOL = '/xo-mesh/test-faults/1.0.0'

async function node (): Promise<Libp2p> {
  return await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
}

describe('connection faults (src/net/faults.ts)', function () {
  this.timeout(20_000)

  it('are the libp2p stream and connection errors and the socket errors of a peer gone', () => {
    for (const e of [new StreamStateError('Cannot write to a stream that is closed'), new StreamResetError('reset'), new ConnectionClosedError('closed')]) assert.equal(isConnectionFault(e), true, e.name)
    assert.equal(isConnectionFault(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), true)
    assert.equal(isConnectionFault(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })), true)
  })

  it('are not the faults of the agent itself', () => {
    assert.equal(isConnectionFault(new TypeError('x is undefined')), false)
    assert.equal(isConnectionFault(new RangeError('offset out of range')), false)
    assert.equal(isConnectionFault(Object.assign(new Error('disk full'), { code: 'ENOSPC' })), false)
    assert.equal(isConnectionFault('StreamStateError'), false)
    assert.equal(isConnectionFault(undefined), false)
  })

  it('include what a real stream throws when written after its connection closed', async () => {
    const a = await node()
    const b = await node()
    try {
      await b.handle(PROTOCOL, () => {})
      const conn = await a.dial(b.getMultiaddrs()[0]!)
      const stream = await conn.newStream(PROTOCOL)
      await conn.close()
      let thrown: unknown
      try {
        stream.send(new Uint8Array(16))
      } catch (err) {
        thrown = err
      }
      assert.ok(thrown instanceof Error, 'a send on a closed connection throws')
      assert.equal(isConnectionFault(thrown), true, (thrown as Error).name)
    } finally {
      await a.stop()
      await b.stop()
    }
  })
})
