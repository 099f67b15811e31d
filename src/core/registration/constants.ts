// Limits of /xo-mesh/register/1.0.0 (protocols/registration.md).

export const PROTOCOL = '/xo-mesh/register/1.0.0'
/** A frame body, bytes: a full roster fits. */
export const MAX_FRAME_SIZE = 1024 * 1024
/** A serial number, machine id or boot id, bytes. */
export const MAX_ID_BYTES = 64
/** A nickname or school name, bytes. */
export const MAX_NICKNAME_BYTES = 128
export const MAX_PEER_ID_BYTES = 128
export const MAX_REASON_BYTES = 512
/** Laptops one roster may list (a school). */
export const MAX_ROSTER = 4096
/** The owner's X25519 public key, bytes. */
export const OWNER_KEY_BYTES = 32
