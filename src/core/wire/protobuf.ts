// The few protobuf (proto3) primitives the core's codecs need (blocks,
// election): varints, length-delimited fields and packed uint32s. Hand-written
// so the core needs no code generator at run time; the reader throws
// InvalidMessageError and nothing else, and never reads outside the range it
// was given.
import { InvalidMessageError } from './errors.ts'

const UTF8 = new TextEncoder()
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export const VARINT = 0
export const I64 = 1
export const LEN = 2
export const I32 = 5

/** Bytes a uvarint of v takes (v a non-negative safe integer). */
export function uvarintLength (v: number): number {
  let n = 1
  while (v >= 0x80) {
    v = Math.floor(v / 128)
    n++
  }
  return n
}

/** Writes uvarint v at pos of buf; returns the position after it. */
export function putUvarint (buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80
    v = Math.floor(v / 128)
  }
  buf[pos++] = v
  return pos
}

/** An append-only protobuf writer over a growing buffer. */
export class Writer {
  private buf: Uint8Array
  private pos = 0

  constructor (size = 64) {
    this.buf = new Uint8Array(size)
  }

  private ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n))
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  get length (): number { return this.pos }

  uvarint (v: number): this {
    this.ensure(10)
    this.pos = putUvarint(this.buf, this.pos, v)
    return this
  }

  tag (field: number, wire: number): this {
    return this.uvarint(field * 8 + wire)
  }

  raw (bytes: Uint8Array): this {
    this.ensure(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
    return this
  }

  /** A bytes field; written even when empty only if `always`. */
  bytes (field: number, bytes: Uint8Array, always = false): this {
    if (bytes.length === 0 && !always) return this
    return this.tag(field, LEN).uvarint(bytes.length).raw(bytes)
  }

  /** A uint32 field (omitted when 0, as proto3 does). */
  uint32 (field: number, v: number): this {
    if (v === 0) return this
    return this.tag(field, VARINT).uvarint(v)
  }

  /** A uint64 field holding a safe integer (omitted when 0). */
  uint53 (field: number, v: number): this {
    if (v === 0) return this
    return this.tag(field, VARINT).uvarint(v)
  }

  /** A string field, UTF-8 (omitted when empty). */
  string (field: number, v: string): this {
    return this.bytes(field, UTF8.encode(v))
  }

  bool (field: number, v: boolean): this {
    if (!v) return this
    return this.tag(field, VARINT).uvarint(1)
  }

  /** A packed repeated uint32 field (omitted when empty). */
  packed (field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this
    let len = 0
    for (let i = 0; i < values.length; i++) len += uvarintLength(values[i]!)
    this.tag(field, LEN).uvarint(len)
    this.ensure(len)
    for (let i = 0; i < values.length; i++) this.pos = putUvarint(this.buf, this.pos, values[i]!)
    return this
  }

  /** An embedded message field, always written (an empty message is meaningful in a oneof). */
  message (field: number, inner: Writer): this {
    return this.tag(field, LEN).uvarint(inner.pos).raw(inner.finish())
  }

  /** The bytes written so far (a view; the writer must not be used afterwards). */
  finish (): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

/** A bounds-checked protobuf reader over buf[start, end). */
export class Reader {
  pos: number
  readonly end: number
  readonly buf: Uint8Array
  /** What is being read, for error messages. */
  private readonly what: string

  constructor (buf: Uint8Array, what: string, start = 0, end = buf.length) {
    this.buf = buf
    this.pos = start
    this.end = end
    this.what = what
  }

  eof (): boolean { return this.pos >= this.end }

  fail (why: string): never {
    throw new InvalidMessageError(`${this.what}: ${why}`)
  }

  /** A uvarint that must fit in 32 bits, in at most 5 bytes. */
  uint32 (): number {
    let v = 0
    let mul = 1
    for (let i = 0; i < 5; i++) {
      if (this.pos >= this.end) this.fail('truncated varint')
      const b = this.buf[this.pos++]!
      v += (b & 0x7f) * mul
      if (b < 0x80) {
        if (v > 0xffffffff) this.fail('varint exceeds 32 bits')
        if (b === 0 && i > 0) this.fail('non-minimal varint')
        return v
      }
      mul *= 128
    }
    return this.fail('varint exceeds 32 bits')
  }

  /** A uvarint that must be a safe integer (below 2^53), in at most 8 bytes. */
  uint53 (): number {
    let v = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) this.fail('truncated varint')
      const b = this.buf[this.pos++]!
      v += (b & 0x7f) * mul
      if (b < 0x80) {
        if (v > Number.MAX_SAFE_INTEGER) this.fail('varint exceeds 2^53 - 1')
        if (b === 0 && i > 0) this.fail('non-minimal varint')
        return v
      }
      mul *= 128
    }
    return this.fail('varint exceeds 2^53 - 1')
  }

  /** A string field of at most max UTF-8 bytes; refuses invalid UTF-8. */
  string (max: number): string {
    const bytes = this.bytes()
    if (bytes.length > max) this.fail(`string of ${bytes.length} bytes exceeds ${max}`)
    try {
      return STRICT_UTF8.decode(bytes)
    } catch {
      return this.fail('string is not valid UTF-8')
    }
  }

  /** Skips a varint of up to 10 bytes (an unknown field). */
  skipVarint (): void {
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint')
      if (this.buf[this.pos++]! < 0x80) return
    }
    this.fail('varint longer than 10 bytes')
  }

  /** A field key: its number (≥ 1) and wire type. */
  tag (): { field: number, wire: number } {
    const key = this.uint32()
    const field = Math.floor(key / 8)
    const wire = key & 7
    if (field === 0) this.fail('field number 0')
    return { field, wire }
  }

  /** A reader over the next length-delimited field (an embedded message), named `what` in errors. */
  sub (what: string): Reader {
    const b = this.bytes()
    const start = b.byteOffset - this.buf.byteOffset
    return new Reader(this.buf, what, start, start + b.length)
  }

  /** A length-delimited field's bytes, as a view into the buffer. */
  bytes (): Uint8Array {
    const len = this.uint32()
    if (len > this.end - this.pos) this.fail('length-delimited field runs past the end')
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  bool (): boolean {
    const v = this.uint32()
    if (v > 1) this.fail('bool is not 0 or 1')
    return v === 1
  }

  /** Skips a field of an unknown number (groups are refused). */
  skip (wire: number): void {
    switch (wire) {
      case VARINT: this.skipVarint(); return
      case I64: this.advance(8); return
      case LEN: this.bytes(); return
      case I32: this.advance(4); return
      default: this.fail(`wire type ${wire} is not allowed`)
    }
  }

  private advance (n: number): void {
    if (n > this.end - this.pos) this.fail('truncated fixed-size field')
    this.pos += n
  }

  /** Appends the uint32s of a packed field to out, at most max entries in all. */
  packedInto (out: number[], max: number): void {
    const len = this.uint32()
    if (len > this.end - this.pos) this.fail('length-delimited field runs past the end')
    const inner = new Reader(this.buf, this.what, this.pos, this.pos + len)
    this.pos += len
    while (!inner.eof()) {
      if (out.length >= max) this.fail(`more than ${max} entries`)
      out.push(inner.uint32())
    }
  }
}
