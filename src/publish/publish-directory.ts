// The owner's local publish: make the repository (or one sub-path of it) equal to a source directory.
// Order of writes: data objects, then catalogs (children first), history and reflog, manifest last.
import type { ObjectStore } from '../store/object-store.js';
import { ContentHash } from '../format/hash.js';
import { kindOfMode, newDirectoryEntry } from '../format/catalog-entry.js';
import type { ChunkingParameters } from '../format/chunker.js';
import { normalizeRepoPath, parentPath } from '../format/md5path.js';
import type { PreparedObject } from '../format/zlib-object.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import {
  catalogLoader, checkSigningKeys, commitRevision, emptyObject, processOwner, readHead, RepositoryMissingError, type Head,
} from '../repo/repository.js';
import { PublishLock } from '../repo/publish-lock.js';
import { compressPoolFor, storeFileContent } from './file-content.js';
import { diffSource, type FileOperation, type HeadView, type Operation } from './source-diff.js';
import { balanceCatalogs, DEFAULT_MAX_WEIGHT, DEFAULT_MIN_WEIGHT } from '../repo/catalog-balancer.js';
import { ScratchSpace } from '../repo/scratch.js';
import { CachedSource } from '../repo/object-cache.js';
import { Uploader } from './uploader.js';
import { sourceXattrs } from './xattrs.js';

export interface PublishProgress {
  phase: 'scan' | 'upload' | 'commit';
  scanned: number;
  filesDone: number;
  filesTotal: number;
  bytesRead: number;
}

export interface PublishOptions {
  fqrn: string;
  keys: { repositoryKeyPem: string; certificatePem: string };
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
}

export interface PublishSummary {
  changed: boolean;
  revision: number;
  rootCatalog: ContentHash;
  scanned: number;
  added: number;
  modified: number;
  removed: number;
  filesCompressed: number;
  bytesRead: number;
  bytesStored: number;
  objectsUploaded: number;
  objectsAlreadyPresent: number;
  catalogsWritten: number;
  catalogsSplit: string[];
  catalogsMerged: string[];
  seconds: number;
}

/** Intermediate directories of `--path` that the repository does not have yet. */
async function ensureAncestors(tree: CatalogTree, path: string, seconds: number): Promise<void> {
  const missing: string[] = [];
  for (let p = path; p !== ''; p = parentPath(p)) {
    const parent = parentPath(p);
    const e = await tree.lookup(parent);
    if (e && kindOfMode(e.mode) === 'directory') break;
    if (e) throw new Error(`cannot publish into '${path}': '${parent}' is not a directory in the repository`);
    missing.unshift(parent);
  }
  for (const dir of missing) await tree.upsert(dir, newDirectoryEntry(dir.slice(dir.lastIndexOf('/') + 1), seconds, processOwner()));
}

/** Runs tree edits one at a time: the tree's methods await loads mid-edit and must not interleave. */
class SerialTree implements HeadView {
  private tail: Promise<unknown> = Promise.resolve();
  constructor(readonly tree: CatalogTree) {}

  run<T>(fn: (tree: CatalogTree) => Promise<T>): Promise<T> {
    const next = this.tail.then(() => fn(this.tree));
    this.tail = next.catch(() => {});
    return next;
  }

  lookup(path: string) { return this.run((t) => t.lookup(path)); }
  list(dir: string) { return this.run((t) => t.list(dir)); }
  isMountpoint(path: string) { return this.run((t) => t.isMountpoint(path)); }
}

async function applyOperation(tree: CatalogTree, op: Exclude<Operation, FileOperation>): Promise<void> {
  switch (op.kind) {
    case 'upsert': return tree.upsert(op.path, op.entry);
    case 'remove': return tree.remove(op.path);
    case 'nest': return tree.createNested(op.path);
    case 'unnest': return tree.removeNested(op.path);
  }
}

/** The writer's catalog cache is pruned to this size (least recently used first). */
const CACHE_MAX_BYTES = 4 * 1024 ** 3;

/** Files compressing at once: bounds the memory held by queued operations, not the parallelism. */
const MAX_FILES_IN_FLIGHT = 2048;

export async function publishDirectory(store: ObjectStore, source: string, options: PublishOptions): Promise<PublishSummary> {
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const repoPath = normalizeRepoPath(options.path ?? '');
  const head = await readHead(store);
  if (!head) throw new RepositoryMissingError(store);
  if (head.manifest.fqrn !== options.fqrn) {
    throw new Error(`the repository in ${store.description} is '${head.manifest.fqrn}', not '${options.fqrn}'`);
  }
  await checkSigningKeys(store, head, options.keys);

  const lock = await PublishLock.acquire(store, `publish ${options.fqrn}${repoPath || '/'}`);
  try {
    // The head may have moved while we waited for the lock.
    const current = (await readHead(store)) as Head;
    return await publishLocked(store, current, source, repoPath, options, lock, now, started);
  } finally {
    await lock.release();
  }
}

async function publishLocked(store: ObjectStore, head: Head, source: string, repoPath: string, options: PublishOptions,
  lock: PublishLock, now: () => Date, started: number): Promise<PublishSummary> {
  const algorithm = head.algorithm;
  const scratch = ScratchSpace.create();
  const progress: PublishProgress = { phase: 'scan', scanned: 0, filesDone: 0, filesTotal: 0, bytesRead: 0 };
  const report = () => options.onProgress?.({ ...progress });
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
    const inFlight = new Set<Promise<void>>();
    let failure: unknown = null;
    let wake: (() => void) | null = null;
    const publishFile = async (op: FileOperation): Promise<void> => {
      const c = await storeFileContent(pool, uploader, empty, op.source, op.entry, op.mtimeNs);
      if (c.bytesRead > 0) filesCompressed++;
      progress.bytesRead += c.bytesRead;
      await serial.run(async (t) => {
        const group = op.links.length > 0 ? await t.newHardlinkGroup(parentPath(op.path)) : 0;
        await t.upsert(op.path, { ...c.entry, hardlinkGroup: group }, c.chunks);
        for (const link of op.links) await t.upsert(link.path, { ...c.entry, name: link.name, hardlinkGroup: group }, c.chunks);
      });
      progress.filesDone++;
      if (progress.filesDone % 500 === 0) report();
    };
    const xattrs = options.xattrs === null ? undefined
      : options.xattrs ?? await sourceXattrs(source, options.onWarning ?? (() => {}));
    const stats = await diffSource(serial, source, repoPath, {
      apply: (op) => {
        if (failure) throw failure;
        return serial.run((t) => applyOperation(t, op));
      },
      file: async (op) => {
        if (failure) throw failure;
        progress.filesTotal++;
        while (inFlight.size >= MAX_FILES_IN_FLIGHT) await new Promise<void>((resolve) => { wake = resolve; });
        const p: Promise<void> = publishFile(op).catch((err) => { failure ??= err; }).finally(() => {
          inFlight.delete(p);
          wake?.();
          wake = null;
        });
        inFlight.add(p);
      },
    }, {
      checksum: options.checksum,
      onWarning: options.onWarning,
      xattrs: xattrs,
      onScanned: (n) => { progress.scanned = n; report(); },
    }).catch(async (err) => {
      await Promise.allSettled([...inFlight]);
      throw err;
    });
    progress.phase = 'upload';
    await Promise.allSettled([...inFlight]);
    if (failure) throw failure;
    report();

    let balanced = { split: [] as string[], merged: [] as string[] };
    const auto = options.autocatalogs ?? true;
    if (auto !== false && tree.changed) {
      balanced = await balanceCatalogs(tree, {
        maxWeight: (typeof auto === 'object' ? auto.maxWeight : undefined) ?? DEFAULT_MAX_WEIGHT,
        minWeight: (typeof auto === 'object' ? auto.minWeight : undefined) ?? DEFAULT_MIN_WEIGHT,
        emptyHash: empty.hash, owner: processOwner(), now: Math.floor(now().getTime() / 1000), onWarning: options.onWarning,
      });
      if (balanced.split.length > 0 || balanced.merged.length > 0) await uploader.upload(empty);
    }

    if (!tree.changed) {
      return summary(false, head.manifest.revision, head.manifest.rootCatalog, 0);
    }
    progress.phase = 'commit';
    report();
    lock.check();
    const outcome = await commitRevision(store, head, tree, {
      keys: options.keys, now: now(), tag: options.tag,
      upload: async (objects: PreparedObject[]) => { for (const o of objects) await uploader.uploadNow(o); },
    });
    if (cache) {
      for (const c of outcome.catalogs) await cache.put(c.object.key, c.object.stored);
      await cache.prune(CACHE_MAX_BYTES);
    }
    return summary(true, outcome.manifest.revision, outcome.manifest.rootCatalog, outcome.catalogs.length);

    function summary(didChange: boolean, revision: number, root: ContentHash, catalogs: number): PublishSummary {
      return {
        changed: didChange, revision, rootCatalog: root, scanned: stats.scanned, added: stats.added,
        modified: stats.changed, removed: stats.removed, filesCompressed, bytesRead: progress.bytesRead,
        bytesStored: uploader.bytesUploaded, objectsUploaded: uploader.uploaded,
        objectsAlreadyPresent: uploader.alreadyPresent, catalogsWritten: catalogs,
        catalogsSplit: balanced.split, catalogsMerged: balanced.merged, seconds: (Date.now() - started) / 1000,
      };
    }
  } finally {
    await pool.close();
    tree?.close();
    scratch.dispose();
  }
}
