// `npm run build`: bundles the agent (src/cli/agentd.ts and everything it
// imports, node_modules included) into one plain JavaScript file,
// dist/agentd.mjs, which the systemd unit and the exchange bench run.
//
// Why: an idle agent run through tsx holds ~100 MB, mostly the loader and
// the module records, source and compiled code of ~600 small ESM files; the
// same agent from one minified bundle held ~75–80 MB, and holds ~63–73 MiB
// with the plugins below, which leave out what an idle agent never uses
// (docs/agent.md, "Memory"). esbuild comes with tsx, so this needs no new
// dependency.
//
//   node --import tsx scripts/build-agentd.ts [OUTFILE]
import { build, type Plugin } from 'esbuild'
import { execFileSync } from 'node:child_process'
import { cpSync, readFileSync, rmSync } from 'node:fs'
import { builtinModules, createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const REPO = fileURLToPath(new URL('..', import.meta.url))

/** Where `npm run build` writes the bundle. */
export const AGENTD_BUNDLE = join(REPO, 'dist', 'agentd.mjs')

/** The systemd unit the bundle is run by (docs/agent.md, "Running as a service"). */
export const AGENT_UNIT = join(REPO, 'docs', 'xo-mesh.service')

/**
 * The environment the unit gives the agent for its memory (its
 * `Environment=` lines but XO_MESH_HOME): what the benches start their
 * agents with, so that they measure what a laptop runs. Values are single
 * words, or double-quoted as systemd reads them.
 */
export function unitEnvironment (unit: string = readFileSync(AGENT_UNIT, 'utf8')): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of unit.split('\n')) {
    const m = /^Environment=(.*)$/.exec(line.trim())
    if (m === null) continue
    for (const word of m[1]!.match(/"[^"]*"|\S+/g) ?? []) {
      const kv = word.startsWith('"') ? word.slice(1, -1) : word
      const eq = kv.indexOf('=')
      if (eq > 0 && kv.slice(0, eq) !== 'XO_MESH_HOME') env[kv.slice(0, eq)] = kv.slice(eq + 1)
    }
  }
  return env
}

/**
 * Node's built-in modules imported without their ESM facade. Node makes the
 * facade of a built-in (`import { createServer } from 'node:http'`) by
 * reading every export, lazy getters included, so importing `node:http`
 * loads undici (`http.WebSocket`), and with it http2, tls, zlib, perf_hooks
 * and assert; `node:crypto` loads WebCrypto. Here an `import` of a built-in
 * becomes a module that `require`s it and re-exports its plain values (named
 * at build time, by the node that builds); a getter is never read until code
 * reads it. An import of a name that is not a plain value fails the build.
 * An idle agent: ~5 MiB less (docs/agent.md, "Memory").
 */
const builtinsWithoutFacades: Plugin = {
  name: 'builtins-without-facades',
  setup (b) {
    const require = createRequire(import.meta.url)
    const names = new Set(builtinModules.flatMap(m => [m, `node:${m}`]))
    b.onResolve({ filter: /^[a-z_:/]+$/ }, a => a.kind !== 'require-call' && names.has(a.path)
      ? { path: a.path.startsWith('node:') ? a.path : `node:${a.path}`, namespace: 'builtin' }
      : undefined)
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, a => {
      const mod = require(a.path) as Record<string, unknown>
      const plain = Object.entries(Object.getOwnPropertyDescriptors(mod)).filter(([k, d]) => k !== 'default' && 'value' in d).map(([k]) => k)
      const lines = [`const m = require(${JSON.stringify(a.path)})`, 'export default m']
      plain.forEach((k, i) => lines.push(`const v${i} = m[${JSON.stringify(k)}]`, `export { v${i} as ${JSON.stringify(k)} }`))
      return { contents: lines.join('\n'), loader: 'js' }
    })
  }
}

/**
 * The Noise package's default primitives replaced by ours (src/net/noise-crypto.ts,
 * which src/net/node.ts passes to it anyway): the default module instantiates
 * two WebAssembly modules when it is imported, used or not.
 */
const noiseWithoutWasm: Plugin = {
  name: 'noise-without-wasm',
  setup (b) {
    b.onLoad({ filter: /@chainsafe[/\\]libp2p-noise[/\\]dist[/\\]src[/\\]crypto[/\\]index\.js$/ }, () => ({
      contents: `export { nodeNoiseCrypto as defaultCrypto } from ${JSON.stringify(join(REPO, 'src', 'net', 'noise-crypto.ts'))}`,
      loader: 'js',
      resolveDir: REPO
    }))
  }
}

/**
 * Noise's receive path copies every message that arrived over two socket
 * reads (nearly all of an exchange's 64 KiB messages: reads are 64 KiB too)
 * into a fresh buffer, `dst`, for a primitive that decrypts in place; ours
 * (OpenSSL) cannot and ignores it. In the bundle that copy is not made: one
 * 64 KiB buffer from malloc and one memcpy less per message received. The
 * build fails if the line is not found (a new version of the package).
 */
const noiseWithoutDecryptCopy: Plugin = {
  name: 'noise-without-decrypt-copy',
  setup (b) {
    b.onLoad({ filter: /@chainsafe[/\\]libp2p-noise[/\\]dist[/\\]src[/\\]utils\.js$/ }, a => {
      const source = readFileSync(a.path, 'utf8')
      const copy = 'const dst = chunk.subarray(i, end - CHACHA_TAG_LENGTH);'
      if (!source.includes(copy)) throw new Error(`${a.path}: Noise's decrypt no longer copies into dst as the agent bundle expects`)
      return { contents: source.replace(copy, 'const dst = undefined;'), loader: 'js' }
    })
  }
}

/**
 * libp2p's peer store and peer records sort addresses and protocol names
 * with `localeCompare` only to store and compare them in a fixed order; that
 * loads ICU's collation tables and code into every agent (~3 MiB resident).
 * In the bundle those files compare by code unit instead: a fixed order as
 * well, in memory only (the agent's peer store is not persisted). The build
 * fails if a `localeCompare` is left in them (a new version of the package).
 */
const peerStoreWithoutCollation: Plugin = {
  name: 'peer-store-without-collation',
  setup (b) {
    b.onLoad({ filter: /@libp2p[/\\](peer-store|peer-record)[/\\]dist[/\\].*\.js$/ }, a => {
      const source = readFileSync(a.path, 'utf8')
      if (!source.includes('localeCompare')) return undefined
      const contents = source.replace(/([\w.]+(?:\(\))?)\.localeCompare\(/g, 'codeUnitOrder($1, ')
      if (contents.includes('localeCompare')) throw new Error(`${a.path}: a localeCompare the agent bundle does not replace`)
      return { contents: `${contents}\nfunction codeUnitOrder (a, b) { return a < b ? -1 : a > b ? 1 : 0 }\n`, loader: 'js' }
    })
  }
}

/**
 * Bundles src/cli/agentd.ts into outfile (ESM, minified, for the Node the
 * package pins). Some dependencies call require(): the banner gives the
 * bundle a real one.
 */
export async function buildAgentd (outfile: string = AGENTD_BUNDLE): Promise<void> {
  const result = await build({
    entryPoints: [join(REPO, 'src', 'cli', 'agentd.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    // names are kept: errors in the journal stay readable
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    define: { XO_MESH_BUNDLED_VERSION: JSON.stringify((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version) },
    banner: { js: "import { createRequire as __xoMeshCreateRequire } from 'node:module'; const require = __xoMeshCreateRequire(import.meta.url);" },
    plugins: [builtinsWithoutFacades, noiseWithoutWasm, noiseWithoutDecryptCopy, peerStoreWithoutCollation],
    logLevel: 'warning'
  })
  // e.g. a name imported from a built-in that it only has as a getter: undefined at run time
  if (result.warnings.length > 0) throw new Error(`the agent bundle: ${result.warnings.map(w => w.text).join('; ')}`)
  // the agent's page is read from ./dashboard/ beside the running module
  // (src/agent/pages.ts), so it goes next to the bundle
  cpSync(join(REPO, 'src', 'agent', 'dashboard'), join(dirname(outfile), 'dashboard'), { recursive: true })
  buildMallocTrim(join(dirname(outfile), 'malloc-trim.node'))
}

/**
 * The agent's malloc_trim module (src/agent/malloc-trim.c, read by
 * src/agent/memory.ts beside the running module), built with the system's
 * C compiler. Without one the agent runs without it: a warning, not a
 * failed build.
 */
export function buildMallocTrim (out: string): boolean {
  rmSync(out, { force: true })
  try {
    execFileSync(process.env.CC ?? 'cc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', out, join(REPO, 'src', 'agent', 'malloc-trim.c')], { stdio: ['ignore', 'ignore', 'pipe'] })
    return true
  } catch (err) {
    process.stderr.write(`warning: malloc-trim.node not built (${(err as Error).message.split('\n')[0]}): the agent will not give back the memory malloc keeps after a transfer\n`)
    return false
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? AGENTD_BUNDLE
  await buildAgentd(out)
  process.stdout.write(`${out}\n`)
}
