// Retries transient store failures with jittered exponential backoff, and settles the unknown outcome of a
// conditional put. A 5xx or timeout on a conditional put does not say whether the write happened (Ceph
// answers 500 under contention after the write may have landed), so we read the key back: if it holds
// exactly our bytes the write was ours; otherwise it either never happened (retry) or someone else won.
import { createHash } from 'node:crypto';
import {
  PreconditionFailedError,
  TransientStoreError,
  type ByteRange,
  type GetResult,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type ReadRange,
  type StreamResult,
} from './object-store.js';

export interface RetryOptions {
  /** Total attempts per operation, the first included (default 6). */
  attempts?: number;
  /** Delay before the first retry; doubles each time (default 50 ms). */
  baseDelayMs?: number;
  /** Upper bound of one delay (default 5 s). */
  maxDelayMs?: number;
  /** Called before each retry (logging, tests). */
  onRetry?: (info: { operation: string; key: string; attempt: number; delayMs: number; error: TransientStoreError }) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function md5Hex(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

export class RetryingStore implements ObjectStore {
  readonly description: string;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(readonly inner: ObjectStore, private readonly options: RetryOptions = {}) {
    this.description = inner.description;
    this.attempts = options.attempts ?? 6;
    if (!Number.isInteger(this.attempts) || this.attempts < 1) throw new Error(`retry attempts must be a positive integer, got ${this.attempts}`);
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
  }

  /** "Full jitter": a uniform delay up to the exponential bound spreads out clients that failed together. */
  private delay(attempt: number): number {
    return Math.random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
  }

  private async backoff(operation: string, key: string, attempt: number, error: TransientStoreError): Promise<void> {
    const delayMs = this.delay(attempt);
    this.options.onRetry?.({ operation, key, attempt, delayMs, error });
    await sleep(delayMs);
  }

  /** Runs `fn`, retrying it on TransientStoreError. */
  async retryOperation<T>(operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof TransientStoreError) || attempt >= this.attempts) throw err;
        await this.backoff(operation, key, attempt, err);
      }
    }
  }

  get(key: string, range?: ByteRange): Promise<GetResult | null> {
    return this.retryOperation('get', key, () => this.inner.get(key, range));
  }

  /** Retries opening the stream; a failure while the body flows reaches its reader, who has sent part of it. */
  getStream(key: string, range?: ReadRange): Promise<StreamResult | null> {
    return this.retryOperation('get', key, () => this.inner.getStream(key, range));
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.retryOperation('head', key, () => this.inner.head(key));
  }

  list(prefix: string, options?: { after?: string; limit?: number }): Promise<ListPage> {
    return this.retryOperation('list', prefix, () => this.inner.list(prefix, options));
  }

  delete(keys: string[]): Promise<void> {
    return this.retryOperation('delete', keys[0] ?? '', () => this.inner.delete(keys));
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    const conditional = options.ifNoneMatch !== undefined || options.ifMatch !== undefined;
    if (!conditional) return this.retryOperation('put', key, () => this.inner.put(key, body, options));
    for (let attempt = 1; ; attempt++) {
      let failure: TransientStoreError;
      try {
        return await this.inner.put(key, body, options);
      } catch (err) {
        if (!(err instanceof TransientStoreError)) throw err;
        failure = err;
      }
      const settled = await this.settle(key, body, options);
      if (settled) return settled;
      // The write did not happen: try again, within the same attempt budget.
      if (attempt >= this.attempts) throw failure;
      await this.backoff('put', key, attempt, failure);
    }
  }

  /**
   * After an unknown outcome: our etag if the key holds our bytes, null if the write did not happen
   * (worth retrying); throws PreconditionFailedError if another writer got there.
   */
  private async settle(key: string, body: Uint8Array, options: PutOptions): Promise<{ etag: string } | null> {
    const current = await this.retryOperation('head', key, () => this.inner.head(key));
    if (current && await this.holdsBytes(key, current, body)) return { etag: current.etag };
    if (options.ifNoneMatch !== undefined) {
      if (current) throw new PreconditionFailedError(key, 'the object already exists (found after an unanswered conditional write)');
      return null;
    }
    if (current && current.etag === options.ifMatch) return null;
    throw new PreconditionFailedError(key, current
      ? `its etag is ${current.etag}, not ${options.ifMatch} (found after an unanswered conditional write)`
      : 'the object does not exist (found after an unanswered conditional write)');
  }

  /** Single-part S3 ETags and FsStore ETags are the MD5 of the content; anything else is compared byte by byte. */
  private async holdsBytes(key: string, current: ObjectInfo, body: Uint8Array): Promise<boolean> {
    if (current.size !== body.length) return false;
    if (/^[0-9a-f]{32}$/.test(current.etag)) return current.etag === md5Hex(body);
    const got = await this.retryOperation('get', key, () => this.inner.get(key));
    return got !== null && Buffer.from(body.buffer, body.byteOffset, body.byteLength).equals(got.body);
  }
}
