// Walks a source directory next to the repository's head tree and emits, in walk order, what must
// change, so that a publish touches only new, changed and removed entries (and the catalogs that hold
// them). Operations stream to a sink instead of being collected: memory stays flat for a million entries.
// Blocking calls on purpose: a cached lstat takes microseconds, an async one costs a thread-pool round
// trip, and the compression workers run in parallel either way.
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { RefusedError } from '../errors.js';
import { entryStat, kindOfMode, S_IFDIR, S_IFMT, S_IFREG, type DirectoryEntry, type EntryStat } from '../format/catalog-entry.js';
import { decodeUtf8, escapeNameBytes } from '../format/utf8-name.js';
import { AUTOCATALOG_MARKER, CATALOG_MARKER } from '../repo/catalog-balancer.js';

/** Directory size recorded in catalogs; the stock publisher records the stat size, typically this. */
const DIRECTORY_SIZE = 4096;
export { CATALOG_MARKER };

/** A regular file whose content must be compressed and hashed before its rows can be written. */
export interface FileOperation {
  kind: 'file';
  path: string;
  entry: DirectoryEntry;
  source: string;
  mtimeNs: bigint;
  /** Further names of the same inode in the same directory: one hardlink group (spec §4.3). */
  links: { path: string; name: string }[];
  /** The tree had no entry at `path` when the walk compared it (nothing else writes that path). */
  isNew: boolean;
}

export type Operation =
  | { kind: 'upsert'; path: string; entry: DirectoryEntry; isNew?: boolean }
  | FileOperation
  | { kind: 'remove'; path: string }
  | { kind: 'nest'; path: string }
  | { kind: 'unnest'; path: string };

/** The read side of the repository tree the walk compares against. */
export interface HeadView {
  lookup(path: string): Promise<DirectoryEntry | null>;
  /** The children of `dir` as far as the walk compares them, in any order. */
  listStats(dir: string): Promise<EntryStat[]>;
  isMountpoint(path: string): Promise<boolean>;
}

export interface DiffSink {
  /** Applies a metadata operation; awaited, so parents exist before their children arrive. */
  apply(op: Exclude<Operation, FileOperation>): Promise<void>;
  /** Queues a file for compression; may wait while too many are in flight (backpressure). */
  file(op: FileOperation): Promise<void>;
}

export interface DiffOptions {
  /** Hash every file again even when size and mtime match the head. */
  checksum?: boolean;
  onWarning?: (message: string) => void;
  onScanned?: (entries: number) => void;
  /** The xattr blob of a source path (spec §4.7), or null. */
  xattrs?: (sourcePath: string) => Buffer | null;
  /** Walk only these parts of the source (see changedScope); everything else is the head's. */
  scope?: Scope;
}

export interface DiffStats {
  scanned: number;
  added: number;
  changed: number;
  removed: number;
}

/** Relative paths of a scope: those read whole, and the ancestors read as entries only. */
export function scopePaths(scope: Scope, prefix = ''): { whole: string[]; single: string[] } {
  const out = { whole: [] as string[], single: prefix === '' ? ['.'] : [] };
  for (const [name, inner] of scope) {
    const path = prefix === '' ? name : `${prefix}/${name}`;
    if (inner === 'all') {
      out.whole.push(path);
    } else {
      out.single.push(path);
      const sub = scopePaths(inner, path);
      out.whole.push(...sub.whole);
      out.single.push(...sub.single);
    }
  }
  return out;
}

/**
 * What the walk keeps of an lstat. A directory's entries are held until it is done, and a BigIntStats
 * costs about 1.1 KB of heap: at 10^6 entries the flat directory of 60,000 added 180 MB to the peak.
 */
interface SourceStat {
  mode: number; size: number; rdev: number; mtimeNs: bigint; uid: number; gid: number; nlink: number;
  /** `dev:ino` of a regular file with several links (its hardlink group's key), '' otherwise. */
  inode: string;
}

function sourceStat(st: BigIntStats): SourceStat {
  const mode = Number(st.mode);
  return {
    mode, size: Number(st.size), rdev: Number(st.rdev), mtimeNs: st.mtimeNs, uid: Number(st.uid), gid: Number(st.gid),
    nlink: Number(st.nlink), inode: st.nlink > 1n && (mode & S_IFMT) === S_IFREG ? `${st.dev}:${st.ino}` : '',
  };
}

function isLinkedFile(st: SourceStat): boolean {
  return st.inode !== '';
}

function entryFromStat(name: string, st: SourceStat, symlink: string): DirectoryEntry {
  const mode = st.mode;
  const kind = kindOfMode(mode);
  let size: number;
  if (kind === 'directory') size = DIRECTORY_SIZE;
  else if (kind === 'symlink') size = Buffer.byteLength(symlink);
  else if (kind === 'special') size = (mode & S_IFMT) === 0o020000 || (mode & S_IFMT) === 0o060000 ? st.rdev : 0;
  else size = st.size;
  return {
    name,
    mode,
    size,
    mtime: Number(st.mtimeNs / 1_000_000_000n),
    mtimeNs: Number(st.mtimeNs % 1_000_000_000n),
    uid: st.uid,
    gid: st.gid,
    hash: null,
    symlink,
    linkcount: 1,
    hardlinkGroup: 0,
    extraFlags: 0,
    compression: 'zlib',
    xattr: null,
  };
}

const REPLACEMENT = '\ufffd';

function nonUtf8(path: string, what: string): RefusedError {
  return new RefusedError('non-utf8-name', `${path}: ${what} is not valid UTF-8 (bytes shown as \\xNN); ` +
    'CernVM-FS stores names as UTF-8: rename it before publishing', { path });
}

/** The names in `dir`, refusing any that is not valid UTF-8 (which would be published under another name). */
function utf8Names(dir: string): string[] {
  return readdirSync(dir, { encoding: 'buffer' }).map((bytes) => {
    const name = decodeUtf8(bytes);
    if (name === null) throw nonUtf8(join(dir, escapeNameBytes(bytes)), 'the name');
    return name;
  });
}

function symlinkTarget(source: string): string {
  const target = readlinkSync(source);
  if (!target.includes(REPLACEMENT)) return target;
  const bytes = readlinkSync(source, { encoding: 'buffer' });
  const text = decodeUtf8(bytes);
  if (text === null) throw nonUtf8(source, `the symlink target '${escapeNameBytes(bytes)}'`);
  return text;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function sameXattr(a: Buffer | null, b: Buffer | null): boolean {
  return a === null ? b === null : b !== null && a.equals(b);
}

function sameMetadata(a: DirectoryEntry, b: EntryStat): boolean {
  return a.mode === b.mode && a.mtime === b.mtime && a.mtimeNs === b.mtimeNs && a.uid === b.uid &&
    a.gid === b.gid && a.symlink === b.symlink && a.size === b.size && sameXattr(a.xattr, b.xattr);
}

/** Content unchanged if the quick check (size and modification time) matches, as rsync does. */
function sameContent(source: DirectoryEntry, head: EntryStat): boolean {
  return kindOfMode(head.mode) === 'file' && head.hasContent &&
    head.size === source.size && head.mtime === source.mtime && (head.mtimeNs === null || head.mtimeNs === source.mtimeNs);
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Below U+D800, UTF-16 code units sort as UTF-8 bytes do: no Buffer per comparison is needed. */
const NEEDS_BYTE_ORDER = /[\ud800-\uffff]/;

/** Sorts names in place by their UTF-8 bytes, the order entries are published in. */
export function sortByBytes(names: string[]): string[] {
  return names.some((n) => NEEDS_BYTE_ORDER.test(n)) ? names.sort(byBytes) : names.sort();
}

/** The order the head's children were compared in before they were read unsorted (removals follow it). */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The parts of a source a walk looks at: each name maps to 'all' (that entry and everything under it)
 * or to the scope within it (the entry itself, and only those of its children).
 */
export type Scope = Map<string, Scope | 'all'>;

/**
 * The scope of a list of changed paths, relative to the source directory. Refuses absolute paths and
 * `..` (they would name something outside the source); '' or '.' is the whole source ('all').
 */
export function changedScope(paths: readonly string[]): Scope | 'all' {
  const root: Scope = new Map();
  for (const raw of paths) {
    if (raw.startsWith('/')) {
      throw new RefusedError('changed-path-absolute', `changed path '${raw}' is absolute: give paths relative to the source directory`, { path: raw });
    }
    if (raw.includes('\0')) throw new RefusedError('changed-path-invalid', `changed path '${raw}' contains a NUL byte`, { path: raw });
    const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) {
      throw new RefusedError('changed-path-outside', `changed path '${raw}' contains '..': give paths inside the source directory, without '..'`, { path: raw });
    }
    if (parts.length === 0) return 'all';
    let node = root;
    for (const [i, part] of parts.entries()) {
      const known = node.get(part);
      if (known === 'all') break;
      if (i === parts.length - 1) {
        node.set(part, 'all');
        break;
      }
      if (known) {
        node = known;
      } else {
        const next: Scope = new Map();
        node.set(part, next);
        node = next;
      }
    }
  }
  return root;
}

/**
 * Compares `sourceDir` with the repository subtree at `repoPath` and sends the operations that make the
 * repository equal to the source to `sink`, parents before children. With `options.scope`, only the
 * scope's entries are compared (each one's ancestors as entries of their own); a directory new to the
 * repository is always compared whole.
 */
export async function diffSource(head: HeadView, sourceDir: string, repoPath: string, sink: DiffSink,
  options: DiffOptions = {}): Promise<DiffStats> {
  const stats: DiffStats = { scanned: 0, added: 0, changed: 0, removed: 0 };
  const warn = options.onWarning ?? (() => {});
  const xattrsOf = options.xattrs ?? (() => null);
  const checksum = options.checksum === true;
  /** Inodes with several names already published from another directory: later names become copies. */
  const linkedInodes = new Map<string, string>();

  let rootStat: BigIntStats;
  try {
    rootStat = lstatSync(sourceDir, { bigint: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot read source directory ${sourceDir}: ${e.code === 'ENOENT' ? 'no such directory' : e.message}`);
  }
  if ((Number(rootStat.mode) & S_IFMT) !== S_IFDIR) throw new Error(`source ${sourceDir} is not a directory`);
  const rootEntry = entryFromStat('', sourceStat(rootStat), '');
  rootEntry.xattr = xattrsOf(sourceDir);
  const headRoot = await head.lookup(repoPath);
  if (headRoot && kindOfMode(headRoot.mode) !== 'directory') {
    throw new Error(`repository path '${repoPath}' is a ${kindOfMode(headRoot.mode)}, not a directory`);
  }
  rootEntry.name = headRoot?.name ?? repoPath.slice(repoPath.lastIndexOf('/') + 1);
  if (!headRoot || !sameMetadata(rootEntry, entryStat(headRoot))) {
    // The directory published into; counted with the others only when it is new.
    await sink.apply({ kind: 'upsert', path: repoPath, entry: rootEntry });
    if (!headRoot) stats.added++;
  }

  type Item = { name: string; source: string; st: SourceStat };
  const sourceNames = (dir: string): string[] => {
    let names: string[];
    try {
      names = readdirSync(dir);
      // Names that are not UTF-8 come back with U+FFFD in them; only then are the bytes read to tell.
      if (names.some((n) => n.includes(REPLACEMENT))) names = utf8Names(dir);
    } catch (err) {
      if (err instanceof RefusedError) throw err;
      throw new Error(`cannot read directory ${dir}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
    }
    return sortByBytes(names);
  };
  const statNames = (dir: string, names: string[], missing: 'throw' | 'skip'): Item[] => {
    const items: Item[] = [];
    for (const name of names) {
      if (Buffer.byteLength(name) > 255) throw new Error(`name longer than 255 bytes in ${dir}: '${name.slice(0, 40)}…'`);
      const source = `${dir}/${name}`;
      const st = lstatSync(source, { bigint: true, throwIfNoEntry: missing === 'throw' });
      if (st) items.push({ name, source, st: sourceStat(st) });
    }
    return items;
  };

  const walk = async (dir: string, path: string, headExists: boolean, scope: Scope | 'all'): Promise<void> => {
    // A scope names the entries to compare; a hardlink group is only known whole, so a scope that
    // touches one compares the whole directory (still descending only into the scope).
    let restricted = scope !== 'all';
    let items: Item[] = [];
    const old = new Map<string, EntryStat>();
    if (scope !== 'all') {
      items = statNames(dir, sortByBytes([...scope.keys()]), 'skip');
      if (headExists) {
        for (const name of scope.keys()) {
          const e = await head.lookup(`${path}/${name}`);
          if (e) old.set(name, entryStat(e));
        }
      }
      if (items.some((i) => isLinkedFile(i.st)) || [...old.values()].some((o) => o.hardlinkGroup !== 0)) restricted = false;
    }
    if (!restricted) {
      items = statNames(dir, sourceNames(dir), 'throw');
      old.clear();
      if (headExists) for (const e of await head.listStats(path)) old.set(e.name, e);
    }
    const present = new Set(items.map((i) => i.name));
    const sourceHas = (name: string) => present.has(name) ||
      (restricted && lstatSync(`${dir}/${name}`, { throwIfNoEntry: false }) !== undefined);
    const headHas = async (name: string) => old.has(name) ||
      (restricted && headExists && await head.lookup(`${path}/${name}`) !== null);

    // Catalogs the balancer made carry both markers; the source knows nothing of them, so keep them.
    const autoCatalog = !sourceHas(AUTOCATALOG_MARKER) && await headHas(AUTOCATALOG_MARKER);
    if (autoCatalog) {
      old.delete(AUTOCATALOG_MARKER);
      if (!present.has(CATALOG_MARKER)) old.delete(CATALOG_MARKER);
    }
    const wantsNested = sourceHas(CATALOG_MARKER) || autoCatalog;
    const isNested = headExists && path !== '' && await head.isMountpoint(path);
    if (path !== '' && wantsNested && !isNested) await sink.apply({ kind: 'nest', path });
    if (path !== '' && !wantsNested && isNested) await sink.apply({ kind: 'unnest', path });

    for (const name of [...old.keys()].filter((n) => !present.has(n)).sort(byCodeUnits)) {
      await sink.apply({ kind: 'remove', path: `${path}/${name}` });
      stats.removed++;
    }

    const groups = new Map<string, string[]>();
    for (const { name, st } of items) {
      if (!isLinkedFile(st)) continue;
      const inode = st.inode;
      const members = groups.get(inode);
      if (members) members.push(name);
      else groups.set(inode, [name]);
    }

    const subdirs: { source: string; path: string; exists: boolean; scope: Scope | 'all' }[] = [];
    for (const { name, source, st } of items) {
      const childPath = `${path}/${name}`;
      stats.scanned++;
      if (stats.scanned % 256 === 0) {
        options.onScanned?.(stats.scanned);
        await yieldToEventLoop();
      }
      const before = old.get(name);
      const isNew = before === undefined;
      const xattr = xattrsOf(source);
      // The common case, an unchanged single-link file, decided from the stat alone; anything else
      // goes the general way below, which reaches the same verdict for this case.
      if (before !== undefined && !checksum && st.nlink === 1 && before.hardlinkGroup === 0 && before.hasContent &&
        before.symlink === '' && st.mode === before.mode && (before.mode & S_IFMT) === S_IFREG &&
        st.size === before.size && Number(st.mtimeNs / 1_000_000_000n) === before.mtime &&
        Number(st.mtimeNs % 1_000_000_000n) === before.mtimeNs && st.uid === before.uid &&
        st.gid === before.gid && sameXattr(xattr, before.xattr)) continue;

      const kind = kindOfMode(st.mode);
      const target = kind === 'symlink' ? symlinkTarget(source) : '';
      const entry = entryFromStat(name, st, target);
      entry.xattr = xattr;
      const count = () => { if (before) stats.changed++; else stats.added++; };
      if (before && kindOfMode(before.mode) !== kind) await sink.apply({ kind: 'remove', path: childPath });
      const sameKind = before !== undefined && kindOfMode(before.mode) === kind;
      if (kind !== 'file') {
        if (!sameKind || !sameMetadata(entry, before)) {
          await sink.apply({ kind: 'upsert', path: childPath, entry, isNew });
          count();
        }
        if (kind === 'directory') {
          const inner = scope === 'all' || !sameKind ? 'all' : scope.get(name);
          if (inner !== undefined) subdirs.push({ source, path: childPath, exists: sameKind, scope: inner });
        }
        continue;
      }

      if (isLinkedFile(st)) {
        const inode = st.inode;
        const members = groups.get(inode)!;
        if (members[0] !== name) continue; // published with the group's first name
        const elsewhere = linkedInodes.get(inode);
        if (elsewhere !== undefined) {
          warn(`${source} is a hardlink of ${elsewhere} in another directory: stored as a separate file ` +
            '(CernVM-FS hardlink groups stay within one directory)');
        } else {
          linkedInodes.set(inode, source);
        }
        const links = members.slice(1).map((m) => ({ path: `${path}/${m}`, name: m }));
        if (links.length > 0) {
          entry.linkcount = members.length;
          const olds = members.map((m) => old.get(m));
          const unchanged = !checksum && olds.every((o) => o !== undefined && o.hardlinkGroup !== 0 &&
            o.hardlinkGroup === olds[0]!.hardlinkGroup && o.linkcount === members.length && sameContent(entry, o) &&
            sameMetadata({ ...entry, name: o.name }, o));
          if (unchanged) continue;
          for (const m of members) if (old.has(m)) stats.changed++; else stats.added++;
          await sink.file({ kind: 'file', path: childPath, entry, source, mtimeNs: st.mtimeNs, links, isNew });
          continue;
        }
      }

      if (sameKind && !checksum && sameContent(entry, before) && before.hardlinkGroup === 0) {
        if (!sameMetadata(entry, before)) {
          // Metadata only: the row keeps its content, read whole from the head (rare, so not listed).
          const full = (await head.lookup(childPath))!;
          await sink.apply({ kind: 'upsert', path: childPath, entry: { ...entry, hash: full.hash, chunkAlgorithm: full.chunkAlgorithm, extraFlags: full.extraFlags } });
          count();
        }
        continue;
      }
      count();
      await sink.file({ kind: 'file', path: childPath, entry, source, mtimeNs: st.mtimeNs, links: [], isNew });
    }
    for (const s of subdirs) await walk(s.source, s.path, s.exists, s.scope);
  };

  await walk(sourceDir.replace(/(?<=.)\/+$/, ''), repoPath, headRoot !== null, headRoot ? options.scope ?? 'all' : 'all');
  options.onScanned?.(stats.scanned);
  return stats;
}
