// Reads a tarball (plain or gzip, from a file or stdin) as a stream of entries placed under a target
// directory of the repository, for `scvmfs ingest`. Parsing is tar-stream's; this module decides what an
// entry means in the repository and refuses anything that could land outside the target.
//
// What a consumer must know:
// - Entries come in archive order. Directories may come after their contents or not at all: the
//   consumer creates missing parents. An entry for the target itself ('.', './', or the target's
//   absolute path) comes as a 'directory' entry whose path is the target.
// - A path may appear twice (appended archives); the later entry wins, as with `tar -x`.
// - A file entry's `content` must be read to the end (or resumed/drained) before asking for the next
//   entry; it is never to be destroyed, which would abort the whole archive. Unread content is
//   drained when the next entry is requested.
// - Errors are thrown from the iterator, possibly after earlier entries were yielded (a truncated
//   tarball is only noticed at its end): publish nothing until the iterator has finished.
import { RefusedError } from '../errors.js';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as tar from 'tar-stream';
import { normalizeRepoPath, isWithin } from '../format/md5path.js';
import { S_IFDIR, S_IFLNK, S_IFREG } from '../format/catalog-entry.js';
import type { Xattrs } from '../format/xattr.js';
import { decodeUtf8, escapeNameBytes } from '../format/utf8-name.js';

export type TarEntryKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'fifo' | 'char' | 'block';

export interface TarEntry {
  /** Normalized repository path ('/sw/pkg/bin/x'); the target itself for the archive's root. */
  path: string;
  kind: TarEntryKind;
  /** Full st_mode with the file-type bits; for a hardlink, the mode of the entry it links to. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Nanosecond part: from a pax `mtime`, else 0. */
  mtimeNs: number;
  /** Files: content bytes; symlinks: target length in bytes; everything else 0. */
  size: number;
  /** Symlinks: the target text as stored. Hardlinks: the repository path of the first entry of the group. '' otherwise. */
  linkTarget: string;
  devMajor: number;
  devMinor: number;
  /** `user.*` attributes from pax `SCHILY.xattr.*` (GNU tar, star) and `LIBARCHIVE.xattr.*` (bsdtar) records. */
  xattrs: Xattrs;
  /** File entries only; see the module comment for the reading rule. */
  content?: Readable;
}

export interface TarReadOptions {
  /** Repository directory the archive is unpacked into ('' for the root, '/sw/pkg'). */
  target: string;
  /** Called with the length of every chunk read from the input (before gunzip), for progress. */
  onInputBytes?: (bytes: number) => void;
}

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

const KINDS: Record<string, { kind: TarEntryKind; type: number }> = {
  'file': { kind: 'file', type: S_IFREG },
  'contiguous-file': { kind: 'file', type: S_IFREG },
  'link': { kind: 'hardlink', type: S_IFREG },
  'symlink': { kind: 'symlink', type: S_IFLNK },
  'directory': { kind: 'directory', type: S_IFDIR },
  'fifo': { kind: 'fifo', type: S_IFIFO },
  'character-device': { kind: 'char', type: S_IFCHR },
  'block-device': { kind: 'block', type: S_IFBLK },
};

/** A refusal whose message is complete; `namesEntry` tells whether it already names the member. */
class TarballError extends RefusedError {
  constructor(message: string, readonly namesEntry = false) {
    super('bad-tarball', message);
  }
}

// ---- tar-stream with byte-exact pax xattr values -------------------------------------------------

/** Raw pax xattr records of an entry, kept beside tar-stream's own (text) view of its pax header. */
const RAW_XATTRS = Symbol('raw pax xattr records');
type PaxView = Record<string, string> & { [RAW_XATTRS]?: Map<string, Buffer> };

interface ParsedHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  type: string | null;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  pax?: PaxView;
}

interface ExtractInternals {
  _header: { type: string };
  _pax: PaxView | null;
  _paxGlobal: PaxView | null;
  _decodeLongHeader(buf: Buffer): void;
}

type ExtractStream = tar.Extract;

// tar-stream decodes pax values as UTF-8 text, which mangles binary xattr values. Its extractor class is
// not exported, so it is reached through an instance, and one step of it is extended to keep the raw
// bytes of xattr records. The tests publish a binary value, so a tar-stream change that breaks this
// cannot pass unnoticed.
const ExtractBase = tar.extract().constructor as new (opts?: { filenameEncoding?: string }) => ExtractStream & ExtractInternals;
if (typeof ExtractBase.prototype._decodeLongHeader !== 'function') {
  throw new Error('tar-stream internals changed: Extract._decodeLongHeader is missing (tar-source.ts needs it)');
}

class XattrKeepingExtract extends ExtractBase {
  constructor() {
    // Header names as latin1 keep every byte, so names that are not UTF-8 can be told apart and refused.
    super({ filenameEncoding: 'latin1' });
  }

  override _decodeLongHeader(buf: Buffer): void {
    super._decodeLongHeader(buf);
    const type = this._header.type;
    if (type === 'pax-global-header' && this._paxGlobal) {
      this._paxGlobal[RAW_XATTRS] = rawXattrRecords(buf);
    } else if (type === 'pax-header' && this._pax) {
      this._pax[RAW_XATTRS] = new Map([...(this._paxGlobal?.[RAW_XATTRS] ?? []), ...rawXattrRecords(buf)]);
    }
  }
}

/** The `SCHILY.xattr.*` / `LIBARCHIVE.xattr.*`, `path` and `linkpath` records of a pax header (`LEN KEY=VALUE\n` each), as bytes. */
function rawXattrRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    if (buf.subarray(pos).every((b) => b === 0)) break;
    const space = buf.indexOf(0x20, pos);
    const length = space === -1 ? NaN : Number(buf.toString('latin1', pos, space));
    if (!Number.isInteger(length) || length <= space - pos + 2 || pos + length > buf.length || buf[pos + length - 1] !== 0x0a) {
      throw new Error('malformed pax extended header');
    }
    const record = buf.subarray(space + 1, pos + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw new Error('malformed pax extended header (record without "=")');
    const key = record.subarray(0, eq).toString('utf8');
    if (key.startsWith('SCHILY.xattr.') || key.startsWith('LIBARCHIVE.xattr.') || key === 'path' || key === 'linkpath') {
      out.set(key, Buffer.from(record.subarray(eq + 1)));
    }
    pos += length;
  }
  return out;
}

/** `user.*` attributes from pax records: GNU tar escapes '%' and '=' in names; libarchive URL-encodes names and base64s values. */
function userXattrs(raw: Map<string, Buffer> | undefined): Xattrs {
  const out: Xattrs = new Map();
  for (const [key, value] of raw ?? []) {
    let name: string;
    let bytes: Buffer;
    if (key.startsWith('SCHILY.xattr.')) {
      name = key.slice('SCHILY.xattr.'.length).replace(/%3D/gi, '=').replace(/%25/g, '%');
      bytes = value;
    } else {
      name = percentDecode(key.slice('LIBARCHIVE.xattr.'.length));
      bytes = Buffer.from(value.toString('latin1'), 'base64');
    }
    if (name.startsWith('user.')) out.set(name, bytes);
  }
  return out;
}

function percentDecode(text: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const hex = raw.toString('latin1', i + 1, i + 3);
    if (raw[i] === 0x25 && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// ---- bytes in -------------------------------------------------------------------------------------

const MAGICS: { bytes: number[]; name: string }[] = [
  { bytes: [0x42, 0x5a, 0x68], name: 'bzip2' },
  { bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], name: 'xz' },
  { bytes: [0x28, 0xb5, 0x2f, 0xfd], name: 'zstd' },
];

/** The tar bytes of `input`, gunzipped when it starts with the gzip magic. */
async function* tarBytes(input: Readable, onInputBytes?: (bytes: number) => void): AsyncGenerator<Buffer> {
  const source = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let head = Buffer.alloc(0);
  let ended = false;
  while (head.length < 6) {
    const next = await source.next();
    if (next.done) {
      ended = true;
      break;
    }
    head = Buffer.concat([head, Buffer.from(next.value)]);
  }
  if (head.length === 0) throw new TarballError('the input is empty, not a tarball');
  for (const m of MAGICS) {
    if (m.bytes.every((b, i) => head[i] === b)) throw new TarballError(`the input is ${m.name}-compressed; only plain and gzip tarballs are read (decompress it first)`);
  }
  async function* raw(): AsyncGenerator<Buffer> {
    onInputBytes?.(head.length);
    yield head;
    if (ended) return;
    for await (const chunk of { [Symbol.asyncIterator]: () => source }) {
      const bytes = Buffer.from(chunk);
      onInputBytes?.(bytes.length);
      yield bytes;
    }
  }
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    pipeline(Readable.from(raw()), gunzip, () => {});
    try {
      for await (const chunk of gunzip) yield chunk as Buffer;
    } catch (err) {
      const truncated = (err as NodeJS.ErrnoException).code === 'Z_BUF_ERROR';
      throw new TarballError(`${truncated ? 'the .tar.gz is truncated' : 'not a valid .tar.gz'} (gzip: ${(err as Error).message})`);
    }
  } else {
    yield* raw();
  }
}

/** Writes the tar bytes into the extractor; any failure destroys it, which the entry iterator reports. */
async function feed(bytes: AsyncIterable<Buffer>, extract: ExtractStream): Promise<void> {
  let tail: Buffer = Buffer.alloc(0);
  let total = 0;
  try {
    for await (const chunk of bytes) {
      if (extract.destroyed) return;
      total += chunk.length;
      tail = chunk.length >= 512 ? chunk.subarray(chunk.length - 512) : Buffer.concat([tail, chunk]).subarray(-512);
      if (!extract.write(chunk)) await writableAgain(extract);
    }
    if (total < 1024) throw new TarballError(`only ${total} bytes: not a tarball, or a truncated one`);
    // Every tar writer ends the archive with zero blocks; without them the input was cut at an entry boundary.
    if (!tail.every((b) => b === 0)) throw new TarballError('the tarball is truncated: it does not end with the end-of-archive blocks');
    extract.end(undefined);
  } catch (err) {
    extract.destroy(err as Error);
  }
}

function writableAgain(stream: ExtractStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

// ---- entries out ----------------------------------------------------------------------------------

/**
 * The repository path of archive member `name` under `target`. Relative names are resolved inside the
 * target ('.' and '..' lexically); absolute names are taken as repository paths and must lie inside it.
 */
export function tarMemberPath(name: string, target: string): string {
  if (name.includes('\0')) throw new Error('the name contains a NUL byte');
  const absolute = name.startsWith('/');
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) {
        throw new Error(absolute ? "'..' above the repository root" : `'..' leads outside the target directory ${target || '/'}`);
      }
      parts.pop();
      continue;
    }
    if (Buffer.byteLength(part) > 255) throw new Error(`the component '${part.slice(0, 40)}…' is longer than 255 bytes`);
    parts.push(part);
  }
  if (absolute) {
    const path = parts.length === 0 ? '' : '/' + parts.join('/');
    if (!isWithin(path, target)) throw new Error(`the absolute path lies outside the target directory ${target || '/'}`);
    return path;
  }
  return parts.length === 0 ? target : `${target}/${parts.join('/')}`;
}

function paxInteger(pax: PaxView | undefined, key: string, fallback: number): number {
  const v = pax?.[key];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
}

/** pax `mtime` is decimal seconds with an optional fraction, possibly negative. */
function paxMtime(value: string | undefined, fallback: number): { mtime: number; mtimeNs: number } {
  const m = value === undefined ? null : /^(-?)(\d+)(?:\.(\d+))?$/.exec(value);
  if (!m) return { mtime: fallback, mtimeNs: 0 };
  const seconds = Number(m[2]);
  const ns = Number((m[3] ?? '').padEnd(9, '0').slice(0, 9));
  if (m[1] === '-') return ns === 0 ? { mtime: -seconds, mtimeNs: 0 } : { mtime: -seconds - 1, mtimeNs: 1_000_000_000 - ns };
  return { mtime: seconds, mtimeNs: ns };
}

function quoted(name: string): string {
  return `'${name.length > 200 ? name.slice(0, 200) + '…' : name}'`.replace(/\0/g, '\\0');
}

/**
 * The entries of a tarball read from `input`, as repository entries under `options.target`.
 * Throws (from the iterator) with the offending member's name for names escaping the target, NUL bytes,
 * over-long components, hardlinks to anything but an earlier non-directory member, unsupported member
 * types, truncated or corrupt input.
 */
export async function* readTarEntries(input: Readable, options: TarReadOptions): AsyncGenerator<TarEntry> {
  const target = normalizeRepoPath(options.target);
  const extract = new XattrKeepingExtract();
  void feed(tarBytes(input, options.onInputBytes), extract);
  // Mode of every non-directory member so far, for hardlinks; hardlinks map to the first of their group.
  const modes = new Map<string, number>();
  const hardlinkOrigin = new Map<string, string>();
  let current = '';
  try {
    for await (const member of extract) {
      const header = member.header as unknown as ParsedHeader;
      const names = memberNames(header);
      current = names.name;
      const entry = toEntry({ ...header, name: names.name, linkname: names.linkname }, target, modes, hardlinkOrigin);
      if (entry.kind === 'file') {
        entry.content = Readable.from(member, { objectMode: false });
        entry.content.on('error', () => {}); // the same error reaches the iterator
      } else {
        member.resume();
      }
      yield entry;
      if (entry.content && !entry.content.readableEnded) entry.content.resume();
    }
  } catch (err) {
    const message = (err as Error).message;
    if (err instanceof TarballError && err.namesEntry) throw err;
    const where = current ? ` (after member ${quoted(current)})` : ' (at the first header)';
    if (/Unexpected end of data/i.test(message)) throw new Error(`the tarball is truncated: it ends inside a member${where}`);
    if (/Invalid tar header/i.test(message)) throw new Error(`not a tar archive, or a corrupt one: bad header checksum${where}`);
    if (err instanceof TarballError) throw new TarballError(message + where);
    throw new Error(`reading the tarball: ${message}${where}`);
  } finally {
    extract.destroy();
  }
}

/**
 * The member's name and link name as text: from pax records (bytes kept raw) or the header (read as
 * latin1, so each char is one byte). Refuses bytes that are not UTF-8, naming the member with them escaped.
 */
function memberNames(h: ParsedHeader): { name: string; linkname: string | null } {
  const raw = h.pax?.[RAW_XATTRS];
  const nameBytes = raw?.get('path') ?? Buffer.from(h.name, 'latin1');
  const linkBytes = raw?.get('linkpath') ?? (h.linkname === null ? null : Buffer.from(h.linkname, 'latin1'));
  const refuse = (what: string): never => {
    throw new TarballError(`tar entry '${escapeNameBytes(nameBytes)}': the ${what} is not valid UTF-8 (bytes shown as \\xNN); ` +
      'CernVM-FS stores names as UTF-8: rename it, or repack the tarball with UTF-8 names', true);
  };
  const name = decodeUtf8(nameBytes) ?? refuse('name');
  const linkname = linkBytes === null ? null
    : decodeUtf8(linkBytes) ?? refuse(`${h.type === 'symlink' ? 'symlink' : 'link'} target '${escapeNameBytes(linkBytes)}'`);
  return { name, linkname };
}

function toEntry(h: ParsedHeader, target: string, modes: Map<string, number>, hardlinkOrigin: Map<string, string>): TarEntry {
  const fail = (why: string): never => { throw new TarballError(`tar entry ${quoted(h.name)}: ${why}`, true); };
  const pax = h.pax;
  if (pax && ('GNU.sparse.major' in pax || 'GNU.sparse.numblocks' in pax || 'GNU.sparse.size' in pax)) {
    fail('GNU sparse files are not supported (create the tarball without --sparse)');
  }
  const known = h.type === null ? undefined : KINDS[h.type];
  if (!known) fail('unsupported member type (only files, directories, symlinks, hardlinks, FIFOs and devices)');
  const { kind, type } = known!;
  let path = '';
  try {
    path = tarMemberPath(h.name, target);
  } catch (err) {
    fail((err as Error).message);
  }
  if (path === target && kind !== 'directory') fail(`a ${kind} cannot replace the target directory ${target || '/'}`);
  const { mtime, mtimeNs } = paxMtime(pax?.mtime, Math.floor(h.mtime.getTime() / 1000));
  const entry: TarEntry = {
    path, kind, mode: (h.mode & 0o7777) | type, uid: paxInteger(pax, 'uid', h.uid), gid: paxInteger(pax, 'gid', h.gid),
    mtime, mtimeNs, size: 0, linkTarget: '', devMajor: h.devmajor ?? 0, devMinor: h.devminor ?? 0,
    xattrs: userXattrs(pax?.[RAW_XATTRS]),
  };
  switch (kind) {
    case 'file':
      entry.size = h.size;
      break;
    case 'symlink': {
      const linkTarget = h.linkname ?? '';
      if (linkTarget === '') fail('symlink with an empty target');
      if (linkTarget.includes('\0')) fail('symlink target contains a NUL byte');
      entry.linkTarget = linkTarget;
      entry.size = Buffer.byteLength(linkTarget);
      break;
    }
    case 'hardlink': {
      let linked = '';
      try {
        linked = tarMemberPath(h.linkname ?? '', target);
      } catch (err) {
        fail(`hard link target ${quoted(h.linkname ?? '')}: ${(err as Error).message}`);
      }
      const origin = hardlinkOrigin.get(linked) ?? linked;
      const mode = modes.get(origin);
      if (mode === undefined) fail(`hard link to ${quoted(h.linkname ?? '')}, which is not an earlier non-directory member of the archive`);
      if (origin === path) fail('hard link to itself');
      entry.linkTarget = origin;
      entry.mode = mode!;
      hardlinkOrigin.set(path, origin);
      break;
    }
  }
  if (kind === 'directory') modes.delete(path);
  else modes.set(path, entry.mode);
  if (kind !== 'hardlink') hardlinkOrigin.delete(path);
  return entry;
}

/** The bytes of a tarball named on a command line: a file, or standard input for '-'. */
export async function openTarballInput(spec: string): Promise<Readable> {
  if (spec === '-') {
    if (process.stdin.isTTY) throw new Error('refusing to read a tarball from a terminal: pipe it in, or name the file');
    return process.stdin;
  }
  let st;
  try {
    st = await stat(spec);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot read tarball ${spec}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  if (st.isDirectory()) throw new Error(`${spec} is a directory, not a tarball (use publish for directories)`);
  return createReadStream(spec);
}
