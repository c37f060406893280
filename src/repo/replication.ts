// Replication: a stratum 1 made from any CernVM-FS repository (ours or the stock server's) into any store,
// the way `cvmfs_server snapshot` makes one. The pieces here are what each step of the replicate chain
// (functions/replicate.ts) does; the chain adds the checkpoints.
//
// The source's manifest is fetched once, checked (whitelist against the master key, certificate listed,
// manifest signature), and only that revision's closure is copied, so a source publishing meanwhile
// yields its old revision, whole. Objects are copied before the catalogs that name them, nested catalogs
// before their parents, root catalogs after that, and the whitelist and manifest last: whatever is in the
// replica under a catalog's name has everything below it, which is why a later walk stops descending at a
// catalog the replica already holds.
import { RefusedError } from '../errors.js';
import { ContentHash, type ObjectSuffix } from '../format/hash.js';
import { parseManifest, verifyManifestSignature, ROOT_PATH_HASH, type SignedManifest } from '../format/manifest.js';
import {
  certificateFingerprint, isWhitelistExpired, parseWhitelist, verifyWhitelistSignature,
} from '../format/whitelist.js';
import { decompressObject } from '../format/zlib-object.js';
import { CatalogDb } from '../format/catalog-db.js';
import { readHistory } from '../format/history.js';
import { addToReflog, type ReflogEntry } from '../format/reflog.js';
import { PreconditionFailedError, type ObjectReader, type ObjectStore } from '../store/object-store.js';
import type { CatalogLoader, ObjectRef, WalkRoot, WalkVisitor } from './catalog-walk.js';
import { MANIFEST_KEY, REFLOG_KEY, WHITELIST_KEY } from './repository.js';

export const WHITELIST_PKCS7_KEY = '.cvmfswhitelist.pkcs7';
/** Stratum 1 markers (spec §1.1), as `cvmfs_server snapshot` writes them: `date --utc` text. */
export const IS_SNAPSHOTTING_KEY = '.cvmfs_is_snapshotting';
export const LAST_SNAPSHOT_KEY = '.cvmfs_last_snapshot';
export const STATUS_KEY = '.cvmfs_status.json';

/** What the source offered at the start of a run: the one revision this run copies. */
export interface SourceEnsemble {
  manifestBytes: Buffer;
  signed: SignedManifest;
  whitelistBytes: Buffer;
  pkcs7Bytes?: Buffer;
}

export interface SourceTrust {
  fqrn: string;
  /** Master public keys (PEM); one of them must have signed the whitelist. */
  publicKeys: string[];
  /** Archived repositories only (test vectors). */
  allowExpiredWhitelist?: boolean;
  now?: Date;
}

function refuse(code: string, message: string, data?: Record<string, unknown>): never {
  throw new RefusedError(code, message, data);
}

/** The source's manifest and whitelist, checked as a client checks them; refused with 'untrusted-source'. */
export async function fetchSourceEnsemble(source: ObjectReader, trust: SourceTrust): Promise<SourceEnsemble> {
  const untrusted = (why: string, reason: string): never => refuse('untrusted-source', `source ${source.description}: ${why}; nothing was replicated`, { reason });
  const got = await source.get(MANIFEST_KEY);
  if (!got) untrusted(`no ${MANIFEST_KEY}: not a repository`, 'manifest');
  let signed: SignedManifest;
  try {
    signed = parseManifest(got!.body);
  } catch (err) {
    return untrusted(`${MANIFEST_KEY} is malformed (${(err as Error).message})`, 'manifest');
  }
  const m = signed.manifest;
  if (m.fqrn !== trust.fqrn) untrusted(`it is repository '${m.fqrn}', not '${trust.fqrn}'`, 'fqrn');
  if (m.rootPathHash !== ROOT_PATH_HASH) untrusted(`${MANIFEST_KEY} has a wrong root path hash`, 'manifest');
  const wl = await source.get(WHITELIST_KEY);
  if (!wl) untrusted(`no ${WHITELIST_KEY}`, 'whitelist');
  let whitelist;
  try {
    whitelist = parseWhitelist(wl!.body);
  } catch (err) {
    return untrusted(`${WHITELIST_KEY} is malformed (${(err as Error).message})`, 'whitelist');
  }
  if (!verifyWhitelistSignature(whitelist, trust.publicKeys)) untrusted(`${WHITELIST_KEY} is not signed by the given master key`, 'whitelist');
  if (whitelist.whitelist.fqrn !== trust.fqrn) untrusted(`${WHITELIST_KEY} is for '${whitelist.whitelist.fqrn}'`, 'whitelist');
  if (isWhitelistExpired(whitelist.whitelist, trust.now ?? new Date()) && !trust.allowExpiredWhitelist) {
    untrusted(`${WHITELIST_KEY} expired on ${whitelist.whitelist.expiresAt.toISOString()} (clients refuse it; the owner must re-sign it)`, 'whitelist');
  }
  const certificate = await source.get(m.certificate.objectKey('X'));
  if (!certificate) untrusted(`the certificate ${m.certificate.objectKey('X')} is missing`, 'certificate');
  if (!ContentHash.of(m.certificate.algorithm, certificate!.body).equals(m.certificate)) untrusted(`the certificate object does not match its name`, 'certificate');
  const pem = decompressObject(certificate!.body, 'certificate').toString('utf8');
  const fingerprint = certificateFingerprint(pem);
  if (!whitelist.whitelist.fingerprints.some((f) => f.toUpperCase().startsWith(fingerprint))) untrusted(`its certificate ${fingerprint} is not in the whitelist`, 'certificate');
  if (!verifyManifestSignature(signed, pem)) untrusted(`the manifest signature does not verify against its certificate (forged or tampered manifest)`, 'signature');
  const pkcs7 = await source.get(WHITELIST_PKCS7_KEY).catch(() => null);
  return { manifestBytes: got!.body, signed, whitelistBytes: wl!.body, pkcs7Bytes: pkcs7?.body };
}

/** The replica's current manifest (unchecked: it is ours), or null for a new replica. */
export async function replicaHead(replica: ObjectStore): Promise<{ bytes: Buffer; etag: string; revision: number; fqrn: string } | null> {
  const got = await replica.get(MANIFEST_KEY);
  if (!got) return null;
  const m = parseManifest(got.body).manifest;
  return { bytes: got.body, etag: got.etag, revision: m.revision, fqrn: m.fqrn };
}

/** Refuses a source behind the replica (its clients would see the revision go back) or another repository. */
export function assertNotBehind(ensemble: SourceEnsemble, head: { revision: number; fqrn: string } | null, source: string): void {
  if (!head) return;
  const m = ensemble.signed.manifest;
  if (head.fqrn !== m.fqrn) refuse('replica-of-another-repository', `the replica holds '${head.fqrn}', the source is '${m.fqrn}'; use another store`);
  if (m.revision < head.revision) {
    refuse('source-behind-replica', `source ${source} is at revision ${m.revision}, the replica already serves revision ${head.revision}: ` +
      'replicating it would take the replica back; replicate from an up-to-date source', { source: m.revision, replica: head.revision });
  }
}

/** Where the walk starts: the head's root catalog and every tagged revision's. */
export async function replicationRoots(source: ObjectReader, ensemble: SourceEnsemble): Promise<WalkRoot[]> {
  const m = ensemble.signed.manifest;
  const roots: WalkRoot[] = [{ hash: m.rootCatalog, mountpoint: '', size: m.rootCatalogSize }];
  if (m.history) {
    const stored = await fetchVerified(source, m.history, 'H');
    for (const t of readHistory(decompressObject(stored, 'history database')).tags) roots.push({ hash: t.hash, mountpoint: '', size: t.size });
  }
  return roots;
}

/** The stored bytes of an object from the source, checked against its name. */
export async function fetchVerified(source: ObjectReader, hash: ContentHash, suffix: ObjectSuffix): Promise<Buffer> {
  const key = hash.objectKey(suffix);
  const got = await source.get(key);
  if (!got) refuse('source-object-missing', `source object ${key} is missing; nothing newer than the replica's revision was published to it`, { object: key });
  if (!ContentHash.of(hash.algorithm, got!.body).equals(hash)) {
    refuse('corrupt-source-object', `source object ${key} does not match its hash (corrupted at the source or on the way); the replica keeps its revision`, { object: key });
  }
  return got!.body;
}

export interface CopyCounts {
  /** Objects written to the replica. */
  copied: number;
  /** Objects the replica already held. */
  present: number;
  /** Bytes written. */
  bytes: number;
}

/** Copies one object unless the replica has it; true when it wrote it. */
export async function copyObject(source: ObjectReader, replica: ObjectStore, hash: ContentHash, suffix: ObjectSuffix, counts: CopyCounts): Promise<boolean> {
  const key = hash.objectKey(suffix);
  if (await replica.head(key)) {
    counts.present++;
    return false;
  }
  const body = await fetchVerified(source, hash, suffix);
  try {
    await replica.put(key, body, { ifNoneMatch: '*' });
  } catch (err) {
    // Another delivery of this step wrote it first: the same bytes, since the name is their hash.
    if (!(err instanceof PreconditionFailedError)) throw err;
    counts.present++;
    return false;
  }
  counts.copied++;
  counts.bytes += body.length;
  return true;
}

/** Runs at most `limit` copies at once; `drain` waits for all and rethrows the first failure. */
export class CopyPool {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;

  constructor(private readonly limit: number) {}

  async add(work: () => Promise<unknown>): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.running.size >= this.limit) await Promise.race(this.running);
    const p: Promise<void> = work().then(() => undefined, (err) => { this.failure ??= err; })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async drain(): Promise<void> {
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }
}

/**
 * The walk's loader: a catalog the replica holds is skipped with all below it; any other is read from
 * the source, checked against its hash, and opened.
 */
export function replicationLoader(source: ObjectReader, replica: ObjectStore, scratch: (hash: ContentHash) => string): CatalogLoader {
  return async (hash) => {
    if (await replica.head(hash.objectKey('C'))) return null;
    const content = decompressObject(await fetchVerified(source, hash, 'C'), `catalog ${hash.objectKey('C')}`);
    try {
      return { db: CatalogDb.fromBytes(content, scratch(hash)), size: content.length };
    } catch (err) {
      return refuse('corrupt-source-object', `source catalog ${hash.objectKey('C')} is not a catalog: ${(err as Error).message}`, { object: hash.objectKey('C') });
    }
  };
}

/**
 * The walk's visitor: copies every data object and chunk (many in flight, all landed before the walk
 * marks their catalog visited); with `allRevisions`, queues each root catalog's previous revision.
 */
export function replicationVisitor(source: ObjectReader, replica: ObjectStore, options: {
  pool: CopyPool; counts: CopyCounts; allRevisions: boolean; addRoots: (roots: WalkRoot[]) => void;
}): WalkVisitor {
  return {
    catalog(visit) {
      if (!options.allRevisions || visit.mountpoint !== '') return;
      const previous = visit.db.property('previous_revision');
      if (previous) options.addRoots([{ hash: ContentHash.fromHex(previous), mountpoint: '' }]);
    },
    async object(ref: ObjectRef) {
      await options.pool.add(() => copyObject(source, replica, ref.hash, ref.suffix, options.counts));
    },
    async settle() {
      await options.pool.drain();
    },
  };
}

/** `date --utc` as the stock snapshot writes it into its markers, e.g. "Tue Dec  1 13:02:03 UTC 2026". */
export function utcDateLine(d: Date): string {
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()]!;
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()]!;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${day} ${month} ${String(d.getUTCDate()).padStart(2, ' ')} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC ${d.getUTCFullYear()}\n`;
}

/** The objects the manifest names besides catalogs: history, certificate, meta-info. */
export function manifestObjects(ensemble: SourceEnsemble): { hash: ContentHash; suffix: ObjectSuffix; type: ReflogEntry['type'] }[] {
  const m = ensemble.signed.manifest;
  return [
    ...(m.history ? [{ hash: m.history, suffix: 'H' as const, type: 'history' as const }] : []),
    { hash: m.certificate, suffix: 'X' as const, type: 'certificate' as const },
    ...(m.metainfo ? [{ hash: m.metainfo, suffix: 'M' as const, type: 'metainfo' as const }] : []),
  ];
}

/** Adds the run's root catalogs and manifest objects to the replica's reflog, as stock pull does. */
export async function recordInReflog(replica: ObjectStore, fqrn: string, refs: ReflogEntry[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const got = await replica.get(REFLOG_KEY);
    const bytes = addToReflog(got?.body, fqrn, refs);
    try {
      await replica.put(REFLOG_KEY, bytes, got ? { ifMatch: got.etag } : { ifNoneMatch: '*' });
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= 5) throw err;
    }
  }
}

export type ManifestOutcome = 'written' | 'unchanged' | 'replica-newer';

/**
 * Writes the whitelist, then the manifest, unless the replica meanwhile serves a newer revision (another
 * replication finished first): its clients must never see the revision go back.
 */
export async function writeManifestLast(replica: ObjectStore, ensemble: SourceEnsemble): Promise<ManifestOutcome> {
  const revision = ensemble.signed.manifest.revision;
  for (let attempt = 0; ; attempt++) {
    const head = await replicaHead(replica);
    if (head && head.revision > revision) return 'replica-newer';
    if (ensemble.pkcs7Bytes) await replica.put(WHITELIST_PKCS7_KEY, ensemble.pkcs7Bytes);
    await replica.put(WHITELIST_KEY, ensemble.whitelistBytes);
    if (head && head.bytes.equals(ensemble.manifestBytes)) return 'unchanged';
    try {
      await replica.put(MANIFEST_KEY, ensemble.manifestBytes, head ? { ifMatch: head.etag } : { ifNoneMatch: '*' });
      return 'written';
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= 5) throw err;
    }
  }
}

/**
 * A replica already serving the source's manifest takes the source's whitelist when it differs: owners
 * re-sign whitelists without publishing, and a replica must not keep serving one that expires. True
 * when it wrote one.
 */
export async function refreshWhitelist(replica: ObjectStore, ensemble: SourceEnsemble): Promise<boolean> {
  const wl = await replica.get(WHITELIST_KEY);
  if (wl?.body.equals(ensemble.whitelistBytes)) return false;
  if (ensemble.pkcs7Bytes) await replica.put(WHITELIST_PKCS7_KEY, ensemble.pkcs7Bytes);
  await replica.put(WHITELIST_KEY, ensemble.whitelistBytes);
  return true;
}

/** The stock stratum 1's bookkeeping after a snapshot: `.cvmfs_last_snapshot`, `.cvmfs_status.json`. */
export async function writeSnapshotMarkers(replica: ObjectStore, now: Date): Promise<void> {
  const line = utcDateLine(now);
  await replica.put(LAST_SNAPSHOT_KEY, Buffer.from(line), { contentType: 'text/plain' });
  const old = await replica.get(STATUS_KEY);
  let status: Record<string, unknown> = {};
  try {
    if (old) status = JSON.parse(old.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    status = {};
  }
  status.last_snapshot = line.trimEnd();
  await replica.put(STATUS_KEY, Buffer.from(`${JSON.stringify(status, null, 2)}\n`), { contentType: 'application/json' });
  await replica.delete([IS_SNAPSHOTTING_KEY]);
}
