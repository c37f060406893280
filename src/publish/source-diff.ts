// Walks a source directory next to the repository's head tree and lists what must change, so that a
// publish touches only new, changed and removed entries (and the catalogs that hold them).
// Blocking calls on purpose: a cached lstat takes microseconds, an async one costs a thread-pool round
// trip, and the compression workers run in parallel either way.
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import type { CatalogTree } from '../repo/catalog-tree.js';
import { FLAG, kindOfMode, S_IFDIR, S_IFMT, type DirectoryEntry } from '../format/catalog-entry.js';
import type { FileChunk } from '../format/catalog-db.js';

/** Directory size recorded in catalogs; the stock publisher records the stat size, typically this. */
const DIRECTORY_SIZE = 4096;
export const CATALOG_MARKER = '.cvmfscatalog';

export type Operation =
  /** `chunks`: a chunked file whose metadata changed keeps its chunk rows. */
  | { kind: 'upsert'; path: string; entry: DirectoryEntry; chunks?: FileChunk[] }
  /** A regular file whose content must be compressed and hashed before it can be written. */
  | { kind: 'file'; path: string; entry: DirectoryEntry; source: string; mtimeNs: bigint; chunks?: FileChunk[] }
  | { kind: 'remove'; path: string }
  | { kind: 'nest'; path: string }
  | { kind: 'unnest'; path: string };

export interface DiffOptions {
  /** Hash every file again even when size and mtime match the head. */
  checksum?: boolean;
  onWarning?: (message: string) => void;
  onScanned?: (entries: number) => void;
  /** Called as soon as a file needs compressing, so that workers start while the walk goes on. */
  onFile?: (op: Extract<Operation, { kind: 'file' }>) => void;
}

export interface DiffStats {
  scanned: number;
  added: number;
  changed: number;
  removed: number;
}

function entryFromStat(name: string, st: BigIntStats, symlink: string): DirectoryEntry {
  const mode = Number(st.mode);
  const kind = kindOfMode(mode);
  return {
    name,
    mode,
    size: kind === 'directory' ? DIRECTORY_SIZE : kind === 'symlink' ? Buffer.byteLength(symlink) : Number(st.size),
    mtime: Number(st.mtimeNs / 1_000_000_000n),
    mtimeNs: Number(st.mtimeNs % 1_000_000_000n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    hash: null,
    symlink,
    linkcount: 1,
    hardlinkGroup: 0,
    extraFlags: 0,
    compression: 'zlib',
    xattr: null,
  };
}

function statSource(path: string): BigIntStats {
  return lstatSync(path, { bigint: true });
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function sameMetadata(a: DirectoryEntry, b: DirectoryEntry): boolean {
  return a.mode === b.mode && a.mtime === b.mtime && a.mtimeNs === b.mtimeNs && a.uid === b.uid &&
    a.gid === b.gid && a.symlink === b.symlink && a.size === b.size;
}

/** Content unchanged if the quick check (size and modification time) matches, as rsync does. */
function sameContent(source: DirectoryEntry, head: DirectoryEntry): boolean {
  const hasContent = head.hash !== null || (head.extraFlags & FLAG.chunked) !== 0;
  return kindOfMode(head.mode) === 'file' && hasContent && head.size === source.size &&
    head.mtime === source.mtime && (head.mtimeNs === null || head.mtimeNs === source.mtimeNs);
}

/**
 * Compares `sourceDir` with the repository subtree at `repoPath` and returns the operations that make
 * the repository equal to the source, parents before children.
 */
export async function diffSource(tree: CatalogTree, sourceDir: string, repoPath: string, options: DiffOptions = {}):
  Promise<{ operations: Operation[]; stats: DiffStats }> {
  const operations: Operation[] = [];
  const stats: DiffStats = { scanned: 0, added: 0, changed: 0, removed: 0 };
  const warn = options.onWarning ?? (() => {});

  let rootStat: BigIntStats;
  try {
    rootStat = statSource(sourceDir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot read source directory ${sourceDir}: ${e.code === 'ENOENT' ? 'no such directory' : e.message}`);
  }
  if ((Number(rootStat.mode) & S_IFMT) !== S_IFDIR) throw new Error(`source ${sourceDir} is not a directory`);
  const rootEntry = entryFromStat('', rootStat, '');
  const headRoot = await tree.lookup(repoPath);
  if (headRoot && kindOfMode(headRoot.mode) !== 'directory') {
    throw new Error(`repository path '${repoPath}' is a ${kindOfMode(headRoot.mode)}, not a directory`);
  }
  rootEntry.name = headRoot?.name ?? repoPath.slice(repoPath.lastIndexOf('/') + 1);
  if (!headRoot || !sameMetadata(rootEntry, headRoot)) {
    // The directory published into; counted with the others only when it is new.
    operations.push({ kind: 'upsert', path: repoPath, entry: rootEntry });
    if (!headRoot) stats.added++;
  }

  const walk = async (dir: string, path: string, headExists: boolean): Promise<void> => {
    let names: string[];
    try {
      names = readdirSync(dir).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
    } catch (err) {
      throw new Error(`cannot read directory ${dir}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
    }
    const head = new Map<string, DirectoryEntry>();
    if (headExists) for (const e of await tree.list(path)) head.set(e.name, e);

    const wantsNested = names.includes(CATALOG_MARKER);
    const isNested = headExists && path !== '' && await tree.isMountpoint(path);
    if (path !== '' && wantsNested && !isNested) operations.push({ kind: 'nest', path });
    if (path !== '' && !wantsNested && isNested) operations.push({ kind: 'unnest', path });

    for (const [name] of head) {
      if (!names.includes(name)) {
        operations.push({ kind: 'remove', path: `${path}/${name}` });
        stats.removed++;
      }
    }
    const subdirs: { source: string; path: string; exists: boolean }[] = [];
    for (const name of names) {
      if (Buffer.byteLength(name) > 255) throw new Error(`name longer than 255 bytes in ${dir}: '${name.slice(0, 40)}…'`);
      const source = join(dir, name);
      const childPath = `${path}/${name}`;
      const st = statSource(source);
      stats.scanned++;
      if (stats.scanned % 256 === 0) {
        options.onScanned?.(stats.scanned);
        await yieldToEventLoop();
      }
      const kind = kindOfMode(Number(st.mode));
      if (kind === 'special') {
        warn(`skipping special file ${source} (FIFOs, sockets and devices are not published yet)`);
        continue;
      }
      const target = kind === 'symlink' ? readlinkSync(source) : '';
      const entry = entryFromStat(name, st, target);
      const old = head.get(name);
      const count = () => { if (old) stats.changed++; else stats.added++; };
      if (old && kindOfMode(old.mode) !== kind) {
        operations.push({ kind: 'remove', path: childPath });
      }
      const sameKind = old !== undefined && kindOfMode(old.mode) === kind;
      if (kind === 'directory') {
        if (!sameKind || !sameMetadata(entry, old)) {
          operations.push({ kind: 'upsert', path: childPath, entry });
          count();
        }
        subdirs.push({ source, path: childPath, exists: sameKind });
      } else if (kind === 'symlink') {
        if (!sameKind || !sameMetadata(entry, old)) {
          operations.push({ kind: 'upsert', path: childPath, entry });
          count();
        }
      } else if (sameKind && !options.checksum && sameContent(entry, old)) {
        if (!sameMetadata(entry, old)) {
          const content = { hash: old.hash, extraFlags: entry.extraFlags | (old.extraFlags & FLAG.chunked), chunkAlgorithm: old.chunkAlgorithm };
          const chunks = old.extraFlags & FLAG.chunked ? await tree.chunks(childPath, old.chunkAlgorithm!) : undefined;
          operations.push({ kind: 'upsert', path: childPath, entry: { ...entry, ...content }, chunks });
          count();
        }
      } else {
        const op = { kind: 'file' as const, path: childPath, entry, source, mtimeNs: st.mtimeNs };
        operations.push(op);
        options.onFile?.(op);
        count();
      }
    }
    for (const s of subdirs) await walk(s.source, s.path, s.exists);
  };

  await walk(sourceDir, repoPath, headRoot !== null);
  options.onScanned?.(stats.scanned);
  return { operations, stats };
}
