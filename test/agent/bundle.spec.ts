// The agent bundle the systemd unit runs (scripts/build-agentd.ts) leaves out
// what an idle agent never uses (docs/agent.md, "Memory"): importing
// node:http through Node's ESM facade would load undici, http2 and tls, and
// Noise's default primitives would instantiate WebAssembly. Checked on the
// real bundle: an agent started from it (loopback, no mDNS) and stopped.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { unitEnvironment } from '../../scripts/build-agentd.ts'
import { agentdBundle } from './support.ts'

/** Preloaded into the bundle's process: records WebAssembly use, prints what was loaded at exit. */
const PROBE = `
const wasm = []
for (const k of ['instantiate', 'compile', 'instantiateStreaming', 'compileStreaming']) {
  const f = WebAssembly[k]
  WebAssembly[k] = function (...a) { wasm.push(k); return f.apply(this, a) }
}
for (const k of ['Module', 'Instance', 'Memory']) {
  WebAssembly[k] = new Proxy(WebAssembly[k], { construct (t, a, n) { wasm.push(k); return Reflect.construct(t, a, n) } })
}
process.on('exit', () => { process.stderr.write('PROBE ' + JSON.stringify({ modules: process.moduleLoadList, wasm }) + '\\n') })
`

describe('the agent bundle', function () {
  this.timeout(60_000)
  let dir: string

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'xo-mesh-bundle-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('loads neither undici, http2 nor tls, and instantiates no WebAssembly', async () => {
    const bundle = await agentdBundle(dir)
    const probe = join(dir, 'probe.mjs')
    await writeFile(probe, PROBE)
    const child = spawn(process.execPath, ['--import', probe, bundle, '--data', join(dir, 'data'), 'agent', '--no-mdns', '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XO_MESH_NO_PROGRESS: '1' } })
    let err = ''
    let stopping = false
    const exited = new Promise(resolve => child.on('exit', resolve))
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
      if (!stopping && err.includes('"agent started"')) stopping = child.kill('SIGTERM')
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    const code = await exited
    clearTimeout(timer)
    assert.ok(err.includes('"agent started"'), err)
    assert.equal(code, 0, err)
    const line = err.split('\n').find(l => l.startsWith('PROBE '))
    assert.ok(line !== undefined, err)
    const { modules, wasm } = JSON.parse(line.slice(6)) as { modules: string[], wasm: string[] }
    // the probe sees what loads: the API's http server and the block store's crypto are there
    assert.ok(modules.includes('NativeModule http') && modules.includes('NativeModule crypto'), modules.join(', '))
    for (const m of ['NativeModule internal/deps/undici/undici', 'NativeModule http2', 'NativeModule tls']) assert.ok(!modules.includes(m), `${m} loaded`)
    assert.deepEqual(wasm, [])
  })

  it('is benched with the environment the unit gives it', () => {
    // the benches start agents with unitEnvironment(): what docs/xo-mesh.service sets, read from it
    const env = unitEnvironment()
    assert.equal(env.NODE_OPTIONS, '--max-semi-space-size=1')
    assert.equal(env.MALLOC_ARENA_MAX, '2')
    assert.equal(env.XO_MESH_HOME, undefined)
    assert.deepEqual(unitEnvironment('[Service]\nEnvironment=A=1 "B=two words"\n Environment=C=x=y\n#Environment=D=1\nExecStart=/bin/true\n'), { A: '1', B: 'two words', C: 'x=y' })
  })
})
