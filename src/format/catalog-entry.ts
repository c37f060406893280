// One row of the catalog table as a value, and the flag/mode rules of spec §4.3–§4.4.
import { ALGORITHM_NUMBER, algorithmFromNumber, ContentHash, type HashAlgorithm } from './hash.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export const FLAG = {
  dir: 1,
  nestedMountpoint: 2,
  file: 4,
  link: 8,
  special: 16,
  nestedRoot: 32,
  chunked: 64,
  external: 128,
  bindMountpoint: 0x4000,
  hidden: 0x8000,
  directIo: 0x10000,
} as const;
const HASH_BITS_SHIFT = 8;
const COMPRESSION_SHIFT = 11;

export type EntryKind = 'directory' | 'file' | 'symlink' | 'special';

export function kindOfMode(mode: number): EntryKind {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'directory';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'symlink';
    default: return 'special';
  }
}

/** What a catalog records about one path. Type comes from `mode`, as the client reads it. */
export interface DirectoryEntry {
  name: string;
  mode: number;
  /** Regular: bytes; directory: 4096 by convention; symlink: target length. */
  size: number;
  mtime: number;
  /** Nanosecond part, or null when unknown. */
  mtimeNs: number | null;
  uid: number;
  gid: number;
  /** Content hash of a regular, unchunked file's object. */
  hash: ContentHash | null;
  /** Symlink target; '' otherwise. */
  symlink: string;
  /** Directories: 2 + child directories; files: members of the hardlink group (1 when none). */
  linkcount: number;
  hardlinkGroup: number;
  /** cvmfs-only flags beyond type: mountpoint/nested root markers, chunked, external, hidden. */
  extraFlags: number;
  /** 'none' marks an uncompressed object (flag bits 11–13 = 1). */
  compression: 'zlib' | 'none';
  /** Hash algorithm for chunked files that carry no whole-file hash. */
  chunkAlgorithm?: HashAlgorithm;
  /** Extended attributes as the §4.7 blob (`encodeXattrs`), null when none; never zero-length. */
  xattr: Buffer | null;
}

export function entryKind(e: Pick<DirectoryEntry, 'mode'>): EntryKind {
  return kindOfMode(e.mode);
}

/** The flags column for an entry (built the way CreateDatabaseFlags does). */
export function entryFlags(e: DirectoryEntry): number {
  const kind = entryKind(e);
  let flags = e.extraFlags;
  if (kind === 'directory') {
    flags |= FLAG.dir;
  } else {
    flags |= FLAG.file;
    if (kind === 'symlink') flags |= FLAG.link;
    if (kind === 'special') flags |= FLAG.special;
  }
  const algorithm = e.hash?.algorithm ?? ((flags & FLAG.chunked) ? e.chunkAlgorithm : undefined);
  // Chunk rows carry raw digests only: without the algorithm bits they would be read as SHA-1.
  if (flags & FLAG.chunked && !algorithm) throw new Error(`chunked file '${e.name}' has no hash algorithm`);
  if (algorithm) flags |= (ALGORITHM_NUMBER[algorithm] - 1) << HASH_BITS_SHIFT;
  if (kind === 'file' && e.compression === 'none') flags |= 1 << COMPRESSION_SHIFT;
  return flags;
}

export function hardlinksValue(e: Pick<DirectoryEntry, 'hardlinkGroup' | 'linkcount'>): bigint {
  return (BigInt(e.hardlinkGroup) << 32n) | BigInt(e.linkcount);
}

/** The raw shape of a catalog row as SQLite returns it (integers as bigint where they can be large). */
export interface CatalogRow {
  hardlinks: bigint | number;
  hash: Buffer | null;
  size: bigint | number;
  mode: number | bigint;
  mtime: number | bigint;
  mtimens?: number | bigint | null;
  flags: number | bigint;
  name: string | null;
  symlink: string | null;
  uid: number | bigint;
  gid: number | bigint;
  xattr?: Buffer | null;
}

const TYPE_FLAGS = FLAG.dir | FLAG.file | FLAG.link | FLAG.special;

export function entryFromRow(row: CatalogRow): DirectoryEntry {
  const flags = Number(row.flags);
  const hardlinks = BigInt(row.hardlinks);
  const algorithmBits = (flags >> HASH_BITS_SHIFT) & 0x7;
  const algorithm = algorithmFromNumber(algorithmBits + 1);
  return {
    name: row.name ?? '',
    mode: Number(row.mode),
    size: Number(row.size),
    mtime: Number(row.mtime),
    mtimeNs: row.mtimens === undefined || row.mtimens === null ? null : Number(row.mtimens),
    uid: Number(row.uid),
    gid: Number(row.gid),
    hash: row.hash && row.hash.length > 0 ? new ContentHash(algorithm, Buffer.from(row.hash)) : null,
    symlink: row.symlink ?? '',
    linkcount: Number(hardlinks & 0xffffffffn),
    hardlinkGroup: Number(hardlinks >> 32n),
    extraFlags: flags & ~TYPE_FLAGS & ~(0x7 << HASH_BITS_SHIFT) & ~(0x7 << COMPRESSION_SHIFT),
    compression: ((flags >> COMPRESSION_SHIFT) & 0x7) === 1 ? 'none' : 'zlib',
    chunkAlgorithm: flags & FLAG.chunked ? algorithm : undefined,
    xattr: row.xattr && row.xattr.length > 0 ? Buffer.from(row.xattr) : null,
  };
}

/**
 * The fields of a row that a source walk compares with the source, read without building a whole
 * entry (no hash object, no bigints): a walk of 10^6 unchanged entries builds none.
 */
export interface EntryStat extends Pick<DirectoryEntry, 'name' | 'mode' | 'size' | 'mtime' | 'mtimeNs' | 'uid' | 'gid' |
  'symlink' | 'xattr' | 'linkcount' | 'hardlinkGroup'> {
  /** The row names its content: a hash, or chunks. */
  hasContent: boolean;
}

export function entryStat(e: DirectoryEntry): EntryStat {
  return {
    name: e.name, mode: e.mode, size: e.size, mtime: e.mtime, mtimeNs: e.mtimeNs, uid: e.uid, gid: e.gid,
    symlink: e.symlink, xattr: e.xattr, linkcount: e.linkcount, hardlinkGroup: e.hardlinkGroup,
    hasContent: e.hash !== null || e.chunkAlgorithm !== undefined,
  };
}

/** Whether two entries describe the same thing (used to skip rewriting unchanged rows). */
export function sameEntry(a: DirectoryEntry, b: DirectoryEntry): boolean {
  return a.name === b.name && a.mode === b.mode && a.size === b.size && a.mtime === b.mtime &&
    a.mtimeNs === b.mtimeNs && a.uid === b.uid && a.gid === b.gid && a.symlink === b.symlink &&
    a.linkcount === b.linkcount && a.hardlinkGroup === b.hardlinkGroup && a.extraFlags === b.extraFlags &&
    a.compression === b.compression &&
    ((a.hash === null && b.hash === null) || (a.hash !== null && b.hash !== null && a.hash.equals(b.hash))) &&
    ((a.xattr === null && b.xattr === null) || (a.xattr !== null && b.xattr !== null && a.xattr.equals(b.xattr)));
}

/** A directory made by the publisher itself (the root, or a missing parent of a --path), owned by us. */
export function newDirectoryEntry(name: string, mtime: number, owner: { uid: number; gid: number }): DirectoryEntry {
  return {
    name, mode: S_IFDIR | 0o755, size: 4096, mtime, mtimeNs: 0, uid: owner.uid, gid: owner.gid, hash: null,
    symlink: '', linkcount: 2, hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr: null,
  };
}

/**
 * A device number as glibc's makedev encodes it, which is what `stat` reports as st_rdev and what the
 * catalog's size column holds for character and block devices (spec §4.3).
 */
export function makedev(major: number, minor: number): number {
  const M = BigInt(major);
  const m = BigInt(minor);
  const dev = ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn);
  if (dev > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`device number ${major},${minor} does not fit a catalog size`);
  return Number(dev);
}
