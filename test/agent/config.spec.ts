// DATA/config.yaml: defaults, documented keys, errors that name the key, flags over the file.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'yaml'
import { CONFIG_TEMPLATE, applyOverrides, defaultConfig, loadConfig, parseConfig, parseHostPort } from '../../src/agent/config.ts'
import { ConfigError } from '../../src/agent/errors.ts'
import { tempDir } from '../support/cli.ts'

describe('agent configuration', () => {
  it('gives the defaults for an empty file', async () => {
    assert.deepEqual(await parseConfig(''), defaultConfig())
    assert.deepEqual(defaultConfig().listen, ['/ip4/0.0.0.0/tcp/0'])
    assert.equal(defaultConfig().api, '127.0.0.1:7337')
  })

  it('writes a template on first load whose every key, uncommented, parses to the defaults', async () => {
    const t = await tempDir()
    try {
      assert.deepEqual(await loadConfig(t.dir), defaultConfig())
      const text = await readFile(join(t.dir, 'config.yaml'), 'utf8')
      assert.equal(text, CONFIG_TEMPLATE)
      // uncomment every "# key: value" line that is YAML; the peers example aside, it must equal the defaults
      const uncommented = text.split('\n').filter(l => /^# ( {2})?[a-z_]+:/.test(l)).map(l => l.slice(2).replace(/ +#.*$/, '')).join('\n')
      const doc = parse(uncommented) as Record<string, unknown>
      delete doc.peers
      assert.deepEqual(await parseConfig(JSON.stringify(doc)), defaultConfig())
    } finally {
      await t.cleanup()
    }
  })

  it('merges a partial file over the defaults', async () => {
    const c = await parseConfig('mdns:\n  enabled: false\nlog:\n  level: debug\n')
    assert.equal(c.mdns.enabled, false)
    assert.equal(c.mdns.ttl_s, 120)
    assert.equal(c.log.level, 'debug')
    assert.equal(c.log.file, null)
  })

  it('names the key of a typo or a wrong type', async () => {
    await assert.rejects(parseConfig('mdns:\n  enabeld: true\n', 'D/config.yaml'), /D\/config.yaml: unknown key mdns.enabeld/)
    await assert.rejects(parseConfig('listen: "/ip4/1.2.3.4/tcp/1"'), /listen must be a list of multiaddrs/)
    await assert.rejects(parseConfig('listen: ["nonsense"]'), /not a multiaddr/)
    await assert.rejects(parseConfig('api: "localhost"'), /HOST:PORT/)
    await assert.rejects(parseConfig('log: {level: loud}'), /log.level must be debug, info, warn, error/)
    await assert.rejects(parseConfig('[1, 2'), ConfigError)
  })

  it('lets flags override the file', async () => {
    const c = applyOverrides(await parseConfig('peers: ["/ip4/10.0.0.1/tcp/1"]\napi: "127.0.0.1:1"'), { peers: ['/ip4/127.0.0.1/tcp/2'], mdns: false, api: '127.0.0.1:0', listen: ['/ip4/127.0.0.1/tcp/0'] })
    assert.deepEqual(c.peers, ['/ip4/127.0.0.1/tcp/2'])
    assert.deepEqual(c.listen, ['/ip4/127.0.0.1/tcp/0'])
    assert.equal(c.mdns.enabled, false)
    assert.equal(c.api, '127.0.0.1:0')
    assert.throws(() => applyOverrides(defaultConfig(), { peers: ['bad'] }), /--peer: not a multiaddr/)
  })

  it('parses HOST:PORT including bracketed IPv6', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:7337'), { host: '127.0.0.1', port: 7337 })
    assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 })
    assert.throws(() => parseHostPort('127.0.0.1:70000'), ConfigError)
  })
})
