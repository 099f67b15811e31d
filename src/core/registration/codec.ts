// The wire codec of /xo-mesh/register/1.0.0 (protocols/registration.md,
// registration.proto): one stream per registration, one frame each way.
//
//   frame = uvarint(bodyLength) body        0 < bodyLength ≤ MAX_FRAME_SIZE
//   body  = RegisterMessage { oneof { Registration registration = 1; RegisterAnswer answer = 2; } }
//
// decodeRegisterMessage throws InvalidMessageError, and nothing else, on any
// input; every string and count is bounded before it is kept.
import { InvalidMessageError } from '../wire/errors.ts'
import { LEN, Reader, VARINT, Writer } from '../wire/protobuf.ts'
import type { RegisterAnswer, RegisterMessage, Registration, RosterEntry, RegisterStatus } from './types.ts'
import { MAX_FRAME_SIZE, MAX_ID_BYTES, MAX_NICKNAME_BYTES, MAX_PEER_ID_BYTES, MAX_REASON_BYTES, MAX_ROSTER, OWNER_KEY_BYTES } from './constants.ts'

const STATUS: Record<RegisterStatus, number> = { ok: 1, conflict: 2, refused: 3 }
const STATUS_OF = new Map(Object.entries(STATUS).map(([k, v]) => [v, k as RegisterStatus]))

function check (ok: boolean, why: string): void {
  if (!ok) throw new RangeError(`registration message: ${why}`)
}

const UTF8 = new TextEncoder()

function fits (s: string, max: number): boolean {
  return UTF8.encode(s).length <= max
}

function registrationBody (g: Registration): Writer {
  check(g.serial.length > 0 && fits(g.serial, MAX_ID_BYTES) && g.machineId.length > 0 && fits(g.machineId, MAX_ID_BYTES) && fits(g.bootId, MAX_ID_BYTES), 'serial, machine id or boot id out of limits')
  check(fits(g.nickname, MAX_NICKNAME_BYTES) && fits(g.school, MAX_NICKNAME_BYTES), 'nickname or school out of limits')
  check(g.ownerKey.length === OWNER_KEY_BYTES, `owner key of ${g.ownerKey.length} bytes`)
  return new Writer(128).string(1, g.serial).string(2, g.machineId).string(3, g.bootId).string(4, g.nickname).bytes(5, g.ownerKey).string(6, g.school)
}

function answerBody (a: RegisterAnswer): Writer {
  check(a.roster.length <= MAX_ROSTER, `${a.roster.length} roster entries`)
  check(fits(a.reason, MAX_REASON_BYTES), 'reason out of limits')
  const w = new Writer(256).uint32(1, STATUS[a.status]).string(2, a.reason)
  for (const e of a.roster) {
    check(e.peerId.length > 0 && fits(e.peerId, MAX_PEER_ID_BYTES) && fits(e.nickname, MAX_NICKNAME_BYTES) && fits(e.serial, MAX_ID_BYTES), 'a roster entry out of limits')
    w.message(3, new Writer(96).string(1, e.peerId).string(2, e.nickname).string(3, e.serial).bool(4, e.inReach))
  }
  return w
}

/** Encodes a message body. Throws RangeError when it breaks a limit (our own mistake). */
export function encodeRegisterMessage (m: RegisterMessage): Uint8Array {
  const out = m.type === 'registration' ? new Writer(160).message(1, registrationBody(m)).finish() : new Writer(512).message(2, answerBody(m)).finish()
  check(out.length <= MAX_FRAME_SIZE, `${out.length} bytes`)
  return out
}

function want (r: Reader, wire: number, expected: number, what: string): void {
  if (wire !== expected) r.fail(`${what} has wire type ${wire}`)
}

function readRegistration (r: Reader): Registration {
  const g: Registration = { type: 'registration', serial: '', machineId: '', bootId: '', nickname: '', ownerKey: new Uint8Array(0), school: '' }
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field < 1 || field > 6) { r.skip(wire); continue }
    want(r, wire, LEN, `field ${field}`)
    switch (field) {
      case 1: g.serial = r.string(MAX_ID_BYTES); break
      case 2: g.machineId = r.string(MAX_ID_BYTES); break
      case 3: g.bootId = r.string(MAX_ID_BYTES); break
      case 4: g.nickname = r.string(MAX_NICKNAME_BYTES); break
      case 5: {
        const k = r.bytes()
        if (k.length !== OWNER_KEY_BYTES) r.fail(`owner key of ${k.length} bytes, not ${OWNER_KEY_BYTES}`)
        g.ownerKey = k
        break
      }
      default: g.school = r.string(MAX_NICKNAME_BYTES)
    }
  }
  if (g.serial === '' || g.machineId === '' || g.ownerKey.length === 0) r.fail('a registration needs a serial, a machine id and an owner key')
  return g
}

function readEntry (r: Reader): RosterEntry {
  const e: RosterEntry = { peerId: '', nickname: '', serial: '', inReach: false }
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) { want(r, wire, LEN, 'peer id'); e.peerId = r.string(MAX_PEER_ID_BYTES) } else if (field === 2) { want(r, wire, LEN, 'nickname'); e.nickname = r.string(MAX_NICKNAME_BYTES) } else if (field === 3) { want(r, wire, LEN, 'serial'); e.serial = r.string(MAX_ID_BYTES) } else if (field === 4) { want(r, wire, VARINT, 'in reach'); e.inReach = r.bool() } else r.skip(wire)
  }
  if (e.peerId === '') r.fail('a roster entry has no peer id')
  return e
}

function readAnswer (r: Reader): RegisterAnswer {
  let status: number | undefined
  let reason = ''
  const roster: RosterEntry[] = []
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) { want(r, wire, VARINT, 'status'); status = r.uint32() } else if (field === 2) { want(r, wire, LEN, 'reason'); reason = r.string(MAX_REASON_BYTES) } else if (field === 3) {
      want(r, wire, LEN, 'roster entry')
      if (roster.length >= MAX_ROSTER) r.fail(`more than ${MAX_ROSTER} roster entries`)
      roster.push(readEntry(r.sub('roster entry')))
    } else r.skip(wire)
  }
  const s = STATUS_OF.get(status ?? 0)
  if (s === undefined) return r.fail(`unknown status ${status ?? 0}`)
  return { type: 'answer', status: s, reason, roster }
}

/** Decodes a message body. Throws InvalidMessageError on anything else. */
export function decodeRegisterMessage (body: Uint8Array): RegisterMessage {
  if (body.length > MAX_FRAME_SIZE) throw new InvalidMessageError(`registration message: ${body.length} bytes exceeds ${MAX_FRAME_SIZE}`)
  const r = new Reader(body, 'registration message')
  let out: RegisterMessage | undefined
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field !== 1 && field !== 2) { r.skip(wire); continue }
    want(r, wire, LEN, field === 1 ? 'registration' : 'answer')
    if (out !== undefined) r.fail('more than one message in a frame')
    out = field === 1 ? readRegistration(r.sub('registration')) : readAnswer(r.sub('answer'))
  }
  if (out === undefined) return r.fail('no registration or answer')
  return out
}
