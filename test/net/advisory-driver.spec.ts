// The advisory driver against a stand-in libp2p node (no sockets, fast): a
// peer whose stream opens while the agent is still starting (the protocol
// handler is registered in beforeStart, the core made in start), and a peer
// that speaks before our stream to it has opened, are both heard. Either
// was lost before: a laptop restarted after SIGKILL dials its peer at once,
// the peer's stream and State arrive during start-up, and the restarted
// laptop kept its old snapshot for minutes (test/deploy/kill.spec.ts).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { AdvisoryDriver } from '../../src/net/advisory/index.ts'
import { PROTOCOL, decodeMessage, encodeMessage, type AdvisoryMessage } from '../../src/core/advisory/index.ts'
import { LengthPrefixedReader, lengthPrefixed } from '../../src/core/wire/frames.ts'
import { EventBus } from '../../src/net/events.ts'
import { silentLogger } from '../../src/net/logger.ts'
import type { MeshComponents } from '../../src/net/component.ts'

/** A stream as the driver uses one: frames it sends are decoded into `sent`; `hear` delivers frames to it. */
class FakeStream {
  readonly sent: AdvisoryMessage[] = []
  private readonly reader = new LengthPrefixedReader(1 << 22)
  private readonly listeners = new Map<string, Set<(e: unknown) => void>>()
  addEventListener (name: string, fn: (e: unknown) => void): void {
    let set = this.listeners.get(name)
    if (set === undefined) this.listeners.set(name, set = new Set())
    set.add(fn)
  }

  removeEventListener (name: string, fn: (e: unknown) => void): void { this.listeners.get(name)?.delete(fn) }
  send (bytes: Uint8Array): boolean {
    for (const body of this.reader.push(bytes)) this.sent.push(decodeMessage(body))
    return true
  }

  abort (): void {}
  hear (m: AdvisoryMessage): void {
    for (const fn of this.listeners.get('message') ?? []) fn({ data: lengthPrefixed(encodeMessage(m)) })
  }
}

/** A connection to `peer` whose newStream resolves when `open()` is called (or at once with `immediate`). */
function connection (peer: string, out: FakeStream, immediate: boolean): { conn: unknown, open: () => void } {
  let release: () => void = () => {}
  const gate = immediate ? Promise.resolve() : new Promise<void>(resolve => { release = resolve })
  return {
    conn: { id: `conn-${peer}`, status: 'open', remotePeer: { toString: () => peer }, newStream: async () => { await gate; return out } },
    open: () => { release() }
  }
}

async function settle (): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
}

const newer: AdvisoryMessage = { type: 'state', version: 5, hash: new Uint8Array([1, 2, 3]), rootVersion: 1 }

interface Harness { driver: AdvisoryDriver, handler: (stream: unknown, conn: unknown) => void, conns: unknown[] }

/** A driver on a stand-in node, through beforeStart (the protocol handler registered), not started. */
async function harness (dataDir: string): Promise<Harness> {
  const conns: unknown[] = []
  let handler: ((stream: unknown, conn: unknown) => void) | undefined
  const node = {
    handle: async (protocol: string, fn: (stream: unknown, conn: unknown) => void) => { assert.equal(protocol, PROTOCOL); handler = fn },
    unhandle: async () => {},
    getConnections: () => conns
  }
  const c = { node, logger: silentLogger, events: new EventBus(), api: { add: () => {} }, dataDir } as unknown as MeshComponents
  const driver = new AdvisoryDriver(c, { rootKey: new Uint8Array(randomBytes(32)), device: { school: 'escuela-7' }, statePollMs: 60_000 })
  await driver.beforeStart()
  return { driver, handler: handler!, conns }
}

describe('advisory driver: peers met while starting and peers that speak first', function () {
  this.timeout(20_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const drivers: AdvisoryDriver[] = []

  before(async () => { t = await tempDir('xo-mesh-advisory-driver-') })
  after(async () => {
    for (const d of drivers) await d.stop()
    await t?.cleanup()
  })

  it('a peer whose stream and State come before start is told our state and pulled from once the core runs', async () => {
    const h = await harness(join(t.dir, 'a'))
    drivers.push(h.driver)
    const out = new FakeStream()
    const into = new FakeStream()
    const { conn } = connection('peer-b', out, true)
    h.conns.push(conn)
    h.handler(into, conn)
    await settle()
    into.hear(newer)
    await settle()
    await h.driver.start()
    await settle()
    assert.deepEqual(out.sent.map(m => m.type), ['state', 'request'], 'our state on meeting it, then a pull of the newer snapshot it advertised')
    const [ours, pull] = out.sent
    assert.equal(ours?.type === 'state' ? ours.version : -1, 0)
    assert.equal(pull?.type === 'request' ? pull.version : -1, 5)
  })

  it('a peer that advertises before our stream to it has opened is heard once it opens', async () => {
    const h = await harness(join(t.dir, 'b'))
    drivers.push(h.driver)
    await h.driver.start()
    const out = new FakeStream()
    const into = new FakeStream()
    const c = connection('peer-c', out, false)
    h.conns.push(c.conn)
    h.handler(into, c.conn)
    into.hear(newer)
    await settle()
    assert.equal(out.sent.length, 0, 'nothing to send on before our stream opens')
    c.open()
    await settle()
    assert.deepEqual(out.sent.map(m => m.type), ['state', 'request'], 'its early State was kept and handed to the core after it met the peer')
  })
})
