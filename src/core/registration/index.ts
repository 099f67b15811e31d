/**
 * Registration (/xo-mesh/register/1.0.0, protocols/registration.md): a laptop
 * tells its school server its serial, machine id, owner's nickname and
 * public key; the server keeps a registry, detects a cloned identity and
 * answers with the school's roster. Codec and pure decisions only.
 */
export * from './types.ts'
export * from './constants.ts'
export * from './codec.ts'
export * from './registry.ts'
