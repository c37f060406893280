// What every owner publish shares, whatever its source (a directory, a tarball): the checks and lock
// around it, serialized edits of the catalog tree, parents created for a sub-path, and the end of the
// edit (balancing, then catalogs, history, reflog and manifest through commitRevision).
import { BusyError } from '../errors.js';
import { awaitFence, readFence, type FenceRecord } from '../repo/gc-fence.js';
import type { CachedSource } from '../repo/object-cache.js';
import type { ObjectStore } from '../store/object-store.js';
import type { ContentHash } from '../format/hash.js';
import type { PreparedObject } from '../format/zlib-object.js';
import type { CatalogTree } from '../repo/catalog-tree.js';
import { balanceCatalogs, DEFAULT_MAX_WEIGHT, DEFAULT_MIN_WEIGHT } from '../repo/catalog-balancer.js';
import { commitRevision, processOwner, type Head } from '../repo/repository.js';
import { assertSigningKeys, openTrustedHead, type TrustAnchor, type TrustedHead } from '../repo/trusted-head.js';
import { PublishLock } from '../repo/publish-lock.js';
import type { Uploader } from './uploader.js';
import { describeUploader, forgetGrants, grantsOf, recordBadObject } from '../repo/object-verification.js';

export interface OwnerKeys {
  repositoryKeyPem: string;
  certificatePem: string;
  /** The trust anchor (`<fqrn>.pub`): the head is checked against it before anything is signed on top. */
  masterPublicKeyPem: string;
}

/**
 * Checks the head against the trust anchor and that `keys` may sign its successor, takes the publish
 * lock and runs `fn` with the head as it is once the lock is held (it may have moved while we waited,
 * so it is checked again).
 */
export async function withPublishLock<T>(store: ObjectStore, fqrn: string, keys: OwnerKeys, holder: string,
  fn: (head: TrustedHead, lock: PublishLock) => Promise<T>, options: { now?: () => Date; onWarning?: (m: string) => void } = {}): Promise<T> {
  const anchor: TrustAnchor = { fqrn, masterPublicKeyPem: keys.masterPublicKeyPem };
  const head = await openTrustedHead(store, anchor, { now: options.now?.(), onWarning: options.onWarning });
  assertSigningKeys(head, keys);
  const lock = await PublishLock.acquire(store, holder, undefined, options.onWarning);
  try {
    // Read before any object is found present: the swap then knows whether a gc deleted objects since.
    fenceAtStart.set(lock, await readFence(store));
    const current = await openTrustedHead(store, anchor, { now: options.now?.() });
    assertSigningKeys(current, keys);
    return await fn(current, lock);
  } finally {
    await lock.release();
  }
}

export { ensureAncestors } from '../repo/repository.js';

/** The gc fence as each publish found it when it took the lock. */
const fenceAtStart = new WeakMap<PublishLock, FenceRecord>();

/**
 * Before the manifest swap: waits while a gc deletes, and refuses (busy) when it may have deleted objects
 * this publish found present; nothing was changed then, and the next publish uploads them again.
 */
async function ownerFenceCheck(store: ObjectStore, lock: PublishLock, now: () => Date): Promise<void> {
  const start = fenceAtStart.get(lock) ?? { epoch: -1, phase: 'idle' as const };
  const f = await awaitFence(store, start, undefined, { now: () => now().getTime(), giveUpAt: now().getTime() + 15 * 60_000 });
  if (f.verdict === 'recheck') {
    throw new BusyError('gc-overlap', 'a garbage collection deleted objects while this publish ran, and it may have ' +
      'found some of them present; nothing was published: publish again');
  }
}

/** Runs tree edits one at a time: the tree's methods await loads mid-edit and must not interleave. */
export class SerialTree {
  private tail: Promise<unknown> = Promise.resolve();
  constructor(readonly tree: CatalogTree) {}

  run<T>(fn: (tree: CatalogTree) => Promise<T>): Promise<T> {
    const next = this.tail.then(() => fn(this.tree));
    this.tail = next.catch(() => {});
    return next;
  }

  lookup(path: string) { return this.run((t) => t.lookup(path)); }
  list(dir: string) { return this.run((t) => t.list(dir)); }
  listStats(dir: string) { return this.run((t) => t.listStats(dir)); }
  isMountpoint(path: string) { return this.run((t) => t.isMountpoint(path)); }
}

export interface FinishOptions {
  keys: OwnerKeys;
  tag?: { name: string; description?: string };
  /** Split heavy catalogs and merge light automatic ones (default on); weights in catalog rows. */
  autocatalogs?: boolean | { maxWeight?: number; minWeight?: number };
  now: () => Date;
  onWarning?: (message: string) => void;
  /** Called once it is certain that a revision will be written. */
  onCommit?: () => void;
  /** The writer's catalog cache: the new catalogs go in, so the next publish need not fetch them. */
  cache?: CachedSource;
}

export interface FinishOutcome {
  changed: boolean;
  /** Objects that were already in the store with bytes not matching their name, overwritten (and reported). */
  objectsReplaced: number;
  revision: number;
  rootCatalog: ContentHash;
  catalogsWritten: number;
  catalogsSplit: string[];
  catalogsMerged: string[];
  /** The tree did not change but a tag was asked for: the revision only adds it (stock publishes one too). */
  tagOnly?: boolean;
}

/** What every owner's publish reports: the revision, what it uploaded, the catalogs, the time. */
export interface RevisionSummary extends FinishOutcome {
  bytesRead: number;
  bytesStored: number;
  objectsUploaded: number;
  objectsAlreadyPresent: number;
  /** Objects stored without the store client (compress workers writing a directory): no meter saw them. */
  storedOutside: { objects: number; bytes: number };
  seconds: number;
}

export function revisionSummary(finished: FinishOutcome, uploader: Uploader, bytesRead: number, started: number): RevisionSummary {
  return {
    ...finished, bytesRead, bytesStored: uploader.bytesUploaded, objectsUploaded: uploader.uploaded,
    objectsAlreadyPresent: uploader.alreadyPresent, storedOutside: { ...uploader.storedOutside }, seconds: (Date.now() - started) / 1000,
  };
}

/**
 * Balances the changed catalogs and commits the tree as the next revision, unless nothing changed.
 * Every data object must be stored before this is called: the manifest names what is reachable.
 */
export async function finishRevision(store: ObjectStore, head: Head, tree: CatalogTree, lock: PublishLock,
  uploader: Uploader, empty: PreparedObject, options: FinishOptions): Promise<FinishOutcome> {
  await reportReplaced(store, uploader, options);
  let balanced = { split: [] as string[], merged: [] as string[] };
  const auto = options.autocatalogs ?? true;
  if (auto !== false && tree.changed) {
    balanced = await balanceCatalogs(tree, {
      maxWeight: (typeof auto === 'object' ? auto.maxWeight : undefined) ?? DEFAULT_MAX_WEIGHT,
      minWeight: (typeof auto === 'object' ? auto.minWeight : undefined) ?? DEFAULT_MIN_WEIGHT,
      emptyHash: empty.hash, owner: processOwner(), now: Math.floor(options.now().getTime() / 1000), onWarning: options.onWarning,
    });
    if (balanced.split.length > 0 || balanced.merged.length > 0) await uploader.upload(empty);
  }
  const outcome = { catalogsSplit: balanced.split, catalogsMerged: balanced.merged, objectsReplaced: uploader.replaced.length };
  const tagOnly = !tree.changed && options.tag !== undefined;
  if (!tree.changed && !tagOnly) {
    return { changed: false, revision: head.manifest.revision, rootCatalog: head.manifest.rootCatalog, catalogsWritten: 0, ...outcome };
  }
  options.onCommit?.();
  lock.check();
  const committed = await commitRevision(store, head, tree, {
    keys: options.keys, now: options.now(), tag: options.tag, previousRoot: tagOnly ? head.manifest.rootCatalog : undefined,
    upload: async (objects: PreparedObject[]) => { for (const o of objects) await uploader.uploadNow(o); },
    beforeSwap: () => ownerFenceCheck(store, lock, options.now),
  });
  if (options.cache) {
    for (const c of committed.catalogs) await options.cache.put(c.object.key, c.object.stored);
    await options.cache.prune(CACHE_MAX_BYTES);
  }
  return {
    changed: true, revision: committed.manifest.revision, rootCatalog: committed.manifest.rootCatalog,
    catalogsWritten: committed.catalogs.length, ...outcome, ...(tagOnly ? { tagOnly } : {}),
  };
}

/**
 * Objects this publish wanted that were already stored with other bytes were overwritten with the right
 * ones as they were met; each is recorded in `.scvmfs/bad-objects/` and warned about with its uploader.
 */
async function reportReplaced(store: ObjectStore, uploader: Uploader, options: FinishOptions): Promise<void> {
  const at = options.now().toISOString();
  for (const r of uploader.replaced) {
    const grants = await grantsOf(store, r.key);
    const who = describeUploader(grants);
    const record = await recordBadObject(store, {
      key: r.key, actual: r.actual, paths: [], uploader: who, grants, foundBy: 'owner-publish',
      victim: 'the repository owner', action: 'replaced', at,
    });
    await forgetGrants(store, [r.key]);
    options.onWarning?.(`object ${r.key} held bytes that do not match its name (they hash to ${r.actual}), ` +
      `uploaded by ${who}; replaced with the right bytes (recorded in ${record})`);
  }
}

/** The writer's catalog cache is pruned to this size (least recently used first). */
const CACHE_MAX_BYTES = 4 * 1024 ** 3;
