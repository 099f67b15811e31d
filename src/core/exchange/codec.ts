// The wire codec of /xo-mesh/blocks/1.0.0 (protocols/blocks.md):
//
//   frame = uvarint(bodyLength) body          bodyLength ≤ MAX_FRAME_SIZE
//   body  = uvarint(headerLength) header payload
//
// The header is a protobuf `Frame` (blocks.proto) holding exactly one message;
// the payload is empty except after a Blocks header, where it is the blocks'
// bytes back to back, unencoded, so the bulk path never copies through
// protobuf. Decoders throw InvalidMessageError, and nothing else, on any input.
import { InvalidMessageError } from './errors.ts'
import { isValidCid } from './cid-bytes.ts'
import { isBitfieldFor } from './bitfield.ts'
import { LengthPrefixedReader } from '../wire/frames.ts'
import { LEN, Reader, VARINT, Writer, putUvarint, uvarintLength } from '../wire/protobuf.ts'
import { MAX_BLOCK_SIZE, MAX_CIDS, MAX_FRAME_SIZE, MAX_HEADER_SIZE, MAX_INDICES, MAX_LEAVES } from './constants.ts'
import type { Blocks, BlocksHead, ControlMessage, Message } from './messages.ts'

/** Field numbers of the `Frame` oneof. */
const FIELD = {
  have: 1,
  'have-update': 2,
  interest: 3,
  request: 4,
  cancel: 5,
  'dont-have': 6,
  choke: 7,
  unchoke: 8,
  blocks: 9
} as const
const TYPE_OF_FIELD = Object.fromEntries(Object.entries(FIELD).map(([k, v]) => [v, k])) as Record<number, Message['type']>

// ---- encoding ---------------------------------------------------------------

function controlBody (m: ControlMessage): Writer {
  const w = new Writer(m.type === 'have' && m.bitfield !== undefined ? m.bitfield.length + 64 : 64)
  switch (m.type) {
    case 'have':
      w.bytes(1, m.root).uint32(2, m.leaves).bool(3, m.complete)
      if (m.bitfield !== undefined) w.bytes(4, m.bitfield)
      break
    case 'have-update':
      w.bytes(1, m.root).packed(2, m.indices)
      break
    case 'interest':
      w.bytes(1, m.root).bool(2, m.interested)
      break
    case 'request':
    case 'cancel':
    case 'dont-have':
      w.bytes(1, m.root).packed(2, m.indices)
      for (const c of m.cids) w.bytes(3, c, true)
      break
    case 'choke':
    case 'unchoke':
      break
  }
  return w
}

/** Prefixes a header (and a payload of payloadLength bytes still to come) with both lengths. */
function frameHead (header: Uint8Array, payloadLength: number): Uint8Array {
  if (header.length > MAX_HEADER_SIZE) throw new RangeError(`header of ${header.length} bytes exceeds ${MAX_HEADER_SIZE}`)
  const bodyLength = uvarintLength(header.length) + header.length + payloadLength
  if (bodyLength > MAX_FRAME_SIZE) throw new RangeError(`frame of ${bodyLength} bytes exceeds ${MAX_FRAME_SIZE}`)
  const out = new Uint8Array(uvarintLength(bodyLength) + uvarintLength(header.length) + header.length)
  let pos = putUvarint(out, 0, bodyLength)
  pos = putUvarint(out, pos, header.length)
  out.set(header, pos)
  return out
}

/**
 * A whole control frame, length prefix included, ready to write. Throws
 * RangeError when the message exceeds the protocol's limits (a bug of the
 * caller: the core never emits such a message).
 */
export function encodeFrame (m: ControlMessage): Uint8Array {
  const body = controlBody(m)
  const header = new Writer(body.length + 8).message(FIELD[m.type], body).finish()
  return frameHead(header, 0)
}

/**
 * The head of a data frame (length prefix and Blocks header); write the
 * blocks' bytes after it, in entry order, sum(sizes) bytes in all. Throws
 * RangeError when the frame would exceed the limits.
 */
export function encodeBlocksHead (h: BlocksHead): Uint8Array {
  let payload = 0
  for (let i = 0; i < h.sizes.length; i++) payload += h.sizes[i]!
  const inner = new Writer(64 + h.sizes.length * 8 + h.cids.length * 40)
  inner.bytes(1, h.root).packed(2, h.indices)
  for (const c of h.cids) inner.bytes(3, c, true)
  inner.packed(4, h.sizes)
  const header = new Writer(inner.length + 8).message(FIELD.blocks, inner).finish()
  return frameHead(header, payload)
}

/** Bytes a control message takes on the wire, length prefix included (for simulators). */
export function frameSize (m: ControlMessage): number {
  return encodeFrame(m).length
}

/** Bytes of a data frame's head, length prefix included; the frame is this plus sum(sizes). */
export function blocksHeadSize (h: BlocksHead): number {
  return encodeBlocksHead(h).length
}

// ---- decoding ---------------------------------------------------------------

interface Fields {
  root?: Uint8Array
  leaves?: number
  flag?: boolean
  bitfield?: Uint8Array
  indices: number[]
  cids: Uint8Array[]
  sizes: number[]
}

/** Reads the fields of one message; which numbers mean what is the same for every message type. */
function readFields (r: Reader, type: Message['type']): Fields {
  const f: Fields = { indices: [], cids: [], sizes: [] }
  const once = (name: keyof Fields, present: boolean): void => {
    if (present) r.fail(`${name} given twice`)
  }
  const want = (wire: number, expected: number, name: string): void => {
    if (wire !== expected) r.fail(`${name} has wire type ${wire}`)
  }
  const packedOrVarint = (wire: number, into: number[], name: string, max: number): void => {
    if (wire === LEN) r.packedInto(into, max)
    else if (wire === VARINT) {
      if (into.length >= max) r.fail(`more than ${max} ${name}`)
      into.push(r.uint32())
    } else r.fail(`${name} has wire type ${wire}`)
  }
  const hasRoot = type !== 'choke' && type !== 'unchoke'
  const hasIndices = type !== 'have' && type !== 'interest' && hasRoot
  const hasCids = type === 'request' || type === 'cancel' || type === 'dont-have' || type === 'blocks'
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1 && hasRoot) {
      want(wire, LEN, 'root'); once('root', f.root !== undefined)
      f.root = r.bytes()
    } else if (field === 2 && type === 'have') {
      want(wire, VARINT, 'leaves'); once('leaves', f.leaves !== undefined)
      f.leaves = r.uint32()
    } else if (field === 2 && type === 'interest') {
      want(wire, VARINT, 'interested'); once('flag', f.flag !== undefined)
      f.flag = r.bool()
    } else if (field === 2 && hasIndices) {
      packedOrVarint(wire, f.indices, 'indices', MAX_INDICES)
    } else if (field === 3 && type === 'have') {
      want(wire, VARINT, 'complete'); once('flag', f.flag !== undefined)
      f.flag = r.bool()
    } else if (field === 3 && hasCids) {
      want(wire, LEN, 'cids')
      if (f.cids.length >= MAX_CIDS) r.fail(`more than ${MAX_CIDS} cids`)
      f.cids.push(r.bytes())
    } else if (field === 4 && type === 'have') {
      want(wire, LEN, 'bitfield'); once('bitfield', f.bitfield !== undefined)
      f.bitfield = r.bytes()
    } else if (field === 4 && type === 'blocks') {
      packedOrVarint(wire, f.sizes, 'sizes', MAX_INDICES + MAX_CIDS)
    } else {
      r.skip(wire) // unknown fields are skipped: later minor versions may add some
    }
  }
  return f
}

function checkIndices (r: Reader, indices: number[], name: string): Uint32Array {
  for (let i = 0; i < indices.length; i++) {
    if (indices[i]! >= MAX_LEAVES) r.fail(`${name} ${indices[i]} is not below ${MAX_LEAVES}`)
    if (i > 0 && indices[i]! <= indices[i - 1]!) r.fail(`${name} are not strictly ascending`)
  }
  return Uint32Array.from(indices)
}

function checkCids (r: Reader, cids: Uint8Array[]): Uint8Array[] {
  for (const c of cids) if (!isValidCid(c)) r.fail('a cid is not a sha2-256 CID of a raw, dag-pb or dag-cbor block')
  return cids
}

function root (r: Reader, f: Fields): Uint8Array {
  if (f.root === undefined) r.fail('no root')
  if (!isValidCid(f.root)) r.fail('root is not a sha2-256 CID of a raw, dag-pb or dag-cbor block')
  return f.root
}

function decodeMessage (r: Reader, type: Message['type'], payload: Uint8Array): Message {
  const f = readFields(r, type)
  switch (type) {
    case 'have': {
      const leaves = f.leaves ?? 0
      const complete = f.flag ?? false
      if (leaves > MAX_LEAVES) r.fail(`${leaves} leaves exceed ${MAX_LEAVES}`)
      if (complete) {
        if (f.bitfield !== undefined) r.fail('a complete Have carries a bitfield')
        return { type, root: root(r, f), leaves, complete }
      }
      const bitfield = f.bitfield ?? new Uint8Array(0)
      if (!isBitfieldFor(bitfield, leaves)) r.fail(`bitfield of ${bitfield.length} bytes does not fit ${leaves} leaves (or has padding bits set)`)
      return { type, root: root(r, f), leaves, complete, bitfield }
    }
    case 'have-update': {
      if (f.indices.length === 0) r.fail('no indices')
      return { type, root: root(r, f), indices: checkIndices(r, f.indices, 'indices') }
    }
    case 'interest':
      return { type, root: root(r, f), interested: f.flag ?? false }
    case 'request':
    case 'cancel':
    case 'dont-have': {
      if (type !== 'dont-have' && f.indices.length === 0 && f.cids.length === 0) r.fail('neither indices nor cids')
      return { type, root: root(r, f), indices: checkIndices(r, f.indices, 'indices'), cids: checkCids(r, f.cids) }
    }
    case 'choke':
    case 'unchoke':
      return { type }
    case 'blocks': {
      const entries = f.indices.length + f.cids.length
      if (entries === 0) r.fail('no blocks')
      if (f.indices.length > 0 && f.cids.length > 0) r.fail('leaves and cids in one frame')
      if (f.sizes.length !== entries) r.fail(`${f.sizes.length} sizes for ${entries} blocks`)
      const offsets = new Uint32Array(entries + 1)
      for (let i = 0; i < entries; i++) {
        if (f.sizes[i]! > MAX_BLOCK_SIZE) r.fail(`block of ${f.sizes[i]} bytes exceeds ${MAX_BLOCK_SIZE}`)
        offsets[i + 1] = offsets[i]! + f.sizes[i]!
      }
      if (offsets[entries] !== payload.length) r.fail(`sizes add up to ${offsets[entries]} bytes but the payload has ${payload.length}`)
      if (f.cids.length > 1) {
        const seen = new Set<string>()
        for (const c of f.cids) {
          const k = String.fromCharCode.apply(null, c as unknown as number[])
          if (seen.has(k)) r.fail('a cid appears twice')
          seen.add(k)
        }
      }
      return {
        type,
        root: root(r, f),
        indices: checkIndices(r, f.indices, 'indices'),
        cids: checkCids(r, f.cids),
        sizes: Uint32Array.from(f.sizes),
        offsets,
        payload
      } satisfies Blocks
    }
  }
}

/**
 * Decodes a frame body (the bytes after the length prefix, as FrameReader
 * yields them). Byte fields of the result, and a Blocks payload, are views
 * into `body`. Throws InvalidMessageError, and only that, when the body is
 * not a valid frame.
 */
export function decodeFrame (body: Uint8Array): Message {
  if (!(body instanceof Uint8Array)) throw new InvalidMessageError('frame: not bytes')
  if (body.length === 0) throw new InvalidMessageError('frame: empty')
  if (body.length > MAX_FRAME_SIZE) throw new InvalidMessageError(`frame: ${body.length} bytes exceed ${MAX_FRAME_SIZE}`)
  const outer = new Reader(body, 'frame')
  const headerLength = outer.uint32()
  if (headerLength > MAX_HEADER_SIZE) outer.fail(`header of ${headerLength} bytes exceeds ${MAX_HEADER_SIZE}`)
  if (headerLength > body.length - outer.pos) outer.fail('header runs past the end of the frame')
  const headerEnd = outer.pos + headerLength
  const header = new Reader(body, 'frame header', outer.pos, headerEnd)
  const payload = body.subarray(headerEnd)
  let message: Message | undefined
  while (!header.eof()) {
    const { field, wire } = header.tag()
    const type = TYPE_OF_FIELD[field]
    if (type === undefined) return header.fail(`unknown message type ${field}`)
    if (wire !== LEN) header.fail(`message ${type} has wire type ${wire}`)
    if (message !== undefined) header.fail('more than one message in a frame')
    const inner = header.bytes()
    const start = inner.byteOffset - body.byteOffset
    message = decodeMessage(new Reader(body, type, start, start + inner.length), type, payload)
  }
  if (message === undefined) return header.fail('no message')
  if (message.type !== 'blocks' && payload.length > 0) header.fail(`${payload.length} payload bytes after a ${message.type} message`)
  return message
}

/**
 * Splits a byte stream into frame bodies. Feed it chunks as they arrive;
 * it returns every frame completed so far (views into the chunks when a frame
 * lies within one chunk, else a copy). Throws InvalidMessageError on a length
 * prefix that is malformed, zero or above MAX_FRAME_SIZE, before buffering
 * the body: the driver then bans the sender and closes the stream.
 */
export class FrameReader extends LengthPrefixedReader {
  constructor () {
    super(MAX_FRAME_SIZE)
  }
}
