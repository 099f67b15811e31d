// Journal backups on the mesh (docs/upstream.md, "Backups"):
//
//   backupService({ keep, maxBytes, nextHop })
//
// registers /xo-mesh/backup/1.0.0, keeps the backup chunks this agent relays
// (the relay's beforeCustody hook calls keepRelayed) and lets a restoring
// laptop read them back from its next hop (remote(bucket)).
import type { ComponentFactory } from '../component.ts'
import { BackupService, type BackupServiceInit } from './driver.ts'

export { BackupService, BackupUnreachableError, type BackupServiceInit, type RemoteBlobSource } from './driver.ts'
export { PROTOCOL as BACKUP_PROTOCOL } from './codec.ts'

export function backupService (init: BackupServiceInit = {}): ComponentFactory<BackupService> {
  return components => new BackupService(components, init)
}
