// `npm run build`: bundles the agent (src/cli/agentd.ts and everything it
// imports, node_modules included) into one plain JavaScript file,
// dist/agentd.mjs, which the systemd unit and the exchange bench run.
//
// Why: an idle agent run through tsx holds ~100 MB, mostly the loader and
// the module records, source and compiled code of ~600 small ESM files; the
// same agent from one minified bundle holds ~75–80 MB (docs/agent.md,
// "Memory"). esbuild comes with tsx, so this needs no new dependency.
//
//   node --import tsx scripts/build-agentd.ts [OUTFILE]
import { build, type Plugin } from 'esbuild'
import { cpSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const REPO = fileURLToPath(new URL('..', import.meta.url))

/** Where `npm run build` writes the bundle. */
export const AGENTD_BUNDLE = join(REPO, 'dist', 'agentd.mjs')

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
    plugins: [noiseWithoutWasm],
    logLevel: 'warning'
  })
  if (result.warnings.length > 0) throw new Error(`the agent bundle: ${result.warnings.map(w => w.text).join('; ')}`)
  // the agent's page is read from ./dashboard/ beside the running module
  // (src/agent/pages.ts), so it goes next to the bundle
  cpSync(join(REPO, 'src', 'agent', 'dashboard'), join(dirname(outfile), 'dashboard'), { recursive: true })
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? AGENTD_BUNDLE
  await buildAgentd(out)
  process.stdout.write(`${out}\n`)
}
