// DNS messages as mDNS uses them (RFC 1035, RFC 6762 §18): the header, questions
// with the unicast-response bit, and A, PTR, TXT and SRV records with the
// cache-flush bit; any other record type is kept as its type code only.
// Decoding is the wire edge: it follows compression pointers only backwards,
// bounds every count by the bytes present, and throws DnsPacketError on
// anything malformed. Encoding writes names uncompressed (our packets are small).

export const TYPE_A = 1
export const TYPE_PTR = 12
export const TYPE_TXT = 16
export const TYPE_AAAA = 28
export const TYPE_SRV = 33
export const TYPE_ANY = 255
const CLASS_IN = 1

/** Largest mDNS message we read (RFC 6762 §17: 9000 bytes). */
export const MAX_PACKET = 9000

export class DnsPacketError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'DnsPacketError'
  }
}

export interface Question {
  /** Dotted, without the trailing dot; a dot or backslash inside a label is escaped with a backslash. */
  name: string
  type: number
  /** QU: the asker would accept a unicast answer. */
  unicast: boolean
}

interface RecordBase {
  name: string
  /** Seconds; 0 is a goodbye (RFC 6762 §10.1). */
  ttl: number
  /** Cache-flush: this record replaces every other of its name and type. */
  flush: boolean
}

export type DnsRecord =
  | RecordBase & { type: 'A', address: string }
  | RecordBase & { type: 'PTR', target: string }
  | RecordBase & { type: 'TXT', strings: string[] }
  | RecordBase & { type: 'SRV', priority: number, weight: number, port: number, target: string }
  | RecordBase & { type: 'OTHER', code: number }

export interface Packet {
  id: number
  response: boolean
  authoritative: boolean
  questions: Question[]
  answers: DnsRecord[]
  authorities: DnsRecord[]
  additionals: DnsRecord[]
}

/** Case-insensitive name equality (DNS names compare ASCII case-insensitively). */
export function sameName (a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase()
}

// ---- encoding ----

function splitName (name: string): string[] {
  const labels: string[] = []
  let label = ''
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!
    if (c === '\\' && i + 1 < name.length) label += name[++i]
    else if (c === '.') { labels.push(label); label = '' } else label += c
  }
  if (label !== '') labels.push(label)
  return labels
}

class Writer {
  private buf = Buffer.alloc(512)
  length = 0

  private room (n: number): void {
    if (this.length + n <= this.buf.length) return
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n))
    this.buf.copy(bigger, 0, 0, this.length)
    this.buf = bigger
  }

  u8 (v: number): void { this.room(1); this.buf.writeUInt8(v, this.length); this.length += 1 }
  u16 (v: number): void { this.room(2); this.buf.writeUInt16BE(v, this.length); this.length += 2 }
  u32 (v: number): void { this.room(4); this.buf.writeUInt32BE(v, this.length); this.length += 4 }
  bytes (b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.length); this.length += b.length }

  name (name: string): void {
    let total = 1
    for (const label of splitName(name)) {
      const b = Buffer.from(label)
      if (b.length === 0 || b.length > 63) throw new DnsPacketError(`label of ${b.length} bytes in ${JSON.stringify(name)}`)
      total += b.length + 1
      this.u8(b.length)
      this.bytes(b)
    }
    if (total > 255) throw new DnsPacketError(`name longer than 255 bytes: ${JSON.stringify(name)}`)
    this.u8(0)
  }

  /** Writes a 2-byte length, then whatever `fill` writes, then patches the length. */
  sized (fill: () => void): void {
    const at = this.length
    this.u16(0)
    fill()
    this.buf.writeUInt16BE(this.length - at - 2, at)
  }

  done (): Uint8Array { return new Uint8Array(this.buf.subarray(0, this.length)) }
}

const CODES = { A: TYPE_A, PTR: TYPE_PTR, TXT: TYPE_TXT, SRV: TYPE_SRV } as const

function writeRecord (w: Writer, r: DnsRecord): void {
  if (r.type === 'OTHER') throw new DnsPacketError(`cannot encode record type ${r.code}`)
  w.name(r.name)
  w.u16(CODES[r.type])
  w.u16(CLASS_IN | (r.flush ? 0x8000 : 0))
  w.u32(r.ttl)
  w.sized(() => {
    switch (r.type) {
      case 'A': {
        const parts = r.address.split('.').map(Number)
        if (parts.length !== 4 || parts.some(p => !Number.isInteger(p) || p < 0 || p > 255)) throw new DnsPacketError(`not an IPv4 address: ${r.address}`)
        for (const p of parts) w.u8(p)
        break
      }
      case 'PTR': w.name(r.target); break
      case 'TXT': {
        if (r.strings.length === 0) w.u8(0) // RFC 6763 §6.1: an empty TXT still has one empty string
        for (const s of r.strings) {
          const b = Buffer.from(s)
          if (b.length > 255) throw new DnsPacketError('TXT string longer than 255 bytes')
          w.u8(b.length)
          w.bytes(b)
        }
        break
      }
      case 'SRV': w.u16(r.priority); w.u16(r.weight); w.u16(r.port); w.name(r.target); break
    }
  })
}

/** Encodes a message. Throws DnsPacketError for a name, label or string that does not fit. */
export function encodePacket (p: Partial<Packet> & { id?: number }): Uint8Array {
  const w = new Writer()
  const questions = p.questions ?? []
  const answers = p.answers ?? []
  const authorities = p.authorities ?? []
  const additionals = p.additionals ?? []
  w.u16(p.id ?? 0)
  w.u16((p.response === true ? 0x8000 : 0) | (p.authoritative === true ? 0x0400 : 0))
  w.u16(questions.length)
  w.u16(answers.length)
  w.u16(authorities.length)
  w.u16(additionals.length)
  for (const q of questions) {
    w.name(q.name)
    w.u16(q.type)
    w.u16(CLASS_IN | (q.unicast ? 0x8000 : 0))
  }
  for (const r of answers) writeRecord(w, r)
  for (const r of authorities) writeRecord(w, r)
  for (const r of additionals) writeRecord(w, r)
  return w.done()
}

// ---- decoding ----

class Reader {
  readonly buf: Uint8Array
  readonly view: DataView
  pos = 0

  constructor (buf: Uint8Array) {
    this.buf = buf
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  need (n: number, at = this.pos): void {
    if (at + n > this.buf.length) throw new DnsPacketError('truncated message')
  }

  u8 (): number { this.need(1); return this.view.getUint8(this.pos++) }
  u16 (): number { this.need(2); const v = this.view.getUint16(this.pos); this.pos += 2; return v }
  u32 (): number { this.need(4); const v = this.view.getUint32(this.pos); this.pos += 4; return v }

  /** A possibly compressed name starting at the current position. */
  name (): string {
    const labels: string[] = []
    let pos = this.pos
    let jumped = false
    let length = 1
    // every pointer must go strictly backwards, so this ends; the bound is belt and braces
    for (let hops = 0; hops < 128; hops++) {
      this.need(1, pos)
      const len = this.buf[pos]!
      if (len === 0) {
        if (!jumped) this.pos = pos + 1
        return labels.join('.')
      }
      if ((len & 0xc0) === 0xc0) {
        this.need(2, pos)
        const target = ((len & 0x3f) << 8) | this.buf[pos + 1]!
        if (target >= pos) throw new DnsPacketError('compression pointer does not point backwards')
        if (!jumped) this.pos = pos + 2
        jumped = true
        pos = target
        continue
      }
      if ((len & 0xc0) !== 0) throw new DnsPacketError('unknown label type')
      this.need(1 + len, pos)
      length += len + 1
      if (length > 255) throw new DnsPacketError('name longer than 255 bytes')
      const label = Buffer.from(this.buf.subarray(pos + 1, pos + 1 + len)).toString('utf8')
      labels.push(label.replace(/[\\.]/g, c => '\\' + c))
      pos += 1 + len
    }
    throw new DnsPacketError('name with too many labels')
  }
}

function readRecord (r: Reader): DnsRecord {
  const name = r.name()
  const code = r.u16()
  const klass = r.u16()
  const ttl = r.u32()
  const rdlength = r.u16()
  r.need(rdlength)
  const end = r.pos + rdlength
  const base = { name, ttl, flush: (klass & 0x8000) !== 0 }
  let record: DnsRecord
  if ((klass & 0x7fff) !== CLASS_IN && (klass & 0x7fff) !== TYPE_ANY) {
    record = { ...base, type: 'OTHER', code }
  } else if (code === TYPE_A) {
    if (rdlength !== 4) throw new DnsPacketError('A record that is not 4 bytes')
    record = { ...base, type: 'A', address: `${r.u8()}.${r.u8()}.${r.u8()}.${r.u8()}` }
  } else if (code === TYPE_PTR) {
    record = { ...base, type: 'PTR', target: r.name() }
  } else if (code === TYPE_SRV) {
    record = { ...base, type: 'SRV', priority: r.u16(), weight: r.u16(), port: r.u16(), target: r.name() }
  } else if (code === TYPE_TXT) {
    const strings: string[] = []
    while (r.pos < end) {
      const len = r.u8()
      r.need(len)
      if (r.pos + len > end) throw new DnsPacketError('TXT string runs past its record')
      if (len > 0) strings.push(Buffer.from(r.buf.subarray(r.pos, r.pos + len)).toString('utf8'))
      r.pos += len
    }
    record = { ...base, type: 'TXT', strings }
  } else {
    record = { ...base, type: 'OTHER', code }
  }
  if (r.pos > end) throw new DnsPacketError('record data runs past its length')
  r.pos = end
  return record
}

/** Decodes a message. Throws DnsPacketError (only) on malformed input. */
export function decodePacket (buf: Uint8Array): Packet {
  if (buf.length > MAX_PACKET) throw new DnsPacketError(`message of ${buf.length} bytes (max ${MAX_PACKET})`)
  const r = new Reader(buf)
  const id = r.u16()
  const flags = r.u16()
  const counts = [r.u16(), r.u16(), r.u16(), r.u16()] as const
  // a question takes at least 5 bytes and a record at least 11: refuse counts the bytes cannot hold
  if (counts[0] * 5 + (counts[1] + counts[2] + counts[3]) * 11 > buf.length - 12) throw new DnsPacketError('counts larger than the message')
  const questions: Question[] = []
  for (let i = 0; i < counts[0]; i++) {
    const name = r.name()
    const type = r.u16()
    const klass = r.u16()
    questions.push({ name, type, unicast: (klass & 0x8000) !== 0 })
  }
  const section = (n: number): DnsRecord[] => {
    const out: DnsRecord[] = []
    for (let i = 0; i < n; i++) out.push(readRecord(r))
    return out
  }
  const answers = section(counts[1])
  const authorities = section(counts[2])
  const additionals = section(counts[3])
  return { id, response: (flags & 0x8000) !== 0, authoritative: (flags & 0x0400) !== 0, questions, answers, authorities, additionals }
}
