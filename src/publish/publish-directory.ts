// The owner's local publish: make the repository (or one sub-path of it) equal to a source directory.
// Order of writes: data objects, then catalogs (children first), history and reflog, manifest last.
import type { ObjectStore } from '../store/object-store.js';
import { ContentHash } from '../format/hash.js';
import { FLAG, kindOfMode, newDirectoryEntry } from '../format/catalog-entry.js';
import type { ChunkingParameters } from '../format/chunker.js';
import { normalizeRepoPath, parentPath } from '../format/md5path.js';
import type { PreparedObject } from '../format/zlib-object.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import {
  catalogLoader, checkSigningKeys, commitRevision, emptyObject, processOwner, readHead, RepositoryMissingError, type Head,
} from '../repo/repository.js';
import { PublishLock } from '../repo/publish-lock.js';
import { CompressPool } from './compress-pool.js';
import { diffSource, type Operation } from './source-diff.js';
import { Uploader } from './uploader.js';
import { FsStore } from '../store/fs-store.js';

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

async function applyOperation(tree: CatalogTree, op: Operation): Promise<void> {
  switch (op.kind) {
    case 'upsert': return tree.upsert(op.path, op.entry, op.chunks);
    case 'file': return tree.upsert(op.path, op.entry, op.chunks);
    case 'remove': return tree.remove(op.path);
    case 'nest': return tree.createNested(op.path);
    case 'unnest': return tree.removeNested(op.path);
  }
}

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
  const tree = await CatalogTree.open(catalogLoader(store), head.manifest.rootCatalog, algorithm);
  const progress: PublishProgress = { phase: 'scan', scanned: 0, filesDone: 0, filesTotal: 0, bytesRead: 0 };
  const report = () => options.onProgress?.({ ...progress });
  const uploader = new Uploader(store, options.uploadConcurrency ?? 32);
  // Workers write straight into a filesystem store; other stores get the bytes back to upload.
  const pool = new CompressPool({
    algorithm, workers: options.workers, chunking: options.chunking,
    sink: store instanceof FsStore ? { fsStoreRoot: store.root } : { upload: (o) => uploader.upload(o) },
  });
  const empty = emptyObject(algorithm);
  let filesCompressed = 0;
  try {
    await ensureAncestors(tree, repoPath, Math.floor(now().getTime() / 1000));
    const pending: Promise<void>[] = [];
    const startFile = async (op: Extract<Operation, { kind: 'file' }>): Promise<void> => {
      progress.filesTotal++;
      if (op.entry.size === 0) {
        op.entry.hash = empty.hash;
        await uploader.upload(empty);
      } else {
        const c = await pool.compress(op.source, op.entry.size, op.mtimeNs);
        op.entry.hash = c.hash;
        if (c.chunks.length > 0) {
          op.entry.extraFlags |= FLAG.chunked;
          op.entry.chunkAlgorithm = algorithm;
          op.chunks = c.chunks;
        }
        filesCompressed++;
        progress.bytesRead += op.entry.size;
        uploader.recordObjects(c.objects);
      }
      progress.filesDone++;
      if (progress.filesDone % 500 === 0) report();
    };
    const { operations, stats } = await diffSource(tree, source, repoPath, {
      checksum: options.checksum,
      onWarning: options.onWarning,
      onScanned: (n) => { progress.scanned = n; report(); },
      onFile: (op) => { pending.push(startFile(op)); },
    });
    progress.phase = 'upload';
    await settleAll(pending);
    report();

    const changed = operations.length > 0 || tree.changed;
    if (!changed) {
      return summary(false, head.manifest.revision, head.manifest.rootCatalog, 0);
    }
    progress.phase = 'commit';
    report();
    for (const op of operations) await applyOperation(tree, op);
    lock.check();
    const outcome = await commitRevision(store, head, tree, {
      keys: options.keys, now: now(), tag: options.tag,
      upload: async (objects: PreparedObject[]) => { for (const o of objects) await uploader.uploadNow(o); },
    });
    return summary(true, outcome.manifest.revision, outcome.manifest.rootCatalog, outcome.catalogs.length);

    function summary(didChange: boolean, revision: number, root: ContentHash, catalogs: number): PublishSummary {
      return {
        changed: didChange, revision, rootCatalog: root, scanned: stats.scanned, added: stats.added,
        modified: stats.changed, removed: stats.removed, filesCompressed, bytesRead: progress.bytesRead,
        bytesStored: uploader.bytesUploaded, objectsUploaded: uploader.uploaded,
        objectsAlreadyPresent: uploader.alreadyPresent, catalogsWritten: catalogs, seconds: (Date.now() - started) / 1000,
      };
    }
  } finally {
    await pool.close();
    tree.close();
  }
}

/** Waits for every promise and rethrows the first failure (never leaves work running behind an error). */
async function settleAll(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
