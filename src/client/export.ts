// Export a subtree of a revision into a local directory, as cvmfs_shrinkwrap does: modes, mtimes,
// symlinks, hard-link groups and FIFOs, every object verified, many fetched at a time. A file already
// there with the same content (it compresses to the object the catalog names) is not fetched again, so
// an interrupted export resumes. Names come from a catalog, which may be hostile: a name that is not one
// plain path component, or that appears twice in a directory, is refused before anything is written
// for it, and nothing is written through a symlink, so nothing lands outside the destination.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readFile, readlink, rename, rm, stat, symlink, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { RefusedError } from '../errors.js';
import { ContentHash } from '../format/hash.js';
import { FLAG, kindOfMode, type DirectoryEntry } from '../format/catalog-entry.js';
import { normalizeRepoPath } from '../format/md5path.js';
import { prepareObject } from '../format/zlib-object.js';
import type { RepositoryReader } from './reader.js';

const run = promisify(execFile);

/** Which paths to export (a cvmfs_shrinkwrap specification file). */
export interface ExportSpec {
  /** Exactly these paths (their parents come along as directories). */
  paths: string[];
  /** These paths and everything below them. */
  subtrees: string[];
  /** Never these paths or anything below them. */
  excluded: string[];
}

/**
 * Parses a specification: one repository path per line; `/p/*` is p with everything below it, `/p` is p
 * alone, `!/p` excludes p and everything below it; `^` before a path is accepted and ignored (an anchor
 * in shrinkwrap's syntax); blank lines and `#` comments are skipped.
 */
export function parseExportSpec(text: string): ExportSpec {
  const spec: ExportSpec = { paths: [], subtrees: [], excluded: [] };
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const exclude = line.startsWith('!');
    if (exclude) line = line.slice(1).trim();
    if (line.startsWith('^')) line = line.slice(1);
    const subtree = line === '*' || line.endsWith('/*');
    const path = normalizeRepoPath(subtree ? line.slice(0, -1) : line);
    if (exclude) spec.excluded.push(path);
    else if (subtree) spec.subtrees.push(path);
    else spec.paths.push(path);
  }
  return spec;
}

const within = (path: string, base: string) => base === '' || path === base || path.startsWith(`${base}/`);

function specFilter(spec: ExportSpec) {
  return {
    /** Whether `path` itself is exported. */
    includes: (path: string) => !spec.excluded.some((x) => within(path, x)) &&
      (spec.subtrees.some((s) => within(path, s)) || spec.paths.some((p) => within(p, path))),
    /** Whether anything below directory `path` can be exported. */
    descends: (path: string) => !spec.excluded.some((x) => within(path, x)) &&
      (spec.subtrees.some((s) => within(path, s) || within(s, path)) || spec.paths.some((p) => p !== path && within(p, path))),
  };
}

export interface ExportProgress {
  entries: number;
  filesDone: number;
  filesQueued: number;
  filesFetched: number;
  filesSkipped: number;
  bytesFetched: number;
}

export interface ExportOptions {
  /** Repository directory to export ('/' by default); its contents land directly in the destination. */
  path?: string;
  spec?: ExportSpec;
  /** Files fetched at the same time (16 by default). */
  parallel?: number;
  onProgress?: (p: ExportProgress) => void;
  onWarning?: (message: string) => void;
}

export interface ExportSummary extends ExportProgress {
  directories: number;
  files: number;
  symlinks: number;
  specials: number;
  hardlinks: number;
  seconds: number;
}

function checkName(dir: string, name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new RefusedError('unsafe-name', `the catalog lists an entry named ${JSON.stringify(name)} in ${dir || '/'}: ` +
      'not a plain file name; refusing to export it (it could write outside the destination)', { path: dir || '/', name });
  }
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  return lstat(p).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return null; throw err; });
}

/**
 * Makes `target` a real directory: whatever else is at that name (a symlink, a file) is removed first.
 * Says whether it was created now (then nothing is in it yet and nothing needs checking there).
 */
async function ensureDirectory(target: string): Promise<boolean> {
  const st = await lstatOrNull(target);
  // A directory from an earlier export may be read-only by now: it is writable until the end again.
  if (st?.isDirectory()) {
    await chmod(target, 0o700 | (st.mode & 0o777));
    return false;
  }
  if (st) await rm(target, { force: true });
  await mkdir(target, { mode: 0o700 });
  return true;
}

function mtimeOf(e: DirectoryEntry): Date {
  return new Date(e.mtime * 1000 + Math.floor((e.mtimeNs ?? 0) / 1e6));
}

/** Whether the local file already holds the content the catalog names (hashing it as the publisher would). */
async function sameContent(reader: RepositoryReader, path: string, e: DirectoryEntry, target: string, st: Stats | null): Promise<boolean> {
  if (!st?.isFile() || st.size !== e.size) return false;
  const objectHash = (bytes: Buffer, algorithm: ContentHash['algorithm'], suffix: '' | 'P') =>
    e.compression === 'none' ? ContentHash.of(algorithm, bytes) : prepareObject(algorithm, bytes, suffix).hash;
  if (!(e.extraFlags & FLAG.chunked)) return e.hash !== null && objectHash(await readFile(target), e.hash.algorithm, '').equals(e.hash);
  const chunks = await reader.chunkList(path, e);
  const fh = await open(target, 'r');
  try {
    for (const c of chunks) {
      const buf = Buffer.alloc(c.size);
      const { bytesRead } = await fh.read(buf, 0, c.size, c.offset);
      if (bytesRead !== c.size || !objectHash(buf, c.hash.algorithm, 'P').equals(c.hash)) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}

/**
 * Writes a file's verified content with its mode, mtime (and owner, as root) set on the open file. Where
 * nothing stands yet the target is created exclusively (O_EXCL: never through a symlink); otherwise the
 * content goes to a new name in the same directory and is renamed over the old file.
 */
async function writeVerified(reader: RepositoryReader, path: string, e: DirectoryEntry, target: string, replace: boolean, asRoot: boolean): Promise<number> {
  const file = replace ? join(target, '..', `.scvmfs-export-${randomBytes(6).toString('hex')}`) : target;
  const fh = await open(file, 'wx', 0o600);
  let bytes = 0;
  try {
    for await (const piece of reader.readEntryPieces(path, e)) {
      await fh.write(piece);
      bytes += piece.length;
    }
    if (asRoot) await fh.chown(e.uid, e.gid);
    await fh.chmod(e.mode & 0o7777);
    await fh.utimes(mtimeOf(e), mtimeOf(e));
  } catch (err) {
    await fh.close();
    await unlink(file).catch(() => {});
    throw err;
  }
  await fh.close();
  if (replace) await rename(file, target);
  return bytes;
}

export async function exportTree(reader: RepositoryReader, dest: string, options: ExportOptions = {}): Promise<ExportSummary> {
  const started = Date.now();
  const base = normalizeRepoPath(options.path ?? '/');
  const root = await reader.stat(base || '/');
  if (!root) throw new RefusedError('no-such-path', `no ${base || '/'} in revision ${reader.revision}`);
  if (kindOfMode(root.mode) !== 'directory') throw new RefusedError('not-a-directory', `${base || '/'} is not a directory; export exports directories`);
  const filter = options.spec ? specFilter(options.spec) : null;
  const parallel = options.parallel ?? 16;
  const asRoot = process.getuid?.() === 0;
  const s: ExportSummary = {
    entries: 0, filesDone: 0, filesQueued: 0, filesFetched: 0, filesSkipped: 0, bytesFetched: 0,
    directories: 0, files: 0, symlinks: 0, specials: 0, hardlinks: 0, seconds: 0,
  };
  const report = () => options.onProgress?.({ entries: s.entries, filesDone: s.filesDone, filesQueued: s.filesQueued,
    filesFetched: s.filesFetched, filesSkipped: s.filesSkipped, bytesFetched: s.bytesFetched });

  // Metadata is applied at the end, deepest first, so that a read-only directory can still be filled.
  const finish: { target: string; e: DirectoryEntry; kind: 'file' | 'directory' | 'symlink' | 'special' }[] = [];
  const running = new Set<Promise<void>>();
  let failure: unknown = null;
  const hardlinkFirst = new Map<string, { target: string; written: Promise<void> }>();

  const startFile = (path: string, e: DirectoryEntry, target: string, fresh: boolean) => {
    s.filesQueued++;
    const group = e.hardlinkGroup > 0 && e.linkcount > 1 ? `${path.slice(0, path.lastIndexOf('/'))}\0${e.hardlinkGroup}` : null;
    const first = group ? hardlinkFirst.get(group) : undefined;
    const task = (async () => {
      if (first) {
        await first.written;
        const [a, b] = await Promise.all([lstat(first.target), lstatOrNull(target)]);
        if (!(b && b.ino === a.ino && b.dev === a.dev)) {
          if (b) await rm(target, { recursive: true, force: true });
          await link(first.target, target);
        }
        s.hardlinks++;
        s.filesSkipped++;
        return;
      }
      let st = fresh ? null : await lstatOrNull(target);
      if (st && !st.isFile()) {
        await rm(target, { recursive: true, force: true });
        st = null;
      }
      if (await sameContent(reader, path, e, target, st)) {
        s.filesSkipped++;
        if ((st!.mode & 0o7777) !== (e.mode & 0o7777) || Math.floor(st!.mtimeMs / 1000) !== e.mtime) finish.push({ target, e, kind: 'file' });
      } else {
        const written = await writeVerified(reader, path, e, target, st !== null, asRoot);
        s.bytesFetched += written;
        s.filesFetched++;
      }
    })().then(() => { s.filesDone++; report(); }, (err) => { failure ??= err; });
    if (group && !first) hardlinkFirst.set(group, { target, written: task });
    running.add(task);
    void task.finally(() => running.delete(task));
    return task;
  };

  const exportEntry = async (path: string, e: DirectoryEntry, target: string, fresh: boolean) => {
    s.entries++;
    const kind = kindOfMode(e.mode);
    if (kind === 'file') {
      s.files++;
      if (e.extraFlags & FLAG.external) {
        options.onWarning?.(`${path}: an external file (its data is not in the repository); skipped`);
        return;
      }
      while (running.size >= parallel) await Promise.race(running);
      if (failure) throw failure;
      startFile(path, e, target, fresh);
    } else if (kind === 'symlink') {
      s.symlinks++;
      const st = await lstatOrNull(target);
      if (!(st?.isSymbolicLink() && (await readlink(target)) === e.symlink)) {
        if (st) await rm(target, { recursive: true, force: true });
        await symlink(e.symlink, target);
      }
      finish.push({ target, e, kind });
    } else if (kind === 'special') {
      s.specials++;
      const type = e.mode & 0o170000;
      const st = await lstatOrNull(target);
      if (type === 0o010000) {
        if (!st?.isFIFO()) {
          if (st) await rm(target, { recursive: true, force: true });
          await run('mkfifo', ['-m', (e.mode & 0o777).toString(8), target]);
        }
        finish.push({ target, e, kind });
      } else if (asRoot && (type === 0o020000 || type === 0o060000)) {
        if (st) await rm(target, { recursive: true, force: true });
        const major = (e.size >>> 8) & 0xfff;
        const minor = (e.size & 0xff) | ((e.size >>> 12) & 0xfff00);
        await run('mknod', [target, type === 0o020000 ? 'c' : 'b', String(major), String(minor)]);
        finish.push({ target, e, kind });
      } else {
        options.onWarning?.(`${path}: ${type === 0o140000 ? 'a socket' : 'a device (needs root)'} is not exported`);
      }
    }
  };

  // The destination is the user's: it may be a symlink to a directory, and is followed (entries below it never are).
  await mkdir(dest, { recursive: true });
  const destStat = await stat(dest);
  if (!destStat.isDirectory()) throw new RefusedError('not-a-directory', `${dest} is not a directory`);
  await chmod(dest, 0o700 | (destStat.mode & 0o777));
  const stack: { path: string; target: string; fresh: boolean }[] = [{ path: base, target: dest, fresh: false }];
  try {
    while (stack.length > 0) {
      const dir = stack.pop()!;
      const kids = await reader.list(dir.path || '/');
      const seen = new Set<string>();
      for (const e of kids) {
        checkName(dir.path, e.name);
        if (seen.has(e.name)) {
          throw new RefusedError('duplicate-name', `the catalog lists '${e.name}' twice in ${dir.path || '/'}; refusing to export it`, { path: dir.path || '/', name: e.name });
        }
        seen.add(e.name);
      }
      const subdirs: { path: string; target: string; fresh: boolean }[] = [];
      for (const e of kids) {
        const path = `${dir.path}/${e.name}`;
        const target = join(dir.target, e.name);
        const isDir = kindOfMode(e.mode) === 'directory';
        if (filter && !filter.includes(path) && !(isDir && filter.descends(path))) continue;
        if (isDir) {
          s.entries++;
          s.directories++;
          const fresh = dir.fresh ? (await mkdir(target, { mode: 0o700 }), true) : await ensureDirectory(target);
          finish.push({ target, e, kind: 'directory' });
          if (!filter || filter.descends(path) || filter.includes(path)) subdirs.push({ path, target, fresh });
        } else {
          await exportEntry(path, e, target, dir.fresh);
        }
        if (failure) throw failure;
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
      report();
    }
    await Promise.all(running);
    if (failure) throw failure;
  } finally {
    await Promise.allSettled(running);
  }

  // Owner, mode and mtime, deepest first; never through a symlink (lutimes, and no chmod on links).
  finish.sort((a, b) => b.target.length - a.target.length);
  for (const f of finish) {
    const mtime = mtimeOf(f.e);
    if (asRoot) await lchown(f.target, f.e.uid, f.e.gid);
    if (f.kind === 'symlink') {
      await lutimes(f.target, mtime, mtime);
      continue;
    }
    await chmod(f.target, f.e.mode & 0o7777);
    await utimes(f.target, mtime, mtime);
  }
  const rootTime = new Date(root.mtime * 1000);
  if (!filter) {
    await chmod(dest, root.mode & 0o7777);
    await utimes(dest, rootTime, rootTime);
  }
  s.seconds = (Date.now() - started) / 1000;
  return s;
}

