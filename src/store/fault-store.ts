// Injects failures into a store for tests, deterministically: which requests fail depends only on their
// order and the options. Requests are numbered from 1 across all operations (get, head, put, list, delete).
import {
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

export interface FaultOptions {
  /** These request numbers fail. */
  failNth?: number[];
  /** Every k-th request fails (k, 2k, 3k, ...). */
  failEvery?: number;
  /** `count` consecutive failures starting at request `from`. */
  burst?: { from: number; count: number };
  /** Status of the injected failures (default 503, S3's SlowDown). */
  status?: number;
  /** These request numbers wait `delayMs`, then fail as a timeout (status 0) without reaching the store. */
  timeout?: { nth: number[]; delayMs: number };
  /**
   * Conditional puts of `key` are performed, then answered 500 as if the reply was lost (Ceph does this
   * under contention). Applies to the first `times` such puts (default 1).
   */
  failAfterConditionalPut?: { key: string; times?: number };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class FaultStore implements ObjectStore {
  readonly description: string;
  /** Requests seen so far. */
  requests = 0;
  /** Failures injected so far. */
  injected = 0;
  private afterPutLeft: number;

  constructor(readonly inner: ObjectStore, private readonly faults: FaultOptions) {
    this.description = `${inner.description} (with injected faults)`;
    if (faults.failEvery !== undefined && (!Number.isInteger(faults.failEvery) || faults.failEvery < 1)) {
      throw new Error(`failEvery must be a positive integer, got ${faults.failEvery}`);
    }
    this.afterPutLeft = faults.failAfterConditionalPut?.times ?? 1;
  }

  private async before(operation: string, key: string): Promise<void> {
    const n = ++this.requests;
    const f = this.faults;
    if (f.timeout?.nth.includes(n)) {
      await sleep(f.timeout.delayMs);
      this.injected++;
      throw new TransientStoreError(operation, key, 0, Object.assign(new Error(`injected timeout after ${f.timeout.delayMs} ms (request ${n})`), { name: 'TimeoutError' }));
    }
    const fail = (f.failNth?.includes(n) ?? false) ||
      (f.failEvery !== undefined && n % f.failEvery === 0) ||
      (f.burst !== undefined && n >= f.burst.from && n < f.burst.from + f.burst.count);
    if (fail) {
      this.injected++;
      const status = f.status ?? 503;
      throw new TransientStoreError(operation, key, status, new Error(`injected ${status}${status === 503 ? ' SlowDown' : ''} (request ${n})`));
    }
  }

  async get(key: string, range?: ByteRange): Promise<GetResult | null> {
    await this.before('get', key);
    return this.inner.get(key, range);
  }

  async getStream(key: string, range?: ReadRange): Promise<StreamResult | null> {
    await this.before('get', key);
    return this.inner.getStream(key, range);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    await this.before('head', key);
    return this.inner.head(key);
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    await this.before('put', key);
    const result = await this.inner.put(key, body, options);
    const conditional = options?.ifNoneMatch !== undefined || options?.ifMatch !== undefined;
    if (conditional && this.faults.failAfterConditionalPut?.key === key && this.afterPutLeft > 0) {
      this.afterPutLeft--;
      this.injected++;
      throw new TransientStoreError('put', key, 500, new Error('injected 500 InternalError after the write succeeded'));
    }
    return result;
  }

  async list(prefix: string, options?: { after?: string; limit?: number }): Promise<ListPage> {
    await this.before('list', prefix);
    return this.inner.list(prefix, options);
  }

  async delete(keys: string[]): Promise<void> {
    await this.before('delete', keys[0] ?? '');
    return this.inner.delete(keys);
  }
}
