// Test trees with everything an OS tree holds, and an exact comparison of two trees.
import { createHash, createCipheriv } from 'node:crypto'
import { chmod, lstat, mkdir, readFile, readdir, readlink, symlink, utimes, writeFile, lutimes, open } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

/** Deterministic pseudo-random bytes (AES-CTR over zeros): fast, and no two chunks alike. */
export function prng (seed: number, size: number): Buffer {
  const key = createHash('sha256').update(`xo-mesh-${seed}`).digest().subarray(0, 16)
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  return c.update(Buffer.alloc(size))
}

/** Writes size pseudo-random bytes to path in 4 MiB pieces, never holding the file in memory. */
export async function writeLargeFile (path: string, size: number, seed = 7): Promise<void> {
  const key = createHash('sha256').update(`xo-mesh-${seed}`).digest().subarray(0, 16)
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  const fh = await open(path, 'w')
  const piece = Buffer.alloc(4 << 20)
  try {
    for (let left = size; left > 0; left -= piece.length) {
      const n = Math.min(left, piece.length)
      await fh.write(c.update(piece.subarray(0, n)))
    }
  } finally {
    await fh.close()
  }
}

const T = 1_600_000_000

/**
 * A tree with modes, symlinks (to files, dirs, nowhere), empty dirs, a 0-byte
 * file, UTF-8 and space-laden names, files sharing content, a multi-chunk
 * file, odd mtimes and (when fifo) a named pipe.
 */
export async function makeRichTree (dir: string, options: { fifo?: boolean } = {}): Promise<void> {
  await mkdir(join(dir, 'usr/bin'), { recursive: true })
  await mkdir(join(dir, 'usr/share/doc/ñandú café'), { recursive: true })
  await mkdir(join(dir, 'empty dir/nested empty'), { recursive: true })
  await mkdir(join(dir, 'etc'), { recursive: true })
  await writeFile(join(dir, 'usr/bin/tool'), '#!/bin/sh\necho hello\n')
  await chmod(join(dir, 'usr/bin/tool'), 0o755)
  await writeFile(join(dir, 'usr/bin/setuid-tool'), 'pretend binary')
  await chmod(join(dir, 'usr/bin/setuid-tool'), 0o4755)
  await writeFile(join(dir, 'etc/empty'), '')
  await writeFile(join(dir, 'etc/secret'), 'shh')
  await chmod(join(dir, 'etc/secret'), 0o600)
  await writeFile(join(dir, 'usr/share/doc/ñandú café/read me.txt'), 'Hola, ñandú — 日本語 ✓\n')
  const shared = prng(1, 300_000)
  await writeFile(join(dir, 'usr/share/doc/copy one.bin'), shared)
  await writeFile(join(dir, 'usr/share/doc/copy two.bin'), shared)
  await writeFile(join(dir, 'usr/share/big.bin'), prng(2, 3_000_000))
  await symlink('tool', join(dir, 'usr/bin/tool-link'))
  await symlink('../usr/share', join(dir, 'etc/share-dir-link'))
  await symlink('/nowhere/at/all', join(dir, 'etc/dangling'))
  if (options.fifo === true) execFileSync('mkfifo', ['-m', '0640', join(dir, 'etc/a fifo')])
  await utimes(join(dir, 'etc/empty'), T, T)
  await utimes(join(dir, 'usr/share/big.bin'), T + 0.123456, T + 0.123456)
  await lutimes(join(dir, 'usr/bin/tool-link'), T + 5, T + 5)
  await chmod(join(dir, 'empty dir'), 0o750)
  await utimes(join(dir, 'empty dir/nested empty'), T + 7, T + 7)
}

export interface Entry { type: string, mode: number, mtimeUs: number, size: number, hash?: string, target?: string, uid: number, gid: number }

/** Every entry under dir by relative path: type, mode, mtime (µs), content hash, link target, owner. */
export async function snapshot (dir: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>()
  const walk = async (abs: string, rel: string): Promise<void> => {
    for (const name of (await readdir(abs)).sort()) {
      const p = join(abs, name)
      const r = rel === '' ? name : `${rel}/${name}`
      const st = await lstat(p)
      const big = await lstat(p, { bigint: true })
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isFIFO() ? 'fifo' : 'other'
      const e: Entry = { type, mode: st.mode & 0o7777, mtimeUs: Number(big.mtimeNs / 1000n), size: type === 'file' ? st.size : 0, uid: st.uid, gid: st.gid }
      if (type === 'file') e.hash = createHash('sha256').update(await readFile(p)).digest('hex')
      if (type === 'symlink') { e.target = await readlink(p); e.mode = 0 }
      out.set(r, e)
      if (type === 'dir') await walk(p, r)
    }
  }
  await walk(dir, '')
  return out
}
