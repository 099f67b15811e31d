// What tells this machine apart from a copy of its disk: the hardware serial
// number (the XO's firmware writes it to the device tree), the machine id
// (/etc/machine-id, made on first boot by systemd) and this boot's id. The
// config and the environment may state them (tests run several "laptops" on
// one machine): XO_MESH_SERIAL, XO_MESH_MACHINE_ID, XO_MESH_BOOT_ID.
import { readFile } from 'node:fs/promises'

/** Where XO firmware and Linux publish these, first readable wins. */
export const SERIAL_FILES = ['/ofw/serial-number', '/proc/device-tree/serial-number']
export const MACHINE_ID_FILE = '/etc/machine-id'
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id'

export interface Machine {
  serial?: string
  machineId?: string
  bootId: string
}

async function firstLine (paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    try {
      // the device tree's strings end in NUL
      const t = (await readFile(p, 'utf8')).replace(/\0/g, '').trim()
      if (t !== '') return t
    } catch { /* next */ }
  }
  return undefined
}

/** Reads the machine's facts; what cannot be read is left out. Never throws. */
export async function readMachine (stated: { serial: string | null, machineId: string | null }, env: NodeJS.ProcessEnv = process.env): Promise<Machine> {
  const serial = nonEmpty(env.XO_MESH_SERIAL) ?? stated.serial ?? await firstLine(SERIAL_FILES)
  const machineId = nonEmpty(env.XO_MESH_MACHINE_ID) ?? stated.machineId ?? await firstLine([MACHINE_ID_FILE])
  const bootId = nonEmpty(env.XO_MESH_BOOT_ID) ?? await firstLine([BOOT_ID_FILE]) ?? ''
  return { ...(serial !== undefined ? { serial } : {}), ...(machineId !== undefined ? { machineId } : {}), bootId }
}

function nonEmpty (s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s.trim()
}
