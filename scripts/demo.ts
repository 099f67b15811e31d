// npm run demo: the content layer end to end, narrated. Two "laptops" are two
// data directories on this machine: the publisher adds a build and a newer
// one, writes USB bundles, and a school laptop imports and applies them.
import { execFileSync } from 'node:child_process'
import { mkdir, rm, stat, utimes, writeFile, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCipheriv, createHash } from 'node:crypto'

const repo = resolve(fileURLToPath(import.meta.url), '../..')
const work = join(repo, '.demo')
const bin = join(repo, 'bin', 'xo-mesh.js')

function say (text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`)
}

function xo (args: string[]): string {
  process.stdout.write(`$ xo-mesh ${args.map(a => (a.startsWith(work) ? relative(repo, a) : a)).join(' ')}\n`)
  const out = execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, XO_MESH_NO_PROGRESS: '1' }, stdio: ['ignore', 'pipe', 'inherit'] })
  process.stdout.write(out.split('\n').map(l => (l === '' ? l : `  ${l}`)).join('\n'))
  return out.trim().split('\n').pop()!.trim()
}

function bytes (seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** A small stand-in for an OS tree: a few binaries, libraries, config and docs. */
async function sampleTree (dir: string, version: number): Promise<void> {
  for (const d of ['bin', 'lib', 'etc', 'usr/share/doc']) await mkdir(join(dir, d), { recursive: true })
  for (let i = 0; i < 8; i++) await writeFile(join(dir, 'lib', `libsample${i}.so`), bytes(`lib${i}`, 400_000))
  const kernel = bytes('kernel', 6_000_000)
  if (version > 1) kernel.write('patched in version 2', 3_000_000) // a small binary patch
  await writeFile(join(dir, 'bin', 'kernel.img'), kernel)
  await writeFile(join(dir, 'etc', 'os-release'), `NAME="Sample XO OS"\nVERSION="${version}"\n`)
  await writeFile(join(dir, 'usr/share/doc', 'README'), 'A sample build for the xo-mesh demo.\n'.repeat(50))
  if (version > 1) await writeFile(join(dir, 'usr/share/doc', 'NEWS'), 'Version 2: a patched kernel.\n')
  // a build system stamps its files (SOURCE_DATE_EPOCH), so unchanged files are identical builds to builds
  for (const f of ['bin/kernel.img', 'etc/os-release', 'usr/share/doc/README', ...Array.from({ length: 8 }, (_, i) => `lib/libsample${i}.so`)]) {
    const when = f === 'bin/kernel.img' || f === 'etc/os-release' ? 1_790_000_000 + version * 86_400 : 1_790_000_000
    await utimes(join(dir, f), when, when)
  }
}

async function size (path: string): Promise<string> {
  return `${((await stat(path)).size / 1024).toFixed(0)} KiB`
}

await rm(work, { recursive: true, force: true })
const publisher = join(work, 'publisher')
const laptop = join(work, 'laptop')
const root = join(work, 'laptop-os')

say('The publisher adds build 1 (a sample OS tree, ~9 MB)')
await sampleTree(join(work, 'tree-v1'), 1)
await mkdir(join(work, 'usb'), { recursive: true })
const v1 = xo(['--data', publisher, 'add', join(work, 'tree-v1'), '--name', 'sample-os-1', '--kind', 'os'])

say('... and writes it to a USB bundle (a standard CARv1 file)')
xo(['--data', publisher, 'export', v1, '-o', join(work, 'usb', 'sample-os-1.car')])

say('At the school, a laptop imports the bundle (every block verified) and applies it')
xo(['--data', laptop, 'import', join(work, 'usb', 'sample-os-1.car')])
xo(['--data', laptop, 'apply', v1, '--root', root])

say('The publisher adds build 2: one binary patched, one file added')
await sampleTree(join(work, 'tree-v2'), 2)
const v2 = xo(['--data', publisher, 'add', join(work, 'tree-v2'), '--name', 'sample-os-2', '--kind', 'os'])
xo(['--data', publisher, 'diff', v1, v2])

say('The update bundle carries only what a holder of build 1 lacks, as a delta')
xo(['--data', publisher, 'export', v2, '-o', join(work, 'usb', 'sample-os-2-from-1.car'), '--have', v1])
process.stdout.write(`  full bundle: ${await size(join(work, 'usb', 'sample-os-1.car'))}, update bundle: ${await size(join(work, 'usb', 'sample-os-2-from-1.car'))}\n`)

say('The laptop imports the update, rebuilds the new files from the delta and applies build 2')
xo(['--data', laptop, 'import', join(work, 'usb', 'sample-os-2-from-1.car')])
xo(['--data', laptop, 'apply', v2, '--root', root])
process.stdout.write(`  ${relative(repo, root)}/current/etc/os-release says: ${(await readFile(join(root, 'current', 'etc', 'os-release'), 'utf8')).split('\n')[1]}\n`)

say('Someone edits a system file; verify finds it and repairs it from the store')
await writeFile(join(root, 'current', 'etc', 'os-release'), 'tampered\n')
xo(['--data', laptop, 'verify', '--root', root])

say('Done')
process.stdout.write(`Everything is under ${relative(repo, work)}/. The mesh agent and its dashboard come with the next layers.\n`)
