// The seam between the repository logic and where bytes live (design §2).
// Backends: filesystem (embedded default) and S3. Wrappers (metering, faults, retries) implement the
// same interface and stack around a backend.
import type { Readable } from 'node:stream';
import { BusyError, RefusedError, ScvmfsError } from '../errors.js';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive (HTTP Range semantics); omitted means to the end. */
  end?: number;
}

export interface PutOptions {
  /** '*' = create only if the key does not exist (S3 If-None-Match: *). */
  ifNoneMatch?: '*';
  /** Replace only if the current ETag equals this (S3 If-Match). Unquoted. */
  ifMatch?: string;
  cacheControl?: string;
  contentType?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** Opaque version tag, unquoted; changes whenever the content changes. */
  etag: string;
  lastModified: Date;
}

export interface GetResult extends ObjectInfo {
  body: Buffer;
  /** Total size of the object (differs from body.length for range reads). */
  totalSize: number;
  cacheControl?: string;
  contentType?: string;
}

/** A byte range, or the last `suffix` bytes (HTTP `bytes=-N`). */
export type ReadRange = ByteRange | { suffix: number };

export interface StreamResult extends ObjectInfo {
  /** `size` is the whole object's; the body holds bytes `start` .. `start + length - 1` of it. */
  start: number;
  length: number;
  /** The caller must consume or destroy it: it holds a file handle or a connection until then. */
  body: Readable;
  cacheControl?: string;
  contentType?: string;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Pass as `after` to get the next page; absent on the last page. */
  next?: string;
}

export interface ObjectStore {
  /** A short human-readable name of where the store lives, for messages. */
  readonly description: string;
  /** Returns null when the key does not exist. Throws RangeNotSatisfiableError on a bad range. */
  get(key: string, range?: ByteRange): Promise<GetResult | null>;
  /**
   * The object as a stream, so its size never decides the memory a reader needs. Null when the key
   * does not exist; throws RangeNotSatisfiableError on a bad range (as get does).
   */
  getStream(key: string, range?: ReadRange): Promise<StreamResult | null>;
  /** Returns null when the key does not exist. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Throws PreconditionFailedError when ifNoneMatch/ifMatch do not hold; then nothing was written. */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }>;
  /** Keys in lexicographic order, starting after `after`. */
  list(prefix: string, options?: { after?: string; limit?: number }): Promise<ListPage>;
  /** Deleting a missing key is not an error. */
  delete(keys: string[]): Promise<void>;
}

/** Every object under `prefix` in key order, listed 1,000 at a time. */
export async function* listAll(store: Pick<ObjectStore, 'list'>, prefix: string): AsyncGenerator<ObjectInfo> {
  let after: string | undefined;
  for (;;) {
    const page = await store.list(prefix, { after, limit: 1000 });
    yield* page.objects;
    if (!page.next || page.objects.length === 0) return;
    after = page.objects.at(-1)!.key;
  }
}

/** A store that can hand out time-limited upload URLs (S3); others are written directly. */
export interface PresigningStore {
  /** A URL for one create-only PUT of `key`, valid `expiresInSeconds`, usable without credentials. */
  presignPut(key: string, expiresInSeconds: number): Promise<string>;
  /** The headers a PUT to that URL must send (they are signed). */
  presignedPutHeaders(key: string): Record<string, string>;
}

/**
 * The presigning backend under wrappers (metering, retries, faults), or undefined. Signing a URL sends
 * no request, so nothing is lost by going around the wrappers.
 */
export function presigningStore(store: ObjectStore): PresigningStore | undefined {
  let s: object = store;
  for (;;) {
    if (typeof (s as Partial<PresigningStore>).presignPut === 'function') return s as PresigningStore;
    if ('observed' in s) s = (s as { observed: object }).observed;
    else if ('inner' in s) s = (s as { inner: object }).inner;
    else return undefined;
  }
}

/** The read side alone: what a reader over HTTP or a directory can offer. */
export interface ObjectReader {
  readonly description: string;
  get(key: string): Promise<{ body: Buffer } | null>;
}

/** A conditional write lost: the object exists (ifNoneMatch) or changed (ifMatch). */
export class PreconditionFailedError extends BusyError {
  constructor(readonly key: string, detail: string) {
    super('precondition-failed', `precondition failed on '${key}': ${detail}`);
    this.name = 'PreconditionFailedError';
  }
}

export class RangeNotSatisfiableError extends RefusedError {
  constructor(readonly key: string, readonly size: number) {
    super('range-not-satisfiable', `range not satisfiable for '${key}' of ${size} bytes`);
    this.name = 'RangeNotSatisfiableError';
  }
}

/** Any other store failure, with the key and operation for the message. */
export class StoreError extends ScvmfsError {
  constructor(readonly operation: string, readonly key: string, override readonly cause: unknown) {
    super('store', 'store-failed', `store ${operation} '${key}' failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'StoreError';
  }
}

/**
 * A failure worth retrying: throttling (429, 503 SlowDown), a server error (5xx), a network error or a
 * timeout. Backends throw it so that retrying needs no knowledge of any SDK. For a conditional put it
 * also means "outcome unknown": the write may have happened (status 0 = no HTTP answer).
 */
export class TransientStoreError extends StoreError {
  constructor(operation: string, key: string, readonly status: number, cause: unknown) {
    super(operation, key, cause);
    this.name = 'TransientStoreError';
  }
}

/** Keys of the control part (leases, locks, transactions): never served, private on S3. */
export const CONTROL_PREFIX = '.scvmfs/';

/** True for keys the stock client or stratum-1 tools may read: the public repository part. */
export function isPublicKey(key: string): boolean {
  if (/^data\/[0-9a-f]{2}\/[0-9a-f]{38}(?:-rmd160|-shake128)?[CHXPML]?$/.test(key)) return true;
  return /^\.cvmfs[a-z0-9_.]*$/.test(key) && !key.startsWith(CONTROL_PREFIX);
}
