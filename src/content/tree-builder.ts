// Builds a tree of UnixFS nodes from entries that arrive in any order (a
// directory walk, a tar stream), storing each block as it is made. Memory
// holds one small record per entry, never file contents: a file streams
// through the chunker into the store.
//
// Block writes are synchronous (BlockWriter): each block is on disk (in the
// page cache) before the next is chunked, so a file's bytes can pass from a
// reused read buffer to the hash and the store without a copy, and nothing
// waits on a thread pool.
import { CID, RAW, cidOf } from './cid.ts'
import { InvalidInputError } from './errors.ts'
import { Chunker, chunkStream, DEFAULT_CHUNKER, type ChunkerOptions } from './fastcdc.ts'
import { dirNode, fileNodes, symlinkNode, type Built, type EncodedBlock, type Leaf, type Mtime } from './unixfs.ts'
import { encodeRecord, isSafeName, type BuildMeta, type BuildRecord, type Kind, type SpecialFile } from './build.ts'
import { BlockWriter } from './block-writer.ts'
import type { BlockStore } from './blockstore.ts'

/** What every entry carries from the filesystem or the tar header. */
export interface EntryStat {
  mode: number // permission bits, 0o7777
  mtime: Mtime
  uid: number
  gid: number
}

/** Progress of an add: bytes of file content taken in so far. */
export type AddProgress = (bytes: number) => void

interface DirState { stat?: EntryStat, children: Map<string, Built> }

/**
 * Size of addFileSync's read buffer: large reads mean few system calls and
 * few chunks cut short by the buffer's end (the unchunked tail, at most one
 * maximum chunk, moves to the front before the next read).
 */
const READ_BUFFER = 4 << 20

/** Reads up to length bytes into buf at offset; returns how many, 0 at the end (fs.readSync's shape). */
export type ReadInto = (buf: Uint8Array, offset: number, length: number) => number

/** Splits and checks a relative path ("./a/b" and "a/b/" are fine, ".." is not). */
export function splitPath (path: string): string[] {
  const parts = path.split('/').filter(p => p !== '' && p !== '.')
  for (const p of parts) if (!isSafeName(p)) throw new InvalidInputError(`unsafe path ${JSON.stringify(path)}`)
  return parts
}

export class TreeBuilder {
  private readonly writer: BlockWriter
  private readonly chunker: ChunkerOptions
  private readonly onProgress: AddProgress | undefined
  private readonly dirs = new Map<string, DirState>()
  private readonly owners = new Map<string, [number, number]>()
  private readonly special: Record<string, SpecialFile> = {}
  private bytes = 0
  private files = 0
  /** addFileSync's chunker and read buffer, reused from file to file. */
  private syncChunker: Chunker | undefined
  private buffer: Uint8Array | undefined

  constructor (store: BlockStore, options: { chunker?: ChunkerOptions, onProgress?: AddProgress, writerThread?: boolean } = {}) {
    this.writer = new BlockWriter(store, options.writerThread === undefined ? {} : { thread: options.writerThread })
    this.chunker = options.chunker ?? DEFAULT_CHUNKER
    this.onProgress = options.onProgress
    this.dirs.set('', { children: new Map() })
  }

  /** Stores a block (every block here was hashed by this builder a moment ago). */
  private put (block: EncodedBlock): void {
    this.writer.put(block.cid, block.bytes)
  }

  /** Hashes, stores and notes one leaf of a file. */
  private leaf (bytes: Uint8Array, leaves: Leaf[]): void {
    const cid = cidOf(RAW, bytes)
    this.writer.put(cid, bytes)
    leaves.push({ cid, size: bytes.length })
    this.bytes += bytes.length
    this.onProgress?.(this.bytes)
  }

  private dir (parts: string[]): DirState {
    const key = parts.join('/')
    let d = this.dirs.get(key)
    if (d === undefined) {
      d = { children: new Map() }
      this.dirs.set(key, d)
      if (parts.length > 0) this.dir(parts.slice(0, -1)) // make sure the parent is known
    }
    return d
  }

  private owner (path: string, stat: EntryStat): void {
    this.owners.set(path, [stat.uid, stat.gid])
  }

  private place (path: string, built: Built): void {
    const parts = splitPath(path)
    if (parts.length === 0) throw new InvalidInputError('a file cannot be the root of a build')
    const name = parts.pop()!
    const parent = this.dir(parts)
    if (this.dirs.has([...parts, name].join('/'))) throw new InvalidInputError(`${path} is both a directory and a file`)
    parent.children.set(name, built)
  }

  /** A directory (its children may come before or after it). */
  addDirectory (path: string, stat: EntryStat): void {
    const parts = splitPath(path)
    this.dir(parts).stat = stat
    this.owner(parts.join('/'), stat)
  }

  /** A regular file, streamed from content into the store. Returns its node. */
  async addFile (path: string, stat: EntryStat, content: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Built> {
    const leaves: Leaf[] = []
    for await (const chunk of chunkStream(content, this.chunker)) this.leaf(chunk, leaves)
    return this.addFileNode(path, stat, leaves)
  }

  /**
   * A regular file read synchronously through read (e.g. fs.readSync on an
   * open file) into a reused buffer: the add of a directory tree. Each leaf
   * is a view of that buffer, hashed and written before the next read.
   */
  addFileSync (path: string, stat: EntryStat, read: ReadInto): Built {
    const chunker = this.syncChunker ??= new Chunker(this.chunker)
    const buf = this.buffer ??= new Uint8Array(Math.max(READ_BUFFER, 2 * chunker.options.maxSize))
    const leaves: Leaf[] = []
    let start = 0 // the first byte not yet in a leaf
    let end = 0 // the end of the bytes read
    let whole = false
    try {
      for (;;) {
        if (end === buf.length) {
          // what is left unchunked is under one maximum chunk: move it to the front
          buf.copyWithin(0, start, end)
          end -= start
          start = 0
        }
        const n = read(buf, end, buf.length - end)
        if (n === 0) break
        const cuts = chunker.push(buf.subarray(end, end + n))
        end += n
        for (const len of cuts) {
          this.leaf(buf.subarray(start, start + len), leaves)
          start += len
        }
      }
      whole = true
    } finally {
      // finish() also readies the chunker for the next file after a failed read
      const last = chunker.finish()
      if (whole) for (const len of last) this.leaf(buf.subarray(start, start + len), leaves)
    }
    return this.addFileNodeSync(path, stat, leaves)
  }

  /** A regular file whose leaves are already in the store (a hard link in a tar, a file seen before). */
  async addFileNode (path: string, stat: EntryStat, leaves: Leaf[]): Promise<Built> {
    return this.addFileNodeSync(path, stat, leaves)
  }

  private addFileNodeSync (path: string, stat: EntryStat, leaves: Leaf[]): Built {
    const { blocks, root } = fileNodes(leaves, stat.mode, stat.mtime)
    for (const b of blocks) this.put(b)
    this.place(path, root)
    this.owner(splitPath(path).join('/'), stat)
    this.files++
    return root
  }

  /** A second name for a file already added (a hard link in a tar): the same node under another path. */
  addHardLink (path: string, file: Built, stat: EntryStat): void {
    this.place(path, file)
    this.owner(splitPath(path).join('/'), stat)
    this.files++
  }

  addSymlink (path: string, target: string, stat: EntryStat): void {
    const { block, root } = symlinkNode(target, stat.mode, stat.mtime)
    this.put(block)
    this.place(path, root)
    this.owner(splitPath(path).join('/'), stat)
  }

  /** A device node, fifo or socket: kept in meta, made by apply. */
  addSpecial (path: string, file: SpecialFile, stat: EntryStat): void {
    const key = splitPath(path).join('/')
    if (key === '') throw new InvalidInputError('a special file cannot be the root of a build')
    this.dir(splitPath(path).slice(0, -1))
    this.special[key] = file
    this.owner(key, stat)
  }

  /**
   * Writes the directories bottom-up and the record, then makes every block
   * durable (one flush of the store's filesystem). Returns the build's root
   * CID: the caller may note the build as complete once this resolves, never
   * before, so that a power cut cannot leave a noted build with blocks lost.
   */
  async finish (info: { name: string, kind: Kind, created: Date }): Promise<{ cid: CID, record: BuildRecord }> {
    // deepest first, so every child directory is built before its parent
    const keys = [...this.dirs.keys()].sort((a, b) => depth(b) - depth(a))
    let tree: Built | undefined
    for (const key of keys) {
      const d = this.dirs.get(key)!
      const links = [...d.children].map(([name, node]) => ({ name, node }))
      const { block, root } = dirNode(links, d.stat?.mode ?? 0o755, d.stat?.mtime)
      this.put(block)
      if (key === '') tree = root
      else {
        const parts = key.split('/')
        const name = parts.pop()!
        this.dirs.get(parts.join('/'))!.children.set(name, root)
      }
    }
    const record: BuildRecord = {
      name: info.name,
      kind: info.kind,
      created: info.created.toISOString(),
      tree: tree!.cid,
      meta: this.meta()
    }
    const enc = encodeRecord(record)
    this.put(enc)
    await this.writer.commit()
    return { cid: enc.cid, record }
  }

  /** Removes the blocks this builder added, after a failure: the store is left as it was. */
  async abort (): Promise<void> {
    await this.writer.abort()
  }

  private meta (): BuildMeta {
    const counts = new Map<string, number>()
    for (const [u, g] of this.owners.values()) counts.set(`${u}:${g}`, (counts.get(`${u}:${g}`) ?? 0) + 1)
    let best = '0:0'
    let most = -1
    for (const [k, n] of counts) if (n > most) { best = k; most = n }
    const [u, g] = best.split(':').map(Number) as [number, number]
    const owners: Record<string, [number, number]> = {}
    for (const [path, [pu, pg]] of [...this.owners].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
      if (pu !== u || pg !== g) owners[path] = [pu, pg]
    }
    return { bytes: this.bytes, files: this.files, owner: [u, g], owners, special: this.special }
  }
}

function depth (key: string): number {
  return key === '' ? 0 : key.split('/').length
}
