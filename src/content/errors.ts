// Named errors of the content layer. The CLI prints `message` as one line on
// stderr; `code` lets callers and tests tell them apart without parsing text.

/** Base class: every error the content layer throws on purpose. */
export class ContentError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A block was asked for that the store does not hold. */
export class BlockNotFoundError extends ContentError {
  constructor (cid: string) { super('ERR_BLOCK_NOT_FOUND', `block ${cid} is not in the store`) }
}

/** Bytes whose hash does not match the CID they were stored or sent under. */
export class CorruptBlockError extends ContentError {
  constructor (cid: string, where: string) { super('ERR_CORRUPT_BLOCK', `block ${cid} from ${where} does not match its hash`) }
}

/** A CID this version cannot handle (codec or hash we do not use). */
export class UnsupportedCidError extends ContentError {
  constructor (cid: string, why: string) { super('ERR_UNSUPPORTED_CID', `unsupported CID ${cid}: ${why}`) }
}

/** The filesystem holding the store or a target is full. */
export class NoSpaceError extends ContentError {
  constructor (where: string, options?: { cause?: unknown }) { super('ERR_NO_SPACE', `no space left on the device holding ${where}`, options) }
}

/** Input that is not what it claims to be: a bad CAR, a wrong checksum, a malformed record. */
export class InvalidInputError extends ContentError {
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_INVALID_INPUT', message, options) }
}

/** A build cannot be used because some of its blocks are missing. */
export class IncompleteBuildError extends ContentError {
  readonly missing: number
  constructor (cid: string, missing: number) {
    super('ERR_INCOMPLETE_BUILD', `build ${cid} is incomplete: ${missing} block(s) missing from the store (fetch or import them first)`)
    this.missing = missing
  }
}

/** A build that this data directory does not hold at all. */
export class BuildNotFoundError extends ContentError {
  constructor (cid: string) { super('ERR_BUILD_NOT_FOUND', `build ${cid} is not in this data directory (fetch or import it first)`) }
}
