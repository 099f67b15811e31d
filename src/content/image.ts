// `add --image NAME-tree.tar.bz2`: the image builder's output, imported so a
// deployment can migrate. The tarball streams through bzip2 and the tar
// parser into the store: nothing is unpacked to disk, and the .md5 is checked
// on the same pass (a mismatch discards everything the import wrote).
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { createGunzip, createZstdDecompress } from 'node:zlib'
import { extract, type Header } from 'tar-stream'
import { InvalidInputError } from './errors.ts'
import { TreeBuilder, type AddProgress } from './tree-builder.ts'
import { defaultCreated } from './add.ts'
import type { Built, Mtime } from './unixfs.ts'
import type { BlockStore } from './blockstore.ts'
import type { BuildRecord, Kind } from './build.ts'
import type { CID } from './cid.ts'

/** What sits beside an image: NAME-tree.tar.bz2, NAME-tree.tar.bz2.md5, NAME.name. */
export interface ImageFiles { tarball: string, md5: string, nameFile: string, prefix: string }

/** Finds the companion files of an image tarball. */
export function imageFiles (tarball: string): ImageFiles {
  const base = basename(tarball)
  const m = /^(.*)-tree\.tar(\.bz2|\.gz|\.zst)?$/.exec(base)
  if (m === null) throw new InvalidInputError(`${tarball}: an image is named NAME-tree.tar.bz2`)
  const prefix = m[1]!
  return { tarball, md5: `${tarball}.md5`, nameFile: join(dirname(tarball), `${prefix}.name`), prefix }
}

async function readText (path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch (err) {
    throw new InvalidInputError(`cannot read the image's ${what} ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The tar stream inside a compressed tarball, and a promise that fails if
 * decompression fails. bzip2 runs as the system's bzip2: several times faster
 * than any JS port.
 */
function unpack (source: Readable, tarball: string): { tar: Readable, done: Promise<void> } {
  if (tarball.endsWith('.gz')) return { tar: source.pipe(createGunzip()), done: Promise.resolve() }
  if (tarball.endsWith('.zst')) return { tar: source.pipe(createZstdDecompress()), done: Promise.resolve() }
  if (!tarball.endsWith('.bz2')) return { tar: source, done: Promise.resolve() }
  const child = spawn('bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdin.on('error', () => {}) // bzip2 quit early: reported through `done`
  source.pipe(child.stdin)
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', err => { reject(new InvalidInputError(`cannot run bzip2 (is it installed?): ${err.message}`, { cause: err })) })
    child.on('close', code => {
      if (code === 0) resolve()
      else reject(new InvalidInputError(`${tarball} is not a valid bzip2 file: ${stderr.trim() || `bzip2 exited ${code}`}`))
    })
  })
  done.catch(() => {})
  return { tar: child.stdout, done }
}

function mtimeOf (h: Header): Mtime {
  const ms = h.mtime?.getTime() ?? 0
  const secs = Math.floor(ms / 1000)
  return { secs: BigInt(secs), nsecs: (ms - secs * 1000) * 1_000_000 }
}

export interface ImageOptions { kind?: Kind, created?: Date, onProgress?: AddProgress, onCompressedBytes?: (n: number, total: number) => void }

/**
 * Imports an image tarball as a build named from its .name file. Checks the
 * .md5 over the compressed bytes as they stream; on a mismatch, a corrupt
 * archive or any other error the store is left as it was.
 */
export async function addImage (store: BlockStore, tarball: string, options: ImageOptions = {}): Promise<{ cid: CID, record: BuildRecord, name: string }> {
  const files = imageFiles(tarball)
  let total: number
  try {
    total = (await stat(tarball)).size
  } catch (err) {
    throw new InvalidInputError(`cannot read ${tarball}: ${(err as Error).message}`, { cause: err })
  }
  const expectedMd5 = (await readText(files.md5, 'checksum')).split(/\s+/)[0]!.toLowerCase()
  if (!/^[0-9a-f]{32}$/.test(expectedMd5)) throw new InvalidInputError(`${files.md5} does not hold an md5 sum`)
  const name = (await readText(files.nameFile, 'name file')).split('\n')[0]!.trim()
  if (name === '') throw new InvalidInputError(`${files.nameFile} is empty`)

  const md5 = createHash('md5')
  let read = 0
  const source: Readable = createReadStream(tarball, { highWaterMark: 1 << 20 })
  source.on('data', (d: Buffer) => { md5.update(d); read += d.length; options.onCompressedBytes?.(read, total) })
  const { tar: tarStream, done: unpacked } = unpack(source, tarball)
  const tar = extract()
  const builder = new TreeBuilder(store, { onProgress: options.onProgress })
  const files2 = new Map<string, Built>()
  try {
    tarStream.pipe(tar)
    source.on('error', err => tar.destroy(err))
    tarStream.on('error', (err: Error) => tar.destroy(err))
    unpacked.catch((err: unknown) => tar.destroy(err as Error))
    for await (const entry of tar) {
      const h = entry.header
      const st = { mode: (h.mode ?? 0o644) & 0o7777, mtime: mtimeOf(h), uid: h.uid ?? 0, gid: h.gid ?? 0 }
      const path = h.name
      switch (h.type) {
        case 'file':
        case 'contiguous-file':
          files2.set(path.replace(/^\.?\/+/, ''), await builder.addFile(path, st, entry as AsyncIterable<Uint8Array>))
          break
        case 'directory':
          builder.addDirectory(path, st)
          entry.resume()
          break
        case 'symlink':
          builder.addSymlink(path, h.linkname ?? '', st)
          entry.resume()
          break
        case 'link': {
          const target = files2.get((h.linkname ?? '').replace(/^\.?\/+/, ''))
          if (target === undefined) throw new InvalidInputError(`${tarball}: hard link ${path} to ${h.linkname} comes before its target`)
          builder.addHardLink(path, target, st)
          entry.resume()
          break
        }
        case 'character-device':
        case 'block-device':
        case 'fifo':
          builder.addSpecial(path, { type: h.type === 'fifo' ? 'fifo' : h.type === 'character-device' ? 'chr' : 'blk', mode: st.mode, major: h.devmajor ?? 0, minor: h.devminor ?? 0, mtime: [Number(st.mtime.secs), st.mtime.nsecs] }, st)
          entry.resume()
          break
        default:
          entry.resume() // pax headers and the like are folded in by the parser
      }
    }
    await unpacked
    const sum = md5.digest('hex')
    if (sum !== expectedMd5) throw new InvalidInputError(`${tarball}: md5 ${sum} does not match ${files.md5} (${expectedMd5})`)
    const built = await builder.finish({ name, kind: options.kind ?? 'os', created: options.created ?? defaultCreated() })
    return { ...built, name }
  } catch (err) {
    source.destroy()
    await builder.abort()
    if (err instanceof InvalidInputError) throw err
    const msg = (err as Error).message
    if (/Unexpected end|unexpected end|Invalid tar header|invalid/i.test(msg)) throw new InvalidInputError(`${tarball} is not a valid tar archive: ${msg}`, { cause: err })
    throw err
  }
}
