// Reading ZIP archives (PKWARE APPNOTE 6.3): enough for Sugar's `.xo`
// activity bundles, which are plain zips of `<Name>.activity/…`. Entries are
// stored or deflated; the central directory is the authority (as in unzip);
// every size, count and name is bounded and checked, and each entry's CRC-32
// is verified, because the archive comes from the mesh. ZIP64, encryption,
// multi-disk archives and other methods are refused.
import { crc32, inflateRawSync } from 'node:zlib'
import { InvalidInputError } from './errors.ts'

export interface ZipEntry {
  /** The path inside the archive, '/'-separated; directories end in '/'. */
  name: string
  /** Unix mode bits when the archive recorded them (made on Unix), else undefined. */
  mode: number | undefined
  directory: boolean
  symlink: boolean
  size: number
  /** Bytes as stored, method 0 (stored) or 8 (deflate). */
  read: () => Buffer
}

export interface ZipLimits {
  maxEntries: number
  /** Total uncompressed bytes. */
  maxBytes: number
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = { maxEntries: 20_000, maxBytes: 1024 * 1024 * 1024 }

const EOCD = 0x06054b50
const CENTRAL = 0x02014b50
const LOCAL = 0x04034b50

/** True when a name is a safe relative path: no absolute path, no '..', no backslash, no NUL. */
export function safeEntryName (name: string): boolean {
  if (name === '' || name.startsWith('/') || name.includes('\\') || name.includes('\0')) return false
  return name.split('/').every((p, i, all) => p !== '..' && p !== '.' && (p !== '' || i === all.length - 1))
}

/**
 * Lists the entries of a zip held in memory. Throws InvalidInputError on
 * anything malformed, unsupported or past the limits; an entry's read()
 * throws it too when its data does not match its CRC-32 or size.
 */
export function readZip (buf: Uint8Array, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipEntry[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  const bad = (why: string): never => { throw new InvalidInputError(`not a usable zip archive: ${why}`) }
  // the end of central directory record: in the last 22 + 65535 bytes
  let eocd = -1
  for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 0xffff); i--) {
    if (b.readUInt32LE(i) === EOCD) { eocd = i; break }
  }
  if (eocd < 0) bad('no end of central directory record')
  if (b.readUInt16LE(eocd + 4) !== 0 || b.readUInt16LE(eocd + 6) !== 0) bad('a multi-disk archive')
  const count = b.readUInt16LE(eocd + 10)
  const cdSize = b.readUInt32LE(eocd + 12)
  const cdOffset = b.readUInt32LE(eocd + 16)
  if (count === 0xffff || cdOffset === 0xffffffff) bad('ZIP64 is not supported')
  if (count > limits.maxEntries) bad(`${count} entries, more than ${limits.maxEntries}`)
  if (cdOffset + cdSize > eocd) bad('the central directory runs past its end')
  const entries: ZipEntry[] = []
  let total = 0
  let p = cdOffset
  for (let n = 0; n < count; n++) {
    if (p + 46 > eocd || b.readUInt32LE(p) !== CENTRAL) bad(`central directory entry ${n} is malformed`)
    const madeBy = b.readUInt16LE(p + 4) >> 8
    const flags = b.readUInt16LE(p + 8)
    const method = b.readUInt16LE(p + 10)
    const crc = b.readUInt32LE(p + 16)
    const csize = b.readUInt32LE(p + 20)
    const size = b.readUInt32LE(p + 24)
    const nameLen = b.readUInt16LE(p + 28)
    const extraLen = b.readUInt16LE(p + 30)
    const commentLen = b.readUInt16LE(p + 32)
    const external = b.readUInt32LE(p + 38)
    const local = b.readUInt32LE(p + 42)
    if (p + 46 + nameLen > eocd) bad('an entry name runs past the central directory')
    const name = b.subarray(p + 46, p + 46 + nameLen).toString('utf8')
    p += 46 + nameLen + extraLen + commentLen
    if ((flags & 1) !== 0) bad(`${name}: encrypted`)
    if (method !== 0 && method !== 8) bad(`${name}: compression method ${method}`)
    if (csize === 0xffffffff || size === 0xffffffff || local === 0xffffffff) bad(`${name}: ZIP64 is not supported`)
    if (!safeEntryName(name)) bad(`unsafe entry name ${JSON.stringify(name)}`)
    total += size
    if (total > limits.maxBytes) bad(`more than ${limits.maxBytes} bytes uncompressed`)
    const unixMode = madeBy === 3 ? (external >>> 16) & 0xffff : 0
    const directory = name.endsWith('/')
    const symlink = (unixMode & 0o170000) === 0o120000
    if (local + 30 > b.length || b.readUInt32LE(local) !== LOCAL) bad(`${name}: no local header at ${local}`)
    const dataStart = local + 30 + b.readUInt16LE(local + 26) + b.readUInt16LE(local + 28)
    if (dataStart + csize > b.length) bad(`${name}: data runs past the end`)
    entries.push({
      name,
      mode: unixMode !== 0 ? unixMode & 0o7777 : undefined,
      directory,
      symlink,
      size,
      read: () => {
        const raw = b.subarray(dataStart, dataStart + csize)
        let data: Buffer
        try {
          data = method === 0 ? raw : inflateRawSync(raw, { maxOutputLength: Math.max(1, size) })
        } catch (err) {
          throw new InvalidInputError(`${name}: does not inflate: ${(err as Error).message}`)
        }
        if (data.length !== size) throw new InvalidInputError(`${name}: ${data.length} bytes, the directory says ${size}`)
        if (crc32(data) !== crc) throw new InvalidInputError(`${name}: CRC-32 mismatch`)
        return data
      }
    })
  }
  return entries
}
