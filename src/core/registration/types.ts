// The values of the registration protocol and of a school server's registry.

/** What a laptop tells its school server about itself. */
export interface Registration {
  type: 'registration'
  /** The hardware serial number: a clone of a disk image does not carry it. */
  serial: string
  /** /etc/machine-id (or the configured one): with the serial, what tells two machines apart. */
  machineId: string
  /** This boot's id (/proc/sys/kernel/random/boot_id): informational. */
  bootId: string
  /** The owner's nickname, as Sugar shows it. */
  nickname: string
  /** The owner's X25519 public key: backups are encrypted to it. */
  ownerKey: Uint8Array
  /** The school the laptop believes it is in ('' when not configured). */
  school: string
}

/** ok: registered; conflict: this peer id belongs to another machine (a cloned identity): make a new one; refused: malformed. */
export type RegisterStatus = 'ok' | 'conflict' | 'refused'

/** One laptop of the school as a roster shows it. */
export interface RosterEntry {
  peerId: string
  nickname: string
  serial: string
  /** Connected to the school server when the roster was made. */
  inReach: boolean
}

export interface RegisterAnswer {
  type: 'answer'
  status: RegisterStatus
  reason: string
  /** The school's roster (on ok). */
  roster: RosterEntry[]
}

export type RegisterMessage = Registration | RegisterAnswer

/** A school server's record of one registered laptop. */
export interface RegistryEntry {
  peerId: string
  serial: string
  machineId: string
  bootId: string
  nickname: string
  /** Hex of the owner's X25519 public key. */
  ownerKey: string
  school: string
  /** ms since the epoch, the server's clock. */
  registeredAt: number
  lastSeen: number
  /**
   * Whether this agent has relayed the entry upstream while it served. An
   * agent answers registrations before the election makes it the server (a
   * clone check); what it took then goes upstream at the next registration
   * it answers as the server, not never.
   */
  relayed?: boolean
}
