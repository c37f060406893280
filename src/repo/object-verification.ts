// Checking that a stored object's bytes match its name, without holding it whole: a CernVM-FS object is
// named by the hash of its stored (compressed) bytes (spec §2), so anyone who may create a missing key
// could otherwise plant other bytes under a name a later publish will reference. Also the records that
// say who was granted which key, so that a bad object can be reported with its uploader.
import { createReadStream } from 'node:fs';
import { RefusedError } from '../errors.js';
import path from 'node:path';
import { CONTROL_PREFIX, PreconditionFailedError, type ObjectStore } from '../store/object-store.js';
import { directFsRoot } from '../store/fs-store.js';
import { ContentHash, createHasher } from '../format/hash.js';

export type StoredObjectCheck =
  | { status: 'ok'; size: number }
  | { status: 'missing' }
  /** `actual`: what the stored bytes hash to. */
  | { status: 'corrupt'; size: number; actual: string };

/** What checking costs: requests sent and bytes read. */
export interface VerificationStats {
  objects: number;
  requests: number;
  bytesRead: number;
}

export function newVerificationStats(): VerificationStats {
  return { objects: 0, requests: 0, bytesRead: 0 };
}

/**
 * Hashes the object at `key` with `hash`'s algorithm and compares, never holding it whole: a directory
 * store's file is read directly, other stores' objects are streamed by one GET. An object whose ETag
 * moves while it is read (it was overwritten) is read again.
 */
export async function checkStoredObject(store: ObjectStore, key: string, hash: ContentHash,
  stats: VerificationStats = newVerificationStats()): Promise<StoredObjectCheck> {
  stats.objects++;
  const root = directFsRoot(store);
  const digest = root !== undefined ? await hashFile(root, key, hash, stats) : await hashStream(store, key, hash, stats);
  if (digest === null) return { status: 'missing' };
  const actual = new ContentHash(hash.algorithm, digest.digest);
  return actual.equals(hash) ? { status: 'ok', size: digest.size } : { status: 'corrupt', size: digest.size, actual: actual.toHex() };
}

async function hashFile(root: string, key: string, hash: ContentHash, stats: VerificationStats): Promise<{ digest: Buffer; size: number } | null> {
  const hasher = createHasher(hash.algorithm);
  let size = 0;
  stats.requests++;
  try {
    for await (const piece of createReadStream(path.join(root, ...key.split('/')), { highWaterMark: 1 << 20 })) {
      hasher.update(piece as Buffer);
      size += (piece as Buffer).length;
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return null;
    throw err;
  }
  stats.bytesRead += size;
  return { digest: hasher.digest(), size };
}

async function hashStream(store: ObjectStore, key: string, hash: ContentHash, stats: VerificationStats): Promise<{ digest: Buffer; size: number } | null> {
  let etag: string | undefined;
  for (let attempt = 1; ; attempt++) {
    stats.requests++;
    const got = await store.getStream(key);
    if (!got) return null;
    const hasher = createHasher(hash.algorithm);
    let size = 0;
    for await (const piece of got.body) {
      hasher.update(piece as Buffer);
      size += (piece as Buffer).length;
    }
    stats.bytesRead += size;
    if (size === got.size) return { digest: hasher.digest(), size };
    // Shorter or longer than announced: it changed under us.
    if (attempt >= 3 || got.etag === etag) throw new Error(`object ${key} kept changing while it was read; is something rewriting it?`);
    etag = got.etag;
  }
}

// ---- Who was granted which key ----

/** One upload grant, as the upload-grant function recorded it. */
export interface GrantRecord {
  publisher: string;
  leaseId: string;
  path: string;
  grantedAt: string;
  /** 'url': a pre-signed create-only PUT; 'direct': the writer was told to write the key itself. */
  via: 'url' | 'direct';
}

export const GRANTS_PREFIX = `${CONTROL_PREFIX}grants/`;

export function grantRecordKey(objectKey: string): string {
  return `${GRANTS_PREFIX}${objectKey}`;
}

/** Appends `grant` to the key's record (several writers may be granted the same missing key). */
export async function recordGrant(store: ObjectStore, objectKey: string, grant: GrantRecord): Promise<void> {
  const key = grantRecordKey(objectKey);
  // Usually the first grant of the key: one create, no read.
  try {
    await store.put(key, Buffer.from(JSON.stringify([grant])), { ifNoneMatch: '*' });
    return;
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
  for (let attempt = 0; ; attempt++) {
    const current = await store.get(key);
    const list = current ? (JSON.parse(current.body.toString('utf8')) as GrantRecord[]) : [];
    list.push(grant);
    try {
      await store.put(key, Buffer.from(JSON.stringify(list.slice(-16))), current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= 10) throw err;
    }
  }
}

export async function grantsOf(store: ObjectStore, objectKey: string): Promise<GrantRecord[]> {
  const got = await store.get(grantRecordKey(objectKey));
  if (!got) return [];
  try {
    const list = JSON.parse(got.body.toString('utf8')) as GrantRecord[];
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/** Drops the grant records of keys whose objects are now known good (one batch request on S3). */
export async function forgetGrants(store: ObjectStore, objectKeys: string[]): Promise<void> {
  if (objectKeys.length > 0) await store.delete(objectKeys.map(grantRecordKey));
}

/** Who may have uploaded a key, for messages. */
export function describeUploader(grants: GrantRecord[]): string {
  if (grants.length === 0) return 'an unknown uploader (no upload grant was recorded for the key: it was written with direct store access)';
  const who = grants.map((g) => `publisher '${g.publisher}' (lease ${g.leaseId} on ${g.path}, ${g.via === 'url' ? 'pre-signed URL' : 'direct write'} granted ${g.grantedAt})`);
  return `${who.length === 1 ? '' : 'one of '}${who.join(', ')}`;
}

// ---- Reports ----

export interface BadObjectReport {
  key: string;
  /** What the stored bytes hashed to. */
  actual: string;
  /** Stored bytes, when known. */
  size?: number;
  /** Repository path(s) that wanted the object. */
  paths: string[];
  uploader: string;
  grants: GrantRecord[];
  foundBy: 'commit' | 'owner-publish';
  /** The publisher or transaction whose publish found it. */
  victim: string;
  action: 'removed' | 'replaced';
  at: string;
}

export const REPORTS_PREFIX = `${CONTROL_PREFIX}bad-objects/`;

/** Keeps a record of a bad object in the control part for the repository owner (`.scvmfs/bad-objects/`). */
export async function recordBadObject(store: ObjectStore, report: BadObjectReport): Promise<string> {
  const name = `${REPORTS_PREFIX}${report.at.replace(/[-:.]/g, '')}-${report.key.slice(5).replace('/', '')}.json`;
  await store.put(name, Buffer.from(JSON.stringify(report, null, 2)));
  return name;
}

/** The bad objects a commit of `txnId` found, for its writer to upload again (`<txn>/bad-objects.json`). */
export function badObjectsKey(txnPrefix: string): string {
  return `${txnPrefix}bad-objects.json`;
}

/** One bad object, as the writer gets it back (`<txn>/bad-objects.json`) and the refusal names it. */
export interface PoisonedObject {
  key: string;
  /** Repository paths whose content it is. */
  paths: string[];
  uploader: string;
  /** What its stored bytes hash to. */
  actual: string;
  /** The owner's record in `.scvmfs/bad-objects/`. */
  report: string;
}

export function poisonedObjectError(found: PoisonedObject[]): RefusedError {
  const list = found.map((f) => `${f.key} (for '${f.paths.join("', '")}'; its bytes hash to ${f.actual}), uploaded by ${f.uploader}`);
  return new RefusedError('poisoned-object',
    `the changeset references object(s) whose stored bytes do not match their name: ${list.join('; ')}. ` +
    'The commit removed them and recorded them in .scvmfs/bad-objects/; upload the files again and commit ' +
    '(scvmfs publish does this by itself)', { objects: found });
}

/** The bad objects the commit of a transaction found, or null (the writer reads this after a failed chain). */
export async function readBadObjects(store: ObjectStore, txnPrefix: string): Promise<PoisonedObject[] | null> {
  const got = await store.get(badObjectsKey(txnPrefix));
  return got ? (JSON.parse(got.body.toString('utf8')) as PoisonedObject[]) : null;
}
