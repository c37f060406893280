// What a changeset operation may ask for: the rows the commit function writes from it must be rows
// that `verify` and the stock client accept, and that later publishes can build on. The commit function
// checks every operation of a part before applying any; the writer checks each one before uploading, so
// a bad local tree fails early. Pure: no I/O, so both sides share exactly these rules (docs/publishers.md).
import { RefusedError } from '../errors.js';
import { FLAG, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './catalog-entry.js';
import { ContentHash, HASH_ALGORITHMS, type HashAlgorithm } from './hash.js';
import { baseName, isWithin, parentPath } from './md5path.js';
import { decodeXattrs, encodeXattrs } from './xattr.js';
import { MAX_OPS_PER_PART, type ChangeOp } from './changeset.js';

/**
 * Bytes of one serialized signed part at most: the commit function reads a part whole in a sandbox of
 * 128 MB, so the size is checked on the stored object before a byte of it is parsed.
 */
export const MAX_PART_BYTES = 8 * 1024 * 1024;

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const FILE_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]);
/** extraFlags a writer may set; mountpoint, nested-root, external, hidden and bind-mountpoint rows are the server's. */
const WRITER_FLAGS = FLAG.chunked;
const MAX_NAME_BYTES = 255;
const MAX_UINT32 = 0xffffffff;

const OP_FIELDS: Record<string, readonly string[]> = {
  upsert: ['op', 'path', 'entry', 'chunks', 'links'],
  remove: ['op', 'path'],
  nest: ['op', 'path'],
  unnest: ['op', 'path'],
};
const ENTRY_FIELDS = ['name', 'mode', 'size', 'mtime', 'mtimeNs', 'uid', 'gid', 'hash', 'symlink', 'linkcount',
  'extraFlags', 'compression', 'chunkAlgorithm', 'xattr'];

/** An operation that must not be applied: names its part, index within the part, and path. */
export class InvalidOperationError extends RefusedError {
  constructor(readonly part: number, readonly index: number, readonly path: string, reason: string) {
    super('invalid-operation', `changeset part ${part}, operation ${index} ('${path || '/'}'): ${reason}`, { part, index, path });
    this.name = 'InvalidOperationError';
  }
}

/** A part that cannot be read safely (too large, too many operations, not for this transaction). */
export class InvalidPartError extends RefusedError {
  constructor(readonly part: number, reason: string) {
    super('invalid-changeset-part', `changeset part ${part}: ${reason}`, { part });
    this.name = 'InvalidPartError';
  }
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** A string as it will be stored: UTF-8 without lone surrogates (which would not survive the round trip). */
function isWellFormed(s: string): boolean {
  return !SURROGATE.test(s) || Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** Why `name` cannot be one directory entry's name, or null. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'name is not a string';
  if (name === '') return 'name is empty';
  if (name === '.' || name === '..') return `name is '${name}'`;
  if (name.includes('/')) return `name '${name}' contains '/'`;
  if (name.includes('\0')) return 'name contains a NUL byte';
  if (!isWellFormed(name)) return 'name is not valid UTF-8';
  if (name.length > MAX_NAME_BYTES / 3 && Buffer.byteLength(name) > MAX_NAME_BYTES) return `name is longer than ${MAX_NAME_BYTES} bytes`;
  return null;
}

/** Why `path` is not a canonical repository path ('' or '/a/b') inside `scope`, or null. */
function pathProblem(path: unknown, scope: string): string | null {
  if (typeof path !== 'string') return 'path is not a string';
  if (path !== '') {
    if (path[0] !== '/') return "path is not in canonical form (it must start with '/')";
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const c = parts[i]!;
      if (c === '') return 'path is not in canonical form (empty component)';
      if (c === '.' || c === '..') return `path contains '${c}'`;
      if (c.includes('\0')) return 'path contains a NUL byte';
      // A UTF-16 unit is at most 3 UTF-8 bytes: only long components need counting.
      if (c.length > MAX_NAME_BYTES / 3 && Buffer.byteLength(c) > MAX_NAME_BYTES) return `path component '${c.slice(0, 40)}…' is longer than ${MAX_NAME_BYTES} bytes`;
    }
    if (!isWellFormed(path)) return 'path is not valid UTF-8';
  }
  if (!isWithin(path, scope)) return `lies outside the changeset's path '${scope || '/'}'`;
  return null;
}

function unknownFields(value: object, allowed: readonly string[]): string[] {
  return Object.keys(value).filter((k) => !allowed.includes(k));
}

function isInt(v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function hashOf(text: unknown): ContentHash | string {
  if (typeof text !== 'string') return 'is not a string';
  try {
    return ContentHash.fromHex(text);
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why the upsert's entry, chunks and links do not make rows `verify` accepts, or null. */
function upsertProblem(op: Extract<ChangeOp, { op: 'upsert' }>, scope: string): string | null {
  const e = op.entry as unknown as Record<string, unknown>;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'entry is not an object';
  const extra = unknownFields(e, ENTRY_FIELDS);
  if (extra.length > 0) return `entry has unknown fields: ${extra.join(', ')}`;
  const expectedName = op.path === '' ? '' : baseName(op.path);
  if (op.path !== '' || e.name !== '') {
    const bad = nameProblem(e.name);
    if (bad) return bad;
  }
  if (e.name !== expectedName) return `entry name '${String(e.name)}' is not the last component of its path`;

  if (!isInt(e.mode, 0, 0o177777) || !FILE_TYPES.has(e.mode & S_IFMT)) return `mode ${String(e.mode)} is not a file type with permission bits`;
  const type = e.mode & S_IFMT;
  const regular = type === S_IFREG;
  if (!isInt(e.size, 0)) return `size ${String(e.size)} is not a non-negative integer`;
  if (!isInt(e.mtime, -(2 ** 40), 2 ** 40)) return `mtime ${String(e.mtime)} is out of range`;
  if (e.mtimeNs !== null && !isInt(e.mtimeNs, 0, 999_999_999)) return `mtimeNs ${String(e.mtimeNs)} is not 0..999999999 or null`;
  if (!isInt(e.uid, 0, MAX_UINT32) || !isInt(e.gid, 0, MAX_UINT32)) return 'uid and gid must be 32-bit unsigned integers';
  if (!isInt(e.extraFlags, 0, MAX_UINT32)) return `flags ${String(e.extraFlags)} are not an unsigned integer`;
  const forbidden = e.extraFlags & ~WRITER_FLAGS;
  if (forbidden !== 0) {
    const names = Object.entries(FLAG).filter(([, bit]) => (forbidden & bit) !== 0).map(([n]) => n);
    return `flags ${names.length > 0 ? names.join(', ') : `0x${forbidden.toString(16)}`} may not be set by a writer (only 'chunked')`;
  }
  const chunked = (e.extraFlags & FLAG.chunked) !== 0;
  if (e.compression !== 'zlib' && e.compression !== 'none') return `compression '${String(e.compression)}' is not 'zlib' or 'none'`;
  if (!regular && e.compression !== 'zlib') return 'only regular files may be stored uncompressed';
  if (typeof e.symlink !== 'string') return 'symlink is not a string';
  if (e.chunkAlgorithm !== null && !(HASH_ALGORITHMS as readonly unknown[]).includes(e.chunkAlgorithm)) {
    return `chunkAlgorithm '${String(e.chunkAlgorithm)}' is not one of ${HASH_ALGORITHMS.join(', ')}`;
  }
  let hash: ContentHash | null = null;
  if (e.hash !== null) {
    const h = hashOf(e.hash);
    if (typeof h === 'string') return `hash ${h}`;
    hash = h;
  }
  if (e.xattr !== null) {
    if (typeof e.xattr !== 'string' || e.xattr === '') return 'xattr is not a non-empty base64 string or null';
    const blob = Buffer.from(e.xattr, 'base64');
    if (blob.toString('base64') !== e.xattr) return 'xattr is not canonical base64';
    try {
      const again = encodeXattrs(decodeXattrs(blob));
      if (again === null || !again.equals(blob)) return 'xattr blob is not in the canonical layout (sorted, no trailing bytes)';
    } catch (err) {
      return `xattr blob: ${(err as Error).message}`;
    }
  }
  const links = op.links ?? [];
  if (!Array.isArray(links)) return 'links is not a list';
  if (op.chunks !== undefined && !Array.isArray(op.chunks)) return 'chunks is not a list';
  const chunks = op.chunks ?? [];

  if (!regular) {
    if (hash !== null) return 'only regular files carry a content hash';
    if (chunked || chunks.length > 0) return 'only regular files are chunked';
    if (e.chunkAlgorithm !== null) return 'only chunked files carry a chunkAlgorithm';
    if (links.length > 0) return 'only regular files form hardlink groups';
  }
  if (type === S_IFLNK) {
    if (e.symlink === '') return 'symlink target is empty';
    if (e.symlink.includes('\0')) return 'symlink target contains a NUL byte';
    if (!isWellFormed(e.symlink)) return 'symlink target is not valid UTF-8';
    if (e.size !== Buffer.byteLength(e.symlink)) return `size ${e.size} is not the target's length ${Buffer.byteLength(e.symlink)}`;
  } else if (e.symlink !== '') {
    return 'only symlinks carry a target';
  }
  if (type !== S_IFDIR && e.linkcount !== 1 + links.length) {
    return `linkcount ${String(e.linkcount)} is not 1 + ${links.length} further names`;
  }
  if (type === S_IFDIR && !isInt(e.linkcount, 1, MAX_UINT32)) return `linkcount ${String(e.linkcount)} is not a positive integer`;

  if (regular && !chunked) {
    if (hash === null) return 'regular file has no content hash';
    if (chunks.length > 0) return 'chunk list on a file not flagged chunked';
    if (e.chunkAlgorithm !== null) return 'only chunked files carry a chunkAlgorithm';
  }
  if (regular && chunked) {
    if (chunks.length === 0) return 'chunked file has no chunks';
    const algorithm: HashAlgorithm | undefined = (e.chunkAlgorithm as HashAlgorithm | null) ?? hash?.algorithm;
    if (!algorithm) return 'chunked file has no hash algorithm (chunkAlgorithm or hash)';
    if (hash !== null && hash.algorithm !== algorithm) return `hash is ${hash.algorithm} but chunkAlgorithm is ${algorithm}`;
    let offset = 0;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i] as unknown as Record<string, unknown>;
      if (typeof c !== 'object' || c === null || unknownFields(c, ['offset', 'size', 'hash']).length > 0) return `chunk ${i} is not {offset, size, hash}`;
      if (c.offset !== offset) return `chunk ${i} starts at ${String(c.offset)}, expected ${offset}`;
      if (!isInt(c.size, 1)) return `chunk ${i} has size ${String(c.size)}`;
      const h = hashOf(c.hash);
      if (typeof h === 'string') return `chunk ${i} hash ${h}`;
      if (h.algorithm !== algorithm) return `chunk ${i} hash is ${h.algorithm}, the file's algorithm is ${algorithm}`;
      offset += c.size;
    }
    if (offset !== e.size) return `chunks cover ${offset} bytes, but size is ${e.size}`;
  }

  const seen = new Set([op.path]);
  for (let i = 0; i < links.length; i++) {
    const l = links[i] as unknown as Record<string, unknown>;
    if (typeof l !== 'object' || l === null || unknownFields(l, ['path', 'name']).length > 0) return `link ${i} is not {path, name}`;
    const bad = pathProblem(l.path, scope);
    if (bad) return `link ${i}: ${bad}`;
    const linkPath = l.path as string;
    if (linkPath === '' || parentPath(linkPath) !== parentPath(op.path)) return `link ${i} '${linkPath}' is not in the directory of '${op.path}'`;
    const badName = nameProblem(l.name);
    if (badName) return `link ${i}: ${badName}`;
    if (l.name !== baseName(linkPath)) return `link ${i} name '${String(l.name)}' is not the last component of '${linkPath}'`;
    if (seen.has(linkPath)) return `link ${i} '${linkPath}' names the group twice`;
    seen.add(linkPath);
  }
  return null;
}

/** Why operation `op` may not be applied within `scope` ('' for the root, '/a/b' otherwise), or null. */
export function operationProblem(op: unknown, scope: string): string | null {
  if (typeof op !== 'object' || op === null || Array.isArray(op)) return 'operation is not an object';
  const o = op as Record<string, unknown>;
  const fields = typeof o.op === 'string' ? OP_FIELDS[o.op] : undefined;
  if (!fields || !Object.hasOwn(OP_FIELDS, o.op as string)) return `unknown operation ${JSON.stringify(o.op)}`;
  const extra = unknownFields(o, fields);
  if (extra.length > 0) return `unknown fields: ${extra.join(', ')}`;
  const bad = pathProblem(o.path, scope);
  if (bad) return bad;
  if (o.op !== 'upsert') return o.path === '' ? `the repository root cannot be the target of '${o.op}'` : null;
  return upsertProblem(o as unknown as Extract<ChangeOp, { op: 'upsert' }>, scope);
}

/** The path an operation names, for messages (whatever its type). */
function opPathForMessage(op: unknown): string {
  const p = (op as { path?: unknown } | null)?.path;
  return typeof p === 'string' ? p : String(p);
}

/** Refuses operation `index` of part `part` with a RefusedError naming both and its path. */
export function assertValidOperation(op: unknown, scope: string, part: number, index: number): asserts op is ChangeOp {
  const problem = operationProblem(op, scope);
  if (problem) throw new InvalidOperationError(part, index, opPathForMessage(op), problem);
}

/** Checks a parsed part's list of operations: its length first, then every operation. */
export function assertValidPartOps(ops: unknown, scope: string, part: number): asserts ops is ChangeOp[] {
  if (!Array.isArray(ops)) throw new InvalidPartError(part, 'has no list of operations');
  if (ops.length > MAX_OPS_PER_PART) throw new InvalidPartError(part, `has ${ops.length} operations; at most ${MAX_OPS_PER_PART} per part`);
  for (let i = 0; i < ops.length; i++) assertValidOperation(ops[i], scope, part, i);
}

/** Refuses a stored part larger than MAX_PART_BYTES, before it is read or parsed. */
export function assertPartSize(bytes: number, part: number): void {
  if (bytes > MAX_PART_BYTES) throw new InvalidPartError(part, `is ${bytes} bytes; at most ${MAX_PART_BYTES} are read`);
}
