// `scvmfs ingest`: publishes a tarball into a sub-path of the repository straight from its byte stream,
// as `cvmfs_server ingest` does: nothing is unpacked to disk and file content is never held whole.
//
// Entries are applied to the catalog tree as they stream (directories, symlinks and special files at
// once; files when their content is compressed and stored). Objects are content-addressed, so uploads
// made before a failure are harmless; the manifest changes only after the whole archive was read
// without error, so a bad archive leaves the repository as it was.
//
// Meaning of an archive (that of `cvmfs_server ingest`, see docs/ingest.md): --delete paths go first;
// members then land below the target, replacing what is at their paths and keeping everything else;
// parents the archive does not list are created (owned by the publisher, mode 0755) or kept as they are.
import type { Readable } from 'node:stream';
import type { ObjectStore } from '../store/object-store.js';
import {
  FLAG, kindOfMode, makedev, newDirectoryEntry, type DirectoryEntry,
} from '../format/catalog-entry.js';
import type { FileChunk } from '../format/catalog-db.js';
import type { ChunkingParameters } from '../format/chunker.js';
import { baseName, isWithin, normalizeRepoPath, parentPath } from '../format/md5path.js';
import { encodeXattrs } from '../format/xattr.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import { CATALOG_MARKER } from '../repo/catalog-balancer.js';
import { catalogLoader, emptyObject, processOwner, type Head } from '../repo/repository.js';
import type { PublishLock } from '../repo/publish-lock.js';
import { ScratchSpace } from '../repo/scratch.js';
import { compressPoolFor, storeStreamContent } from './file-content.js';
import type { CompressPool } from './compress-pool.js';
import type { PreparedObject } from '../format/zlib-object.js';
import { ensureAncestors, finishRevision, revisionSummary, SerialTree, withPublishLock, type OwnerKeys, type RevisionSummary } from './owner-publish.js';
import { readTarEntries, type TarEntry } from './tar-source.js';
import { InFlight } from './in-flight.js';
import { Uploader } from './uploader.js';
import { ProgressReporter } from './progress.js';

export interface IngestProgress {
  /** read: the archive streams in (files compress meanwhile); upload: it was read whole; commit: catalogs and manifest. */
  phase: 'read' | 'upload' | 'commit';
  /** Archive members read so far. */
  entries: number;
  /** Bytes read from the input as it comes (compressed, for a .tar.gz): against the file's size, the share read. */
  inputBytes: number;
  /** File members whose content is stored. */
  filesDone: number;
  /** File members read so far. */
  filesTotal: number;
  bytesRead: number;
  /** Sum of the sizes of the file members done. */
  bytesDone: number;
  /** Sum of the sizes of the file members read so far. */
  bytesTotal: number;
}

export interface IngestOptions {
  fqrn: string;
  keys: OwnerKeys;
  /** Repository directory the archive is unpacked into ('/' for the root); needed with an archive. */
  path?: string;
  /** Repository paths removed in the same revision, before the archive is applied (`--delete`). */
  deletePaths?: string[];
  /** Make the target directory the root of a nested catalog (`cvmfs_server ingest --catalog`). */
  nestedCatalog?: boolean;
  tag?: { name: string; description?: string };
  workers?: number;
  uploadConcurrency?: number;
  /** Content-defined chunking of large files; default the stock 4/8/16 MiB, false: off. */
  chunking?: Partial<ChunkingParameters> | false;
  /** Split heavy catalogs and merge light automatic ones (default on); weights in catalog rows. */
  autocatalogs?: boolean | { maxWeight?: number; minWeight?: number };
  now?: () => Date;
  onProgress?: (p: IngestProgress) => void;
  onWarning?: (message: string) => void;
}

export interface IngestSummary extends RevisionSummary {
  /** Archive members read. */
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  /** Hardlink members (names after the first of their inode). */
  hardlinks: number;
  specials: number;
  /** --delete paths that existed and were removed. */
  deleted: number;
  /** Directories made by the ingest itself: the target, its parents, and parents of members the repository lacked. */
  parentsCreated: number;
  nestedCatalogs: string[];
}

/** Directory size recorded in catalogs, as the directory publisher records it. */
const DIRECTORY_SIZE = 4096;
/** Files whose compression may run behind the reading; bounds memory, not parallelism. */
const MAX_FILES_IN_FLIGHT = 256;

/** The paths of `--delete`: repository paths from the root, never the root itself. */
export function deletePathsOf(paths: string[]): string[] {
  return paths.map((p) => {
    const path = normalizeRepoPath(p);
    if (path === '') throw new Error(`--delete '${p}' names the repository root; it cannot be removed`);
    return path;
  });
}

/**
 * Publishes the tarball read from `input` (plain or gzip) under `options.path`, and/or removes
 * `options.deletePaths`, as one new revision. `input` null: only the removals.
 */
export async function ingestTarball(store: ObjectStore, input: Readable | null, options: IngestOptions): Promise<IngestSummary> {
  const started = Date.now();
  const deletes = deletePathsOf(options.deletePaths ?? []);
  if (input === null && deletes.length === 0) throw new Error('nothing to do: give a tarball, or paths to delete');
  if (input !== null && options.path === undefined) throw new Error('ingesting a tarball needs the target directory (path)');
  const target = normalizeRepoPath(options.path ?? '');
  return withPublishLock(store, options.fqrn, options.keys, `ingest ${options.fqrn}${target || '/'}`,
    (head, lock) => new Ingest(store, head, lock, target, deletes, options, started).run(input),
    { now: options.now, onWarning: options.onWarning });
}

/** A non-directory member whose content is still being compressed; its row is written when done. */
interface PendingFile {
  /** A later member took its path (or a path above it): its row must not be written. */
  superseded: boolean;
  done: Promise<void>;
}

/** Names of one regular file made by hardlink members; they become groups per directory at the end. */
interface LinkGroup {
  members: Set<string>;
}

class Ingest {
  private readonly now: () => Date;
  private readonly warn: (m: string) => void;
  private readonly uploader: Uploader;
  private readonly empty: PreparedObject;
  private readonly reporter: ProgressReporter<IngestProgress>;
  private readonly progress: IngestProgress;
  private readonly counts = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, specials: 0, deleted: 0, parentsCreated: 0 };
  private readonly nested: string[] = [];
  private serial!: SerialTree;
  /** Directories known to exist in the tree now (the target and what the archive made or met). */
  private readonly knownDirs = new Set<string>();
  private readonly pending = new Map<string, PendingFile>();
  /** Files compressing behind the reading; a store or compression failure stops the ingest at the next member. */
  private readonly inFlight = new InFlight(MAX_FILES_IN_FLIGHT);
  private readonly linkGroupOf = new Map<string, LinkGroup>();
  /** A member's content stream failed: the archive reader reports why, better than this does. */
  private streamFailure: unknown = null;

  constructor(private readonly store: ObjectStore, private readonly head: Head, private readonly lock: PublishLock,
    private readonly target: string, private readonly deletes: string[], private readonly options: IngestOptions,
    private readonly started: number) {
    this.now = options.now ?? (() => new Date());
    this.warn = options.onWarning ?? (() => {});
    this.uploader = new Uploader(store, options.uploadConcurrency ?? 32);
    this.empty = emptyObject(head.algorithm);
    this.reporter = new ProgressReporter<IngestProgress>({
      phase: 'read', entries: 0, inputBytes: 0, filesDone: 0, filesTotal: 0, bytesRead: 0, bytesDone: 0, bytesTotal: 0,
    }, options.onProgress);
    this.progress = this.reporter.state;
  }

  private seconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }

  async run(input: Readable | null): Promise<IngestSummary> {
    const scratch = ScratchSpace.create();
    const pool = compressPoolFor(this.store, this.uploader, this.head.algorithm, { workers: this.options.workers, chunking: this.options.chunking });
    let tree: CatalogTree | undefined;
    try {
      tree = await CatalogTree.open(catalogLoader(this.store), this.head.manifest.rootCatalog, this.head.algorithm, { scratch });
      this.serial = new SerialTree(tree);
      for (const path of this.deletes) await this.serial.run((t) => this.remove(t, path));
      if (input) {
        await this.serial.run((t) => this.prepareTarget(t));
        this.reporter.now();
        const onInputBytes = (n: number) => { this.progress.inputBytes += n; this.reporter.tick(); };
        try {
          for await (const entry of readTarEntries(input, { target: this.target, onInputBytes })) {
            this.inFlight.check();
            this.progress.entries++;
            this.reporter.tick();
            await this.apply(entry, pool);
          }
          this.progress.phase = 'upload';
          this.reporter.now();
        } finally {
          await this.inFlight.settled();
        }
        this.inFlight.check();
        if (this.streamFailure) throw this.streamFailure;
        this.reporter.now();
        await this.serial.run((t) => this.formLinkGroups(t));
        if (this.options.nestedCatalog && this.target !== '' && !(await this.serial.isMountpoint(this.target))) {
          await this.serial.run((t) => t.createNested(this.target));
          this.nested.push(this.target);
        }
      }
      const finished = await finishRevision(this.store, this.head, tree, this.lock, this.uploader, this.empty, {
        keys: this.options.keys, tag: this.options.tag, autocatalogs: this.options.autocatalogs, now: this.now,
        onWarning: this.options.onWarning, onCommit: () => { this.progress.phase = 'commit'; this.reporter.now(); },
      });
      return {
        ...revisionSummary(finished, this.uploader, this.progress.bytesRead, this.started),
        entries: this.progress.entries, ...this.counts, nestedCatalogs: this.nested,
      };
    } finally {
      await pool.close();
      tree?.close();
      scratch.dispose();
    }
  }

  /** A --delete path: removed with everything below it; the rest of its hardlink group stays consistent. */
  private async remove(t: CatalogTree, path: string): Promise<void> {
    const existing = await t.lookup(path);
    if (!existing) {
      this.warn(`--delete ${path}: not in the repository, nothing removed`);
      return;
    }
    await leaveHardlinkGroup(t, path, existing);
    await t.remove(path);
    this.counts.deleted++;
  }

  /** The target and its parents exist as directories before the first member arrives. */
  private async prepareTarget(t: CatalogTree): Promise<void> {
    for (let p = this.target; p !== '' && !(await t.lookup(parentPath(p))); p = parentPath(p)) this.counts.parentsCreated++;
    await ensureAncestors(t, this.target, this.seconds());
    const existing = await t.lookup(this.target);
    if (existing && kindOfMode(existing.mode) !== 'directory') {
      throw new Error(`cannot ingest into '${this.target}': it is a ${kindName(existing)} in the repository, not a directory`);
    }
    if (!existing) {
      await t.upsert(this.target, newDirectoryEntry(baseName(this.target), this.seconds(), processOwner()));
      this.counts.parentsCreated++;
    }
    this.knownDirs.add(this.target);
  }

  private async apply(entry: TarEntry, pool: CompressPool): Promise<void> {
    const path = entry.path;
    const isDir = entry.kind === 'directory';
    this.supersede(path, isDir);
    if (path !== this.target) await this.ensureDirectory(parentPath(path), path);
    const row = this.rowOf(entry);
    const name = baseName(path);
    if (name === CATALOG_MARKER && entry.kind !== 'file' && entry.kind !== 'hardlink') {
      throw new Error(`tar entry for ${path}: a ${CATALOG_MARKER} marker must be a regular file, not a ${entry.kind}`);
    }
    switch (entry.kind) {
      case 'directory':
        await this.serial.run((t) => replaceAt(t, path, row));
        this.knownDirs.add(path);
        this.counts.directories++;
        return;
      case 'symlink':
      case 'fifo':
      case 'char':
      case 'block':
        await this.serial.run((t) => replaceAt(t, path, row));
        if (entry.kind === 'symlink') this.counts.symlinks++;
        else this.counts.specials++;
        return;
      case 'hardlink':
        await this.link(path, entry.linkTarget);
        return;
      case 'file':
        if (name === CATALOG_MARKER) await this.nest(parentPath(path));
        await this.file(path, row, entry.content!, pool);
        return;
    }
  }

  /** The catalog row of a member (files without their content yet). */
  private rowOf(entry: TarEntry): DirectoryEntry {
    let xattr: Buffer | null;
    try {
      xattr = encodeXattrs(entry.xattrs);
    } catch (err) {
      throw new Error(`tar entry for ${entry.path}: ${(err as Error).message}`);
    }
    let size = entry.size;
    if (entry.kind === 'directory') size = DIRECTORY_SIZE;
    else if (entry.kind === 'char' || entry.kind === 'block') size = makedev(entry.devMajor, entry.devMinor);
    else if (entry.kind === 'fifo') size = 0;
    return {
      name: entry.path === '' ? '' : baseName(entry.path), mode: entry.mode, size, mtime: entry.mtime, mtimeNs: entry.mtimeNs,
      uid: entry.uid, gid: entry.gid, hash: null, symlink: entry.kind === 'symlink' ? entry.linkTarget : '',
      linkcount: entry.kind === 'directory' ? 2 : 1, hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr,
    };
  }

  /**
   * A member at `path` replaces what an earlier member put there; a non-directory also replaces
   * everything an earlier member put below it.
   */
  private supersede(path: string, isDir: boolean): void {
    const earlier = this.pending.get(path);
    if (earlier) earlier.superseded = true;
    this.linkGroupOf.get(path)?.members.delete(path);
    this.linkGroupOf.delete(path);
    if (isDir || !this.knownDirs.has(path)) return;
    for (const dir of [...this.knownDirs]) if (isWithin(dir, path)) this.knownDirs.delete(dir);
    for (const [p, f] of this.pending) if (isWithin(p, path)) f.superseded = true;
  }

  /** Makes sure `dir` is a directory, creating it (and its parents) when neither archive nor repository has it. */
  private async ensureDirectory(dir: string, member: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    if (this.pending.has(dir)) throw new Error(`tar entry for ${member}: '${dir}' is a regular file in the archive, not a directory`);
    const existing = await this.serial.lookup(dir);
    if (existing) {
      if (kindOfMode(existing.mode) !== 'directory') {
        throw new Error(`tar entry for ${member}: '${dir}' is a ${kindName(existing)}, not a directory`);
      }
    } else {
      await this.ensureDirectory(parentPath(dir), member);
      await this.serial.run((t) => t.upsert(dir, newDirectoryEntry(baseName(dir), this.seconds(), processOwner())));
      this.counts.parentsCreated++;
    }
    this.knownDirs.add(dir);
  }

  private async nest(dir: string): Promise<void> {
    if (dir === '' || await this.serial.isMountpoint(dir)) return;
    await this.serial.run((t) => t.createNested(dir));
    this.nested.push(dir);
  }

  /**
   * Streams a file's content into the compression pool and returns once the content was read, so that
   * the next member can be read; the row is written when the objects are stored.
   */
  private async file(path: string, row: DirectoryEntry, content: Readable, pool: CompressPool): Promise<void> {
    await this.inFlight.slot();
    this.counts.files++;
    this.progress.filesTotal++;
    this.progress.bytesTotal += row.size;
    let streamFailed = false;
    const read = new Promise<void>((resolve) => {
      if (content.readableEnded) return resolve();
      content.once('end', resolve);
      content.once('close', resolve);
      content.once('error', () => { streamFailed = true; resolve(); });
    });
    const pending: PendingFile = { superseded: false, done: Promise.resolve() };
    this.pending.set(path, pending);
    const done = this.inFlight.track(storeStreamContent(pool, this.uploader, this.empty, content, row, `tar member ${path}`)
      .then(async (c) => {
        this.progress.bytesRead += c.bytesRead;
        if (!pending.superseded) await this.serial.run((t) => replaceAt(t, path, c.entry, c.chunks));
        this.progress.filesDone++;
        this.progress.bytesDone += row.size;
        this.reporter.tick();
      })
      .catch((err) => {
        // A member's content stream failed: the archive reader reports why, better than this does.
        if (!streamFailed) throw err;
        this.streamFailure ??= err;
      })
      .finally(() => {
        if (this.pending.get(path) === pending) this.pending.delete(path);
      }));
    pending.done = done;
    await Promise.race([read, done]);
  }

  /** A hardlink member: a copy of its origin's row now; same-directory names become a group at the end. */
  private async link(path: string, origin: string): Promise<void> {
    await this.pending.get(origin)?.done;
    this.inFlight.check();
    const row = await this.serial.lookup(origin);
    if (!row) throw new Error(`tar entry for ${path}: its hard link target ${origin} is not in the tree (an earlier error?)`);
    const chunks = row.extraFlags & FLAG.chunked ? await this.serial.run((t) => t.chunks(origin, row.chunkAlgorithm ?? this.head.algorithm)) : [];
    const copy: DirectoryEntry = {
      ...row, name: baseName(path), linkcount: 1, hardlinkGroup: 0,
      extraFlags: row.extraFlags & ~(FLAG.nestedMountpoint | FLAG.nestedRoot),
    };
    await this.serial.run((t) => replaceAt(t, path, copy, chunks));
    this.counts.hardlinks++;
    if (kindOfMode(row.mode) === 'file') {
      if (baseName(path) === CATALOG_MARKER) await this.nest(parentPath(path));
      let group = this.linkGroupOf.get(origin);
      if (!group) {
        group = { members: new Set([origin]) };
        this.linkGroupOf.set(origin, group);
      }
      group.members.add(path);
      this.linkGroupOf.set(path, group);
    }
  }

  /**
   * Names of one file in one directory become a hardlink group (link count = names there); names in
   * different directories stay separate files, as CernVM-FS groups never span directories.
   */
  private async formLinkGroups(t: CatalogTree): Promise<void> {
    for (const group of new Set(this.linkGroupOf.values())) {
      const byDir = new Map<string, { path: string; row: DirectoryEntry }[]>();
      for (const path of group.members) {
        const row = await t.lookup(path);
        if (!row || kindOfMode(row.mode) !== 'file') continue;
        const dir = parentPath(path);
        const list = byDir.get(dir) ?? [];
        list.push({ path, row });
        byDir.set(dir, list);
      }
      if (byDir.size > 1) {
        const names = [...byDir.values()].map((l) => l[0]!.path);
        this.warn(`${names.join(', ')} are hard links of one file in different directories: stored as separate files ` +
          '(CernVM-FS hardlink groups stay within one directory)');
      }
      for (const [dir, members] of byDir) {
        if (members.length < 2) continue;
        const id = await t.newHardlinkGroup(dir);
        for (const m of members) await t.upsert(m.path, { ...m.row, linkcount: members.length, hardlinkGroup: id });
      }
    }
  }
}

function kindName(e: DirectoryEntry): string {
  const kind = kindOfMode(e.mode);
  return kind === 'file' ? 'regular file' : kind === 'special' ? 'special file' : kind;
}

/** Writes a member's row over whatever is at `path`, keeping a hardlink group it leaves consistent. */
async function replaceAt(t: CatalogTree, path: string, row: DirectoryEntry, chunks: FileChunk[] = []): Promise<void> {
  const existing = await t.lookup(path);
  if (existing) await leaveHardlinkGroup(t, path, existing);
  // Over a directory, a directory keeps its children; anything else replaces the whole subtree.
  await t.upsert(path, row, chunks);
}

/** The other names of `existing`'s hardlink group get their link count lowered (and lose the group when alone). */
async function leaveHardlinkGroup(t: CatalogTree, path: string, existing: DirectoryEntry): Promise<void> {
  if (existing.hardlinkGroup === 0 || kindOfMode(existing.mode) !== 'file') return;
  const dir = parentPath(path);
  const others = (await t.list(dir)).filter((e) => e.hardlinkGroup === existing.hardlinkGroup && e.name !== existing.name &&
    kindOfMode(e.mode) === 'file');
  for (const o of others) {
    await t.upsert(`${dir}/${o.name}`, { ...o, linkcount: others.length, hardlinkGroup: others.length > 1 ? o.hardlinkGroup : 0 });
  }
}
