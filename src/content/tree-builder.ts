// Builds a tree of UnixFS nodes from entries that arrive in any order (a
// directory walk, a tar stream), storing each block as it is made. Memory
// holds one small record per entry, never file contents: a file streams
// through the chunker into the store.
import { CID, RAW, cidOf } from './cid.ts'
import { InvalidInputError } from './errors.ts'
import { chunkStream, DEFAULT_CHUNKER, type ChunkerOptions } from './fastcdc.ts'
import { dirNode, fileNodes, symlinkNode, type Built, type EncodedBlock, type Leaf, type Mtime } from './unixfs.ts'
import { encodeRecord, isSafeName, type BuildMeta, type BuildRecord, type Kind, type SpecialFile } from './build.ts'
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

/** How many block writes may be in flight: enough to hide the disk's latency, few enough to bound memory (~ this × chunk size). */
const WRITES_IN_FLIGHT = 16

/** Splits and checks a relative path ("./a/b" and "a/b/" are fine, ".." is not). */
export function splitPath (path: string): string[] {
  const parts = path.split('/').filter(p => p !== '' && p !== '.')
  for (const p of parts) if (!isSafeName(p)) throw new InvalidInputError(`unsafe path ${JSON.stringify(path)}`)
  return parts
}

export class TreeBuilder {
  private readonly store: BlockStore
  private readonly chunker: ChunkerOptions
  private readonly onProgress: AddProgress | undefined
  private readonly dirs = new Map<string, DirState>()
  private readonly owners = new Map<string, [number, number]>()
  private readonly special: Record<string, SpecialFile> = {}
  private readonly pending = new Set<Promise<void>>()
  private failure: unknown
  private bytes = 0
  private files = 0
  /** Blocks this builder wrote that the store did not hold before: removed again by abort(). */
  readonly written: CID[] = []

  constructor (store: BlockStore, options: { chunker?: ChunkerOptions, onProgress?: AddProgress } = {}) {
    this.store = store
    this.chunker = options.chunker ?? DEFAULT_CHUNKER
    this.onProgress = options.onProgress
    this.dirs.set('', { children: new Map() })
  }

  /** Stores a block without waiting, keeping at most WRITES_IN_FLIGHT writes pending. */
  private async put (block: EncodedBlock): Promise<void> {
    if (this.failure !== undefined) throw this.failure
    while (this.pending.size >= WRITES_IN_FLIGHT) await Promise.race(this.pending)
    if (this.failure !== undefined) throw this.failure
    // every block here was hashed by this builder a moment ago
    const p: Promise<void> = this.store.putHashed(block.cid, block.bytes).then(
      wrote => { if (wrote) this.written.push(block.cid) },
      err => { this.failure ??= err }
    ).finally(() => { this.pending.delete(p) })
    this.pending.add(p)
  }

  private async drain (): Promise<void> {
    await Promise.all(this.pending)
    if (this.failure !== undefined) throw this.failure
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
    for await (const chunk of chunkStream(content, this.chunker)) {
      const cid = cidOf(RAW, chunk)
      leaves.push({ cid, size: chunk.length })
      await this.put({ cid, bytes: chunk })
      this.bytes += chunk.length
      this.onProgress?.(this.bytes)
    }
    return this.addFileNode(path, stat, leaves)
  }

  /** A regular file whose leaves are already in the store (a hard link in a tar, a file seen before). */
  async addFileNode (path: string, stat: EntryStat, leaves: Leaf[]): Promise<Built> {
    const { blocks, root } = fileNodes(leaves, stat.mode, stat.mtime)
    for (const b of blocks) await this.put(b)
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

  async addSymlink (path: string, target: string, stat: EntryStat): Promise<void> {
    const { block, root } = symlinkNode(target, stat.mode, stat.mtime)
    await this.put(block)
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

  /** Writes the directories bottom-up and the record. Returns the build's root CID. */
  async finish (info: { name: string, kind: Kind, created: Date }): Promise<{ cid: CID, record: BuildRecord }> {
    await this.drain()
    // deepest first, so every child directory is built before its parent
    const keys = [...this.dirs.keys()].sort((a, b) => depth(b) - depth(a))
    let tree: Built | undefined
    for (const key of keys) {
      const d = this.dirs.get(key)!
      const links = [...d.children].map(([name, node]) => ({ name, node }))
      const { block, root } = dirNode(links, d.stat?.mode ?? 0o755, d.stat?.mtime)
      await this.put(block)
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
    await this.put(enc)
    await this.drain()
    return { cid: enc.cid, record }
  }

  /** Removes the blocks this builder added, after a failure: the store is left as it was. */
  async abort (): Promise<void> {
    await Promise.allSettled(this.pending)
    for (const cid of this.written) await this.store.delete(cid)
    this.written.length = 0
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
