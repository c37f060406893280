// The owner's local publish: make the repository (or one sub-path of it) equal to a source directory.
// Order of writes: data objects, then catalogs (children first), history and reflog, manifest last.
import type { ObjectStore } from '../store/object-store.js';
import type { ChunkingParameters } from '../format/chunker.js';
import { normalizeRepoPath, parentPath } from '../format/md5path.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import { catalogLoader, emptyObject, type Head } from '../repo/repository.js';
import type { PublishLock } from '../repo/publish-lock.js';
import { compressPoolFor, storeFileContent } from './file-content.js';
import { changedScope, scopePaths, type FileOperation, type Operation, type Scope } from './source-diff.js';
import { walkAndStore } from './walk-and-store.js';
import { ensureAncestors, finishRevision, revisionSummary, SerialTree, withPublishLock, type OwnerKeys, type RevisionSummary } from './owner-publish.js';
import { ScratchSpace } from '../repo/scratch.js';
import { CachedSource } from '../repo/object-cache.js';
import { Uploader } from './uploader.js';
import { sourceXattrs } from './xattrs.js';
import { ProgressReporter, type PublishProgress } from './progress.js';

export type { PublishProgress } from './progress.js';

export interface PublishOptions {
  fqrn: string;
  /** Signing keys, and the master public key the head is checked against. */
  keys: OwnerKeys;
  /** Repository sub-path to make equal to the source; '' or '/' is the whole repository. */
  path?: string;
  tag?: { name: string; description?: string };
  checksum?: boolean;
  workers?: number;
  uploadConcurrency?: number;
  /** Content-defined chunking of large files; default the stock 4/8/16 MiB, false: off. */
  chunking?: Partial<ChunkingParameters> | false;
  now?: () => Date;
  onProgress?: (p: PublishProgress) => void;
  onWarning?: (message: string) => void;
  /** Split heavy catalogs and merge light automatic ones (default on); weights in catalog rows. */
  autocatalogs?: boolean | { maxWeight?: number; minWeight?: number };
  /** The xattr blob of a source path, or null (see xattrs.ts). */
  /** The xattr blob of a source path; default: the tree's user.* attributes via getfattr; null: none. */
  xattrs?: ((sourcePath: string) => Buffer | null) | null;
  /** Keep the catalogs read and written in this local directory, so later publishes need not fetch them. */
  cacheDir?: string;
  /**
   * Compare only these paths of the source (relative to it) and their ancestors; the rest is taken
   * from the head unchanged. Exact whenever every change is under a listed path (docs/cli.md).
   */
  changed?: readonly string[];
}

export interface PublishSummary extends RevisionSummary {
  scanned: number;
  added: number;
  modified: number;
  removed: number;
  filesCompressed: number;
}

async function applyOperation(tree: CatalogTree, op: Exclude<Operation, FileOperation>): Promise<void> {
  switch (op.kind) {
    case 'upsert': return tree.upsert(op.path, op.entry, [], op.isNew === true);
    case 'remove': return tree.remove(op.path);
    case 'nest': return tree.createNested(op.path);
    case 'unnest': return tree.removeNested(op.path);
  }
}


export async function publishDirectory(store: ObjectStore, source: string, options: PublishOptions): Promise<PublishSummary> {
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const repoPath = normalizeRepoPath(options.path ?? '');
  // Refused before the lock is taken: a bad list changes nothing.
  const scope = options.changed ? changedScope(options.changed) : 'all';
  return withPublishLock(store, options.fqrn, options.keys, `publish ${options.fqrn}${repoPath || '/'}`,
    (head, lock) => publishLocked(store, head, source, repoPath, options, scope, lock, now, started), { now, onWarning: options.onWarning });
}

async function publishLocked(store: ObjectStore, head: Head, source: string, repoPath: string, options: PublishOptions,
  scope: Scope | 'all', lock: PublishLock, now: () => Date, started: number): Promise<PublishSummary> {
  const algorithm = head.algorithm;
  const scratch = ScratchSpace.create();
  const reporter = new ProgressReporter<PublishProgress>(
    { phase: 'scan', scanned: 0, filesDone: 0, filesTotal: 0, bytesRead: 0, bytesDone: 0, bytesTotal: 0 }, options.onProgress);
  const progress = reporter.state;
  const uploader = new Uploader(store, options.uploadConcurrency ?? 32);
  // Workers write straight into a filesystem store; other stores get the bytes back to upload.
  const pool = compressPoolFor(store, uploader, algorithm, { workers: options.workers, chunking: options.chunking });
  const empty = emptyObject(algorithm);
  let filesCompressed = 0;
  let tree: CatalogTree | undefined;
  try {
    const cache = options.cacheDir ? new CachedSource(store, options.cacheDir) : undefined;
    tree = await CatalogTree.open(catalogLoader(cache ?? store), head.manifest.rootCatalog, algorithm, { scratch });
    const serial = new SerialTree(tree);
    await serial.run((t) => ensureAncestors(t, repoPath, Math.floor(now().getTime() / 1000)));

    // Files compress in the workers while the walk goes on; their rows are written as each finishes.
    const storeFile = async (op: FileOperation): Promise<void> => {
      const c = await storeFileContent(pool, uploader, empty, op.source, op.entry, op.mtimeNs);
      if (c.bytesRead > 0) filesCompressed++;
      progress.bytesRead += c.bytesRead;
      await serial.run(async (t) => {
        const group = op.links.length > 0 ? await t.newHardlinkGroup(parentPath(op.path)) : 0;
        await t.upsert(op.path, { ...c.entry, hardlinkGroup: group }, c.chunks, op.isNew);
        for (const link of op.links) await t.upsert(link.path, { ...c.entry, name: link.name, hardlinkGroup: group }, c.chunks);
      });
    };
    const xattrs = await sourceXattrs(source, options.onWarning ?? (() => {}), options.xattrs,
      scope === 'all' ? undefined : scopePaths(scope));
    reporter.now();
    const stats = await walkAndStore(serial, source, repoPath, { apply: (op) => serial.run((t) => applyOperation(t, op)), storeFile }, reporter, {
      checksum: options.checksum, onWarning: options.onWarning, xattrs, scope: scope === 'all' ? undefined : scope,
    });

    const finished = await finishRevision(store, head, tree, lock, uploader, empty, {
      keys: options.keys, tag: options.tag, autocatalogs: options.autocatalogs, now, onWarning: options.onWarning,
      onCommit: () => { progress.phase = 'commit'; reporter.now(); }, cache,
    });
    return {
      ...revisionSummary(finished, uploader, progress.bytesRead, started),
      scanned: stats.scanned, added: stats.added, modified: stats.changed, removed: stats.removed, filesCompressed,
    };
  } finally {
    await pool.close();
    tree?.close();
    scratch.dispose();
  }
}
