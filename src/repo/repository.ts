// A repository over a store: its head, creating it, and committing a new revision. The manifest is
// written last, with a conditional write, so it is the only commit point (design invariant 1, 2).
import { BusyError, RefusedError } from '../errors.js';
import type { ObjectReader, ObjectStore } from '../store/object-store.js';
import { PreconditionFailedError } from '../store/object-store.js';
import { ContentHash, type HashAlgorithm } from '../format/hash.js';
import { EMPTY_OBJECT, prepareObject, type PreparedObject } from '../format/zlib-object.js';
import { parseManifest, signManifest, verifyManifestSignature, ROOT_PATH_HASH, type Manifest, type SignedManifest } from '../format/manifest.js';
import { certificateFingerprint, makeWhitelist, parseWhitelist, signWhitelist, whitelistListsCertificate } from '../format/whitelist.js';
import { assertKeyMatchesCertificate } from '../format/certificate.js';
import { createHistory, nextHistoryTags, readHistory, type Tag } from '../format/history.js';
import { addToReflog, type ReflogEntry } from '../format/reflog.js';
import { kindOfMode, newDirectoryEntry } from '../format/catalog-entry.js';
import { parentPath } from '../format/md5path.js';
import { CatalogTree, type CommitResult } from './catalog-tree.js';
import { fetchCatalog, fetchObjectContent } from './objects.js';
import { checkStoredObject } from './object-verification.js';
import { raiseHighWater } from './high-water.js';

export const MANIFEST_KEY = '.cvmfspublished';
export const WHITELIST_KEY = '.cvmfswhitelist';
export const REFLOG_KEY = '.cvmfsreflog';
export const MASTER_REPLICA_KEY = '.cvmfs_master_replica';
export const DEFAULT_TTL = 240;

export interface Head {
  bytes: Buffer;
  etag: string;
  signed: SignedManifest;
  manifest: Manifest;
  algorithm: HashAlgorithm;
}

export class RepositoryMissingError extends RefusedError {
  constructor(store: ObjectStore) {
    super('no-repository', `no repository in ${store.description} (no ${MANIFEST_KEY}); create one with 'scvmfs init'`);
    this.name = 'RepositoryMissingError';
  }
}

/** Another writer committed between our read of the head and our manifest swap. */
export class ConcurrentPublishError extends BusyError {
  constructor(readonly expectedRevision: number) {
    super('concurrent-publish', `another publish committed to the repository after revision ${expectedRevision} while this one ran; ` +
      'this publish changed nothing (objects it uploaded are unreferenced); run it again');
    this.name = 'ConcurrentPublishError';
  }
}

export async function readHead(store: ObjectStore): Promise<Head | null> {
  const got = await store.get(MANIFEST_KEY);
  if (!got) return null;
  const signed = parseManifest(got.body);
  return { bytes: got.body, etag: got.etag, signed, manifest: signed.manifest, algorithm: signed.manifest.rootCatalog.algorithm };
}

export function catalogLoader(store: ObjectReader) {
  return async (hash: ContentHash, file?: string) => (await fetchCatalog(store, hash, file)).db;
}

/**
 * Whether `keys` are this repository's as far as the store alone can tell: the head verifies against the
 * certificate it names and the whitelist lists the keys' certificate. Proof enough that the caller is the
 * owner (owner lease and abort commands); writers that sign use openTrustedHead (trusted-head.ts), which
 * checks the head against the configured master key instead of the store.
 */
export async function checkSigningKeys(store: ObjectStore, head: Head, keys: { repositoryKeyPem: string; certificatePem: string }): Promise<void> {
  assertKeyMatchesCertificate(keys.repositoryKeyPem, keys.certificatePem);
  const headCertificate = (await fetchObjectContent(store, head.manifest.certificate, 'X')).toString('utf8');
  if (!verifyManifestSignature(head.signed, headCertificate)) {
    throw new RefusedError('untrusted-head', `the manifest in ${store.description} does not verify against its own certificate`, { reason: 'signature' });
  }
  const whitelist = await store.get(WHITELIST_KEY);
  if (!whitelist) throw new RefusedError('untrusted-head', `repository in ${store.description} has no ${WHITELIST_KEY}`, { reason: 'whitelist' });
  if (!whitelistListsCertificate(parseWhitelist(whitelist.body).whitelist, keys.certificatePem)) {
    throw new RefusedError('foreign-certificate', `the repository key and certificate given (fingerprint ${certificateFingerprint(keys.certificatePem)}) ` +
      "are not the ones this repository's whitelist trusts; use the keys the repository was created with");
  }
}

export interface PutObjectOptions {
  /**
   * Take an existing object on trust (default false). A writer whose objects the commit function checks
   * may; anyone who references the object next (the owner, the commit function) must not: whoever may
   * create a missing key could have put other bytes under this name.
   */
  trustPresent?: boolean;
  /** Called when the key held other bytes, which were replaced by `obj`'s. */
  onReplaced?: (key: string, actual: string) => void;
}

/**
 * Stores a content-addressed object unless it is there already. What is there is checked against its
 * name (unless `trustPresent`); bytes that do not match are overwritten with the right ones. True when
 * this call wrote the object.
 */
export async function putIfAbsent(store: ObjectStore, obj: PreparedObject, options: PutObjectOptions = {}): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await store.put(obj.key, obj.stored, { ifNoneMatch: '*' });
      return true;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
    if (options.trustPresent) return false;
    const check = await checkStoredObject(store, obj.key, obj.hash);
    if (check.status === 'ok') return false;
    // Deleted between our create and our read: create it again.
    if (check.status === 'missing' && attempt < 3) continue;
    await store.put(obj.key, obj.stored);
    if (check.status === 'corrupt') options.onReplaced?.(obj.key, check.actual);
    return true;
  }
}

export function emptyObject(algorithm: HashAlgorithm): PreparedObject {
  const hash = ContentHash.of(algorithm, EMPTY_OBJECT);
  return { hash, suffix: '', key: hash.objectKey(''), stored: Buffer.from(EMPTY_OBJECT) };
}

export function processOwner(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

export interface InitOptions {
  fqrn: string;
  keys: { masterKeyPem: string; repositoryKeyPem: string; certificatePem: string };
  algorithm?: HashAlgorithm;
  now?: Date;
  ttl?: number;
  whitelistDays?: number;
  garbageCollectable?: boolean;
}

/** Creates an empty repository: revision 1 with a root catalog holding only '/'. */
export async function initRepository(store: ObjectStore, options: InitOptions): Promise<Manifest> {
  const algorithm = options.algorithm ?? 'sha1';
  const now = options.now ?? new Date();
  const seconds = Math.floor(now.getTime() / 1000);
  const ttl = options.ttl ?? DEFAULT_TTL;
  if (await store.head(MANIFEST_KEY)) {
    throw new Error(`a repository already exists in ${store.description}; refusing to overwrite it`);
  }
  assertKeyMatchesCertificate(options.keys.repositoryKeyPem, options.keys.certificatePem);

  await putIfAbsent(store, emptyObject(algorithm));
  const certificate = prepareObject(algorithm, Buffer.from(options.keys.certificatePem), 'X');
  await putIfAbsent(store, certificate);

  const rootEntry = newDirectoryEntry('', seconds, processOwner());
  const tree = CatalogTree.createEmpty(catalogLoader(store), algorithm, rootEntry, ttl);
  const committed = await tree.commit(1, seconds);
  tree.close();
  for (const c of committed.catalogs) await putIfAbsent(store, c.object);

  const history = prepareObject(algorithm, createHistory(options.fqrn,
    nextHistoryTags([], { hash: committed.rootHash, size: committed.rootSize, revision: 1, timestamp: seconds })), 'H');
  await putIfAbsent(store, history);

  const reflog = addToReflog(undefined, options.fqrn, [
    { hash: committed.rootHash, type: 'catalog', timestamp: seconds },
    { hash: certificate.hash, type: 'certificate', timestamp: seconds },
    { hash: history.hash, type: 'history', timestamp: seconds },
  ]);
  await store.put(REFLOG_KEY, reflog);

  const whitelist = signWhitelist(makeWhitelist({ fqrn: options.fqrn, certificatePem: options.keys.certificatePem, now, validityDays: options.whitelistDays }), options.keys.masterKeyPem);
  await store.put(WHITELIST_KEY, whitelist);
  await store.put(MASTER_REPLICA_KEY, Buffer.alloc(0));

  const manifest: Manifest = {
    rootCatalog: committed.rootHash, rootCatalogSize: committed.rootSize, rootPathHash: ROOT_PATH_HASH, ttl,
    revision: 1, garbageCollectable: options.garbageCollectable ?? false, alternativeName: false, fqrn: options.fqrn,
    certificate: certificate.hash, history: history.hash, publishedAt: seconds, reflog: ContentHash.of(algorithm, reflog),
  };
  try {
    await store.put(MANIFEST_KEY, signManifest(manifest, options.keys.repositoryKeyPem), { ifNoneMatch: '*' });
  } catch (err) {
    if (err instanceof PreconditionFailedError) throw new Error(`a repository was created in ${store.description} at the same time; refusing to overwrite it`);
    throw err;
  }
  await raiseHighWater(store, manifest, options.keys.repositoryKeyPem, { newRepository: true });
  return manifest;
}

export interface CommitOptions {
  keys: { repositoryKeyPem: string; certificatePem: string };
  now?: Date;
  tag?: { name: string; description?: string };
  /** Uploads the new catalogs; defaults to conditional creates in order. */
  upload?: (objects: PreparedObject[]) => Promise<void>;
  /** The root catalog this revision follows, when the tree was opened at an unpublished one. */
  previousRoot?: ContentHash;
  /**
   * The new revision's tag list, for revisions that are not a publish (tag edits, rollback); by default
   * a publish's: trunk moves, a generic tag and the optional `tag` name the new head.
   */
  tags?: (previous: Tag[], head: Omit<Tag, 'name' | 'description'>) => Tag[];
  /** Runs after every object is stored and before the manifest swap (a commit chain's checkpoint). */
  beforeSwap?: (manifest: Manifest) => Promise<void>;
  /** Root catalogs whose reflog rows go (garbage collection deleted them). */
  reflogRemove?: readonly ContentHash[];
  /** Sets the manifest's `G` flag (garbage collection sets it: old revisions may then be missing). */
  garbageCollectable?: boolean;
}

export interface CommitOutcome {
  manifest: Manifest;
  catalogs: CommitResult['catalogs'];
}

/**
 * Writes the tree's changed catalogs, a new history and reflog, and swaps the manifest from `head` to the
 * new revision with compare-and-swap. Throws ConcurrentPublishError when someone else committed first.
 */
export async function commitRevision(store: ObjectStore, head: Head, tree: CatalogTree, options: CommitOptions): Promise<CommitOutcome> {
  const old = head.manifest;
  const revision = old.revision + 1;
  const seconds = Math.max(Math.floor((options.now ?? new Date()).getTime() / 1000), old.publishedAt);
  const committed = await tree.commit(revision, seconds, { previousRoot: options.previousRoot });
  const upload = options.upload ?? (async (objs) => { for (const o of objs) await putIfAbsent(store, o); });
  await upload(committed.catalogs.map((c) => c.object));

  const previousTags: Tag[] = old.history ? readHistory(await fetchObjectContent(store, old.history, 'H')).tags : [];
  const headTag = { hash: committed.rootHash, size: committed.rootSize, revision, timestamp: seconds };
  const tags = options.tags ? options.tags(previousTags, headTag) : nextHistoryTags(previousTags, headTag, options.tag);
  const history = prepareObject(head.algorithm, createHistory(old.fqrn, tags, old.history), 'H');
  await putIfAbsent(store, history);

  const refs: ReflogEntry[] = [
    { hash: committed.rootHash, type: 'catalog', timestamp: seconds },
    { hash: history.hash, type: 'history', timestamp: seconds },
  ];
  const certificate = await signerCertificate(store, head, options.keys.certificatePem);
  if (!certificate.equals(old.certificate)) refs.push({ hash: certificate, type: 'certificate', timestamp: seconds });
  const reflog = await writeReflog(store, old.fqrn, refs, head, options.reflogRemove);

  const manifest: Manifest = {
    ...old, rootCatalog: committed.rootHash, rootCatalogSize: committed.rootSize, revision, publishedAt: seconds,
    history: history.hash, reflog: reflog.hash, ttl: Number(tree.root.property('TTL') ?? old.ttl), certificate,
    garbageCollectable: options.garbageCollectable ?? old.garbageCollectable,
  };
  try {
    await options.beforeSwap?.(manifest);
  } catch (err) {
    // Nothing names the new reflog yet: put the one it replaced back, so it stays in step with the head.
    await restoreReflog(store, reflog);
    throw err;
  }
  try {
    await store.put(MANIFEST_KEY, signManifest(manifest, options.keys.repositoryKeyPem), { ifMatch: head.etag });
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      await restoreReflog(store, reflog);
      throw new ConcurrentPublishError(old.revision);
    }
    throw err;
  }
  await raiseHighWater(store, manifest, options.keys.repositoryKeyPem);
  return { manifest, catalogs: committed.catalogs };
}

/**
 * The certificate object `X` the new manifest names: the one whose key signs it. After a key rotation
 * that is a new certificate, stored here before any manifest names it; otherwise the head's object is
 * kept as it is (a repository made by the stock tools keeps its own `X`).
 */
async function signerCertificate(store: ObjectStore, head: Head, certificatePem: string): Promise<ContentHash> {
  const current = await fetchObjectContent(store, head.manifest.certificate, 'X');
  if (current.toString('utf8') === certificatePem) return head.manifest.certificate;
  const object = prepareObject(head.algorithm, Buffer.from(certificatePem), 'X');
  await putIfAbsent(store, object);
  return object.hash;
}

/** What a reflog write replaced, so that a publish that loses the manifest race can put it back. */
interface ReflogWrite {
  hash: ContentHash;
  etag: string;
  previous: Buffer | null;
}

/** Adds refs to `.cvmfsreflog` with compare-and-swap and returns the hash that goes into manifest `Y`. */
async function writeReflog(store: ObjectStore, fqrn: string, refs: ReflogEntry[], head: Head, remove: readonly ContentHash[] = []): Promise<ReflogWrite> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.get(REFLOG_KEY);
    const bytes = addToReflog(current?.body, fqrn, refs, remove);
    try {
      const put = await store.put(REFLOG_KEY, bytes, current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
      return { hash: ContentHash.of(head.algorithm, bytes), etag: put.etag, previous: current?.body ?? null };
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= 30) throw err;
      // Other publishes are committing at the same moment: back off a little, with jitter.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(attempt + 1, 10)));
    }
  }
}

/**
 * After a lost manifest race: if our reflog is still the current one, the winner's manifest names the
 * reflog we replaced, so put it back. If someone wrote after us, their reflog is the one named.
 */
async function restoreReflog(store: ObjectStore, write: ReflogWrite): Promise<void> {
  if (write.previous === null) return;
  try {
    await store.put(REFLOG_KEY, write.previous, { ifMatch: write.etag });
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
}

/** Intermediate directories of `path` that the repository does not have yet, owned by the publisher. */
export async function ensureAncestors(tree: CatalogTree, path: string, seconds: number): Promise<void> {
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
