// A changeset: the catalog operations a writer asks the commit chain to apply, cut into signed parts of
// bounded size plus a signed header that names every part by digest. The commit function applies them
// to whatever head it finds, so the operations carry full metadata and never depend on head state.
import { createHash } from 'node:crypto';
import { ContentHash, parseHashAlgorithm } from './hash.js';
import type { DirectoryEntry } from './catalog-entry.js';
import type { FileChunk } from './catalog-db.js';

export const CHANGESET_TYPE = 'scvmfs-changeset';
export const CHANGESET_PART_TYPE = 'scvmfs-changeset-part';
/** Operations per part: a part is read whole by a function with little memory. */
export const MAX_OPS_PER_PART = 2000;

export interface WireEntry {
  name: string;
  mode: number;
  size: number;
  mtime: number;
  mtimeNs: number | null;
  uid: number;
  gid: number;
  /** ContentHash hex (with its algorithm suffix), or null. */
  hash: string | null;
  symlink: string;
  linkcount: number;
  extraFlags: number;
  compression: 'zlib' | 'none';
  chunkAlgorithm: string | null;
  /** base64 of the xattr blob, or null. */
  xattr: string | null;
}

export interface WireChunk {
  offset: number;
  size: number;
  hash: string;
}

export type ChangeOp =
  /** `links`: further names of a hardlink group in the same directory, sharing the entry. */
  | { op: 'upsert'; path: string; entry: WireEntry; chunks?: WireChunk[]; links?: { path: string; name: string }[] }
  | { op: 'remove'; path: string }
  | { op: 'nest'; path: string }
  | { op: 'unnest'; path: string };

export interface ChangesetPart {
  fqrn: string;
  txnId: string;
  index: number;
  ops: ChangeOp[];
}

export interface ChangesetHeader {
  fqrn: string;
  txnId: string;
  publisher: string;
  leaseId: string;
  /** The sub-path the changeset edits; every operation lies within it. */
  path: string;
  /** sha256 hex of each serialized signed part, in order. */
  parts: string[];
  tag?: { name: string; description?: string };
  createdAt: string;
}

export const TXN_PREFIX = '.scvmfs/txn/';

export function txnKeys(txnId: string) {
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(txnId)) throw new Error(`invalid transaction id '${txnId}'`);
  const base = `${TXN_PREFIX}${txnId}/`;
  return {
    header: `${base}changeset.json`,
    part: (i: number) => `${base}part-${String(i).padStart(6, '0')}.json`,
    state: `${base}state.json`,
    prefix: base,
  };
}

export function partDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function entryToWire(e: DirectoryEntry): WireEntry {
  return {
    name: e.name, mode: e.mode, size: e.size, mtime: e.mtime, mtimeNs: e.mtimeNs, uid: e.uid, gid: e.gid,
    hash: e.hash ? e.hash.toHex() : null, symlink: e.symlink, linkcount: e.linkcount, extraFlags: e.extraFlags,
    compression: e.compression, chunkAlgorithm: e.chunkAlgorithm ?? null,
    xattr: e.xattr ? e.xattr.toString('base64') : null,
  };
}

function int(v: unknown, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`changeset: bad ${what}`);
  return v;
}

/** Rebuilds an entry, refusing anything that is not exactly the wire shape. */
export function entryFromWire(w: WireEntry): DirectoryEntry {
  if (typeof w !== 'object' || w === null) throw new Error('changeset: entry is not an object');
  if (typeof w.name !== 'string' || w.name.includes('/') || Buffer.byteLength(w.name) > 255) throw new Error('changeset: bad entry name');
  if (typeof w.symlink !== 'string') throw new Error('changeset: bad symlink');
  if (w.compression !== 'zlib' && w.compression !== 'none') throw new Error('changeset: bad compression');
  const chunkAlgorithm = w.chunkAlgorithm === null ? undefined : parseHashAlgorithm(w.chunkAlgorithm);
  return {
    name: w.name, mode: int(w.mode, 'mode'), size: int(w.size, 'size'), mtime: int(w.mtime, 'mtime', -(2 ** 40)),
    mtimeNs: w.mtimeNs === null ? null : int(w.mtimeNs, 'mtimeNs'), uid: int(w.uid, 'uid'), gid: int(w.gid, 'gid'),
    hash: w.hash === null ? null : ContentHash.fromHex(w.hash), symlink: w.symlink, linkcount: int(w.linkcount, 'linkcount', 1),
    hardlinkGroup: 0, extraFlags: int(w.extraFlags, 'flags'), compression: w.compression, chunkAlgorithm,
    xattr: w.xattr === null ? null : Buffer.from(w.xattr, 'base64'),
  };
}

export function chunksToWire(chunks: FileChunk[]): WireChunk[] {
  return chunks.map((c) => ({ offset: c.offset, size: c.size, hash: c.hash.toHex() }));
}

export function chunksFromWire(chunks: WireChunk[] | undefined): FileChunk[] {
  if (chunks === undefined) return [];
  if (!Array.isArray(chunks)) throw new Error('changeset: chunks is not a list');
  let expected = 0;
  return chunks.map((c) => {
    if (int(c.offset, 'chunk offset') !== expected) throw new Error('changeset: chunks are not contiguous');
    expected += int(c.size, 'chunk size', 1);
    return { offset: c.offset, size: c.size, hash: ContentHash.fromHex(c.hash) };
  });
}

/** Every path an operation writes, for scope checks. */
export function opPaths(op: ChangeOp): string[] {
  if (op.op === 'upsert') return [op.path, ...(op.links ?? []).map((l) => l.path)];
  return [op.path];
}
