// An origin id names the agent whose outbox an item came from: its peer id as
// text (base58btc "12D3KooW…" or a base32 CID), letters and digits only.
import { MAX_ORIGIN_LENGTH } from './constants.ts'

const ORIGIN = /^[A-Za-z0-9]+$/

/** Whether text is a well-formed origin id (1 to MAX_ORIGIN_LENGTH letters and digits). */
export function isValidOrigin (text: string): boolean {
  return text.length > 0 && text.length <= MAX_ORIGIN_LENGTH && ORIGIN.test(text)
}
