// The writer of serverless publishing: takes a lease on its sub-path, diffs its source against the head
// catalogs (public reads), compresses and uploads new objects, uploads the signed changeset in bounded
// parts, and runs the commit chain. It never holds the repository signing key and never writes a
// catalog or the manifest itself; the functions it calls do, wherever the runtime runs them.
import { BusyError, RefusedError } from '../errors.js';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ObjectStore } from '../store/object-store.js';
import { meterSum, type MeterSnapshot } from '../store/metered-store.js';
import type { ChunkingParameters } from '../format/chunker.js';
import {
  CHANGESET_PART_TYPE, CHANGESET_TYPE, chunksToWire, entryToWire, MAX_OPS_PER_PART, partDigest, txnKeys,
  type ChangeOp, type ChangesetHeader, type ChangesetPart,
} from '../format/changeset.js';
import { assertValidOperation, MAX_PART_BYTES } from '../format/changeset-validation.js';
import { FLAG } from '../format/catalog-entry.js';
import { signLeaseRequest } from '../format/lease.js';
import { normalizeRepoPath } from '../format/md5path.js';
import { scopePath } from '../format/publisher-policy.js';
import { serializeSignedDocument, signDocument } from '../format/signed-document.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import { catalogLoader, emptyObject, readHead, RepositoryMissingError } from '../repo/repository.js';
import { ScratchSpace } from '../repo/scratch.js';
import { CachedSource } from '../repo/object-cache.js';
import { compressPoolFor, storeFileContent } from './file-content.js';
import type { CompressPool } from './compress-pool.js';
import { badObjectsKey, poisonedObjectError, readBadObjects, type PoisonedObject } from '../repo/object-verification.js';
import type { DiffStats, FileOperation } from './source-diff.js';
import { walkAndStore } from './walk-and-store.js';
import { Uploader, type ObjectUploader } from './uploader.js';
import { GrantUploader } from './grant-uploader.js';
import { sourceXattrs } from './xattrs.js';
import { ProgressReporter, type PublishProgress } from './progress.js';

/** How the writer reaches the functions: the local runtime, or Lambda. */
export interface FunctionInvoker {
  /** One invocation; resolves to the handler's `result`. */
  invoke(fn: string, event: unknown): Promise<unknown>;
  /** Runs a chain from `fn` until a step answers without `next`; resolves to the last `result`. */
  runChain(fn: string, event: unknown): Promise<unknown>;
  /** Store requests the functions made for this invoker's calls so far, as far as the runtime reports them. */
  requests?(): MeterSnapshot;
}

export interface PublisherIdentity {
  name: string;
  fqrn: string;
  privateKeyPem: string;
}

export interface ChainPublishOptions {
  fqrn: string;
  publisher: PublisherIdentity;
  path: string;
  functions: FunctionInvoker;
  leaseSeconds?: number;
  tag?: { name: string; description?: string };
  checksum?: boolean;
  workers?: number;
  /** Steps of the protocol as sentences: the lease, the changeset, repairs. */
  onProgress?: (message: string) => void;
  /** The figures of the walk and the uploads, as a local publish reports them (commit: the chain runs). */
  onCounts?: (p: PublishProgress) => void;
  onWarning?: (message: string) => void;
  /** The xattr blob of a source path; default: the tree's user.* attributes via getfattr; null: none. */
  xattrs?: ((sourcePath: string) => Buffer | null) | null;
  /** Keep the catalogs read and written in this local directory, so later publishes need not fetch them. */
  cacheDir?: string;
  chunking?: Partial<ChunkingParameters> | false;
  /**
   * Catalog balancing of the writer's path, asked of the commit function (which clamps it to the bounds
   * the owner allows, functions/commit.ts); default: the deployment's setting.
   */
  autocatalogs?: { maxWeight: number; minWeight: number } | false;
  /**
   * How data objects reach the store: 'direct' (default) puts them with the writer's own credentials;
   * 'grants' asks the upload-grant function which are missing and PUTs those to the pre-signed URLs it
   * returns (keys granted without a URL, as on a directory store, are still put directly).
   */
  uploadVia?: 'direct' | 'grants';
}

export interface ChainPublishSummary {
  changed: boolean;
  /** The tree did not change and the revision was made only to carry `--tag` (as the owner's publish does). */
  tagOnly?: boolean;
  revision: number;
  stats: DiffStats;
  operations: number;
  parts: number;
  filesCompressed: number;
  bytesRead: number;
  objectsUploaded: number;
  objectsAlreadyPresent: number;
  /** Objects the writer stored without its store client (uploader.storedOutside): no meter saw them. */
  storedOutside: { objects: number; bytes: number };
  /** PUTs to upload-grant URLs (with --upload-via grants): store requests made outside `store`. */
  urlPuts: number;
  slices: number;
  rebases: number;
  /** Rebases done by swapping one catalog reference (the writer's own nested catalog). */
  grafts: number;
  /**
   * Store requests the functions made for this publish (lease renewals included), when the invoker
   * reports them; the writer's own are counted by whoever metered `store`.
   */
  functionRequests?: MeterSnapshot;
  seconds: number;
}

/** Function calls that died (timeout, kill, crash) are repeated; refusals are not. */
async function retrying<T>(call: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (err) {
      const kind = (err as { kind?: string }).kind;
      const transient = kind === 'timeout' || kind === 'killed' || kind === 'crashed' || kind === 'out-of-memory';
      if (!transient || i >= attempts) throw err;
    }
  }
}

export class LeaseBusyError extends BusyError {
  constructor(message: string) {
    super('lease-busy', message);
    this.name = 'LeaseBusyError';
  }
}

interface LeaseAnswer {
  status: 'ok' | 'busy';
  message?: string;
  lease?: { leaseId: string; token: string; expiresAt: string };
}

/** Room left in a part for the signed envelope around its operations. */
const PART_ENVELOPE_BYTES = 64 * 1024;

/**
 * Buffers operations and uploads them as signed parts of bounded count and size. Each operation is
 * checked by the commit function's own rules first, so a tree the commit would refuse fails here.
 */
class ChangesetWriter {
  private ops: ChangeOp[] = [];
  private bytes = 0;
  readonly digests: string[] = [];
  count = 0;
  constructor(private readonly store: ObjectStore, private readonly fqrn: string, private readonly txnId: string,
    private readonly publisher: PublisherIdentity, private readonly scope: string) {}

  async add(op: ChangeOp): Promise<void> {
    assertValidOperation(op, this.scope, this.digests.length, this.ops.length);
    // Pretty-printed in the envelope: every level of nesting adds indentation, hence the factor.
    const size = 2 * Buffer.byteLength(JSON.stringify(op));
    if (size > MAX_PART_BYTES - PART_ENVELOPE_BYTES) {
      throw new RefusedError('operation-too-large', `'${op.path || '/'}' needs ${size} bytes of changeset; a part holds at most ${MAX_PART_BYTES}`, { path: op.path });
    }
    if (this.bytes + size > MAX_PART_BYTES - PART_ENVELOPE_BYTES) await this.flush();
    this.ops.push(op);
    this.bytes += size;
    this.count++;
    if (this.ops.length >= MAX_OPS_PER_PART) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.ops.length === 0) return;
    const body: ChangesetPart = { fqrn: this.fqrn, txnId: this.txnId, index: this.digests.length, ops: this.ops };
    this.ops = [];
    this.bytes = 0;
    const bytes = serializeSignedDocument(signDocument(CHANGESET_PART_TYPE, body, this.publisher.privateKeyPem, this.publisher.name));
    await this.store.put(txnKeys(this.txnId).part(body.index), bytes);
    this.digests.push(partDigest(bytes));
  }
}

/** Rounds of "the commit removed bad objects, upload them again" before the publish gives up. */
const REPAIR_ROUNDS = 3;

/**
 * Runs the commit chain; when it fails because objects the changeset names held other bytes (the commit
 * removed them and left a list under the transaction), uploads those files again and resumes the chain
 * from its checkpoint.
 */
async function commitRepairing(store: ObjectStore, txnId: string, run: () => Promise<unknown>,
  repair: (bad: PoisonedObject[]) => Promise<void>): Promise<unknown> {
  const prefix = txnKeys(txnId).prefix;
  for (let round = 0; ; round++) {
    try {
      return await run();
    } catch (err) {
      const bad = await readBadObjects(store, prefix).catch(() => null);
      if (!bad) throw err;
      if (round >= REPAIR_ROUNDS) throw poisonedObjectError(bad);
      await store.delete([badObjectsKey(prefix)]);
      await repair(bad);
    }
  }
}

/** Compresses the files of the bad objects again and uploads them: the keys are free now. */
async function uploadAgain(bad: PoisonedObject[], source: string, repoPath: string, pool: CompressPool,
  uploader: ObjectUploader, say: (message: string) => void): Promise<void> {
  const keysOf = new Map<string, Set<string>>();
  for (const b of bad) {
    say(b.actual === 'missing' ? `object ${b.key} is not in the store (collected since it was found present?); uploading it`
      : `object ${b.key} held other bytes (uploaded by ${b.uploader}); the commit removed it, uploading it again`);
    uploader.forget(b.key);
    for (const p of b.paths) {
      if (p !== repoPath && !p.startsWith(`${repoPath}/`)) throw new Error(`the commit named '${p}', outside this publish's path '${repoPath || '/'}'`);
      const keys = keysOf.get(p) ?? new Set<string>();
      keys.add(b.key);
      keysOf.set(p, keys);
    }
  }
  await Promise.all([...keysOf].map(async ([p, keys]) => {
    const file = join(source, ...p.slice(repoPath.length).split('/'));
    const st = await lstat(file, { bigint: true });
    const c = await pool.compress(file, Number(st.size), st.mtimeNs);
    uploader.recordObjects(c.objects);
    const made = new Set(c.hash ? [c.hash.objectKey('')] : c.chunks.map((ch) => ch.hash.objectKey('P')));
    for (const key of keys) {
      if (!made.has(key)) {
        throw new RefusedError('source-changed', `${file} changed since it was scanned (it no longer makes ${key}); publish again`);
      }
    }
  }));
}

export async function publishThroughChain(store: ObjectStore, source: string, options: ChainPublishOptions): Promise<ChainPublishSummary> {
  const started = Date.now();
  const requestsBefore = options.functions.requests?.();
  const path = normalizeRepoPath(options.path);
  const say = options.onProgress ?? (() => {});
  if (options.publisher.fqrn !== options.fqrn) {
    throw new Error(`publisher key '${options.publisher.name}' belongs to ${options.publisher.fqrn}, not ${options.fqrn}`);
  }
  const uploadVia = options.uploadVia ?? 'direct';
  if (uploadVia !== 'direct' && uploadVia !== 'grants') throw new Error(`uploadVia must be 'direct' or 'grants', not '${String(uploadVia)}'`);
  const head = await readHead(store);
  if (!head) throw new RepositoryMissingError(store);
  if (head.manifest.fqrn !== options.fqrn) throw new Error(`the repository in ${store.description} is '${head.manifest.fqrn}', not '${options.fqrn}'`);

  const leaseSeconds = options.leaseSeconds ?? 600;
  const request = signLeaseRequest(options.publisher, { fqrn: options.fqrn, path: scopePath(path || '/'), ttlSeconds: leaseSeconds });
  // The same signed request may be delivered again: the lease function answers it with the same lease.
  const answer = (await retrying(() => options.functions.invoke('lease', { action: 'acquire', request }))) as LeaseAnswer;
  if (answer.status === 'busy' || !answer.lease) throw new LeaseBusyError(answer.message ?? 'lease refused');
  const lease = answer.lease;
  say(`lease ${lease.leaseId} on ${scopePath(path || '/')} until ${lease.expiresAt}`);
  // Long scans keep the lease alive; a writer that dies stops renewing and its lease expires.
  const renew = setInterval(() => {
    options.functions.invoke('lease', { action: 'renew', leaseId: lease.leaseId, token: lease.token }).catch(() => {});
  }, Math.max(1000, (leaseSeconds * 1000) / 3));
  renew.unref();

  const txnId = `${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${randomBytes(6).toString('hex')}`;
  const scratch = ScratchSpace.create();
  const leasePath = scopePath(path || '/');
  const uploader: ObjectUploader = uploadVia === 'grants'
    ? new GrantUploader(store, (keys) => retrying(() => options.functions.invoke('upload-grant', { leaseId: lease.leaseId, token: lease.token, path: leasePath, keys })))
    : new Uploader(store, 32, { trustPresent: true });
  const pool = compressPoolFor(store, uploader, head.algorithm, { workers: options.workers, chunking: options.chunking, viaUploader: uploadVia === 'grants', trustPresent: true });
  const empty = emptyObject(head.algorithm);
  const changeset = new ChangesetWriter(store, options.fqrn, txnId, options.publisher, path);
  let tree: CatalogTree | undefined;
  let committed = false;
  let filesCompressed = 0;
  let bytesRead = 0;
  const reporter = new ProgressReporter<PublishProgress>(
    { phase: 'scan', scanned: 0, filesDone: 0, filesTotal: 0, bytesRead: 0, bytesDone: 0, bytesTotal: 0 }, options.onCounts);
  const progress = reporter.state;
  try {
    tree = await CatalogTree.open(catalogLoader(options.cacheDir ? new CachedSource(store, options.cacheDir) : store),
      head.manifest.rootCatalog, head.algorithm, { scratch });
    const storeFile = async (op: FileOperation) => {
      const c = await storeFileContent(pool, uploader, empty, op.source, op.entry, op.mtimeNs);
      if (c.bytesRead > 0) filesCompressed++;
      bytesRead += c.bytesRead;
      const upsert: ChangeOp = { op: 'upsert', path: op.path, entry: entryToWire(c.entry) };
      if (c.chunks.length > 0) upsert.chunks = chunksToWire(c.chunks);
      if (op.links.length > 0) upsert.links = op.links;
      await changeset.add(upsert);
      progress.bytesRead = bytesRead;
    };
    const xattrs = await sourceXattrs(source, options.onWarning ?? (() => {}), options.xattrs);
    reporter.now();
    // Nothing edits this tree while the walk reads it, so it serves as the head view directly.
    const stats = await walkAndStore(tree, source, path, {
      apply: async (op) => {
        if (op.kind === 'upsert') {
          const upsert: ChangeOp = { op: 'upsert', path: op.path, entry: entryToWire(op.entry) };
          // A metadata change of a chunked file: the commit applies full rows, chunk list included.
          if (op.entry.extraFlags & FLAG.chunked) upsert.chunks = chunksToWire(await tree!.chunks(op.path, op.entry.chunkAlgorithm ?? head.algorithm));
          await changeset.add(upsert);
        }
        else await changeset.add({ op: op.kind, path: op.path });
      },
      storeFile,
    }, reporter, { checksum: options.checksum, onWarning: options.onWarning, xattrs });

    // Nothing changed: no revision, unless one is asked for to carry a tag (an empty changeset then).
    if (changeset.count === 0 && !options.tag) {
      await retrying(() => options.functions.invoke('lease', { action: 'release', leaseId: lease.leaseId, token: lease.token }));
      committed = true;
      return summary(false, head.manifest.revision, stats, 0, 0);
    }
    await changeset.flush();
    const header: ChangesetHeader = {
      fqrn: options.fqrn, txnId, publisher: options.publisher.name, leaseId: lease.leaseId, path,
      parts: changeset.digests, createdAt: new Date().toISOString(),
    };
    if (options.tag) header.tag = options.tag.description === undefined ? { name: options.tag.name } : options.tag;
    await store.put(txnKeys(txnId).header, serializeSignedDocument(signDocument(CHANGESET_TYPE, header, options.publisher.privateKeyPem, options.publisher.name)));
    say(`changeset ${txnId}: ${changeset.count} operations in ${changeset.digests.length} parts; committing`);
    progress.phase = 'commit';
    reporter.now();
    const commitEvent: Record<string, unknown> = { txnId, leaseId: lease.leaseId, token: lease.token };
    if (options.autocatalogs !== undefined) commitEvent.autocatalogs = options.autocatalogs;
    const result = (await commitRepairing(store, txnId, () => options.functions.runChain('commit', commitEvent),
      (bad) => uploadAgain(bad, source, path, pool, uploader, say))) as
      { status: string; revision?: number; slices?: number; rebases?: number; grafts?: number };
    if (result.status !== 'committed' || result.revision === undefined) throw new Error(`commit chain ended '${result.status}' without a revision`);
    committed = true;
    // The chain releases the lease; this makes sure of it (releasing twice is fine).
    await retrying(() => options.functions.invoke('lease', { action: 'release', leaseId: lease.leaseId, token: lease.token })).catch(() => {});
    const done = summary(true, result.revision, stats, result.slices ?? 0, result.rebases ?? 0, result.grafts ?? 0);
    if (changeset.count === 0) done.tagOnly = true;
    return done;

    function summary(changed: boolean, revision: number, s: DiffStats, slices: number, rebases: number, grafts = 0): ChainPublishSummary {
      const out: ChainPublishSummary = {
        changed, revision, stats: s, operations: changeset.count, parts: changeset.digests.length, filesCompressed, bytesRead,
        objectsUploaded: uploader.uploaded, objectsAlreadyPresent: uploader.alreadyPresent, storedOutside: { ...uploader.storedOutside },
        urlPuts: uploader instanceof GrantUploader ? uploader.urlPuts : 0, slices, rebases, grafts,
        seconds: (Date.now() - started) / 1000,
      };
      const requestsNow = options.functions.requests?.();
      if (requestsNow && requestsBefore) out.functionRequests = meterDifference(requestsNow, requestsBefore);
      return out;
    }
  } finally {
    clearInterval(renew);
    await pool.close();
    tree?.close();
    scratch.dispose();
    if (!committed) {
      await retrying(() => options.functions.invoke('abort', { txnId, leaseId: lease.leaseId, token: lease.token })).catch(() => {});
    }
  }
}

/** What a meter counted between two snapshots of it. */
function meterDifference(now: MeterSnapshot, before: MeterSnapshot): MeterSnapshot {
  const out = meterSum([now]);
  for (const k of Object.keys(out) as (keyof MeterSnapshot)[]) out[k] -= before[k];
  return out;
}
