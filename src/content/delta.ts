// Static deltas: how a build travels as an update to builds a laptop already
// holds. Content-defined chunking already means an update only ships the
// chunks that changed, but a few bytes inserted into a file still cost a
// whole ~64 KiB chunk or two, a new file costs all of its bytes, and every
// changed file drags its new file node and a new copy of every directory
// above it along (names, CIDs and sizes of all their entries). A delta
// replaces both:
//
//  - patches (delta-compute.ts, delta-apply.ts): the changed and new files,
//    in path order, grouped into a few zstd frames, each compressed with the
//    concatenated bytes of the group's old files as dictionary (zstd's
//    "patch-from" over just the changed files), rebuilding their new leaves;
//  - the node pack (node-pack.ts): the new build's record and dag-pb nodes
//    and the patch record as one zstd stream whose dictionary is the old
//    builds' nodes in the same walk order, so a new directory node costs
//    little more than its changed CIDs;
//  - the pack manifest (delta-record.ts), a bundle's second root, naming
//    the pack's blocks, its size, its dictionary's size and the patch
//    record's CID.
//
// All of it is computed once, by whoever exports first, kept in the block
// store like any other block and found again through <data dir>/deltas
// (delta-index.ts); a laptop that imported an update can pass the same
// bundle on. What a bundle carries is planned in delta-plan.ts.
//
// The receiver never trusts a delta: a pack item is stored only when its
// hash is one the build (or the manifest) refers to, through items already
// accepted; a patch's output is cut at the target's leaf sizes and every
// slice checked against its leaf CID. A delta can make an import fail,
// never make it store a wrong or stray block.
//
// This module gathers the public surface; the parts live in the files named.
export {
  DELTA_TYPE, PACK_TYPE, canonicalFrom, decodeDelta, decodeManifest, deltaFileCount, deltaTargets, encodeDelta, encodeManifest, keyOf, patchBlocks, sameBuilds,
  type DeltaPatch, type DeltaRecord, type PackManifest
} from './delta-record.ts'
export { deltaIndexPath, rememberDelta, storedDelta, type StoredDelta } from './delta-index.ts'
export { GROUP_SPAN, blockSet, completeBlocks, computeDelta, type DeltaProgress } from './delta-compute.ts'
export { MAX_DELTA_FILE, applyDelta, readFileBytes, type PutBlock } from './delta-apply.ts'
export { MAX_PACK_ITEM, MAX_PACK_SIZE, PACK_DICT_MAX, nodeDictionary, readPack, writePack } from './node-pack.ts'
export { planBundle, planUpdate, type BundlePlan, type UpdatePlan } from './delta-plan.ts'
export { MAX_DICTIONARY, MAX_WINDOW_LOG, PATCH_BLOCK_SIZE, deltasSupported } from './zstd.ts'
