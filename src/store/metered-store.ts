// Counts what a store is asked to do: requests by kind, failures and bytes each way. Placed right around
// a backend (inside retries), it counts the requests a cloud provider would bill.
import {
  PreconditionFailedError,
  type ByteRange,
  type GetResult,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type ReadRange,
  type StreamResult,
} from './object-store.js';

export interface MeterSnapshot {
  get: number;
  head: number;
  /** Unconditional puts. */
  put: number;
  /** Puts with ifNoneMatch or ifMatch. */
  conditionalPut: number;
  list: number;
  /** Delete calls (one batch each). */
  delete: number;
  /** Conditional puts refused because the condition did not hold (an outcome, not a failure). */
  preconditionFailed: number;
  /** Calls that threw anything else. */
  failed: number;
  /** Bytes read from the store (get bodies; for streamed gets, the bytes the body was opened for). */
  bytesIn: number;
  /** Bytes written to the store (bodies of puts that succeeded). */
  bytesOut: number;
  /**
   * Content-addressed objects (keys under data/) created by a create-only put that succeeded, and their
   * bytes: what the operation added to the storage the provider bills by the month. A put that replaces
   * bytes under an existing name adds nothing.
   */
  objectsCreated: number;
  bytesCreated: number;
}

/** Where content-addressed objects live (spec: data/<2 hex>/<rest>). */
const DATA_PREFIX = 'data/';

const ZERO: MeterSnapshot = { get: 0, head: 0, put: 0, conditionalPut: 0, list: 0, delete: 0, preconditionFailed: 0, failed: 0, bytesIn: 0, bytesOut: 0, objectsCreated: 0, bytesCreated: 0 };

export class MeteredStore implements ObjectStore {
  readonly description: string;
  private counts: MeterSnapshot = { ...ZERO };

  /** `observed`: metering only watches, so callers may still reach the backend directly (see directFsRoot). */
  constructor(readonly observed: ObjectStore) {
    this.description = observed.description;
  }

  snapshot(): MeterSnapshot {
    return { ...this.counts };
  }

  reset(): void {
    this.counts = { ...ZERO };
  }

  private async count<T>(kind: 'get' | 'head' | 'put' | 'conditionalPut' | 'list' | 'delete', op: () => Promise<T>): Promise<T> {
    this.counts[kind]++;
    try {
      return await op();
    } catch (err) {
      if (err instanceof PreconditionFailedError) this.counts.preconditionFailed++;
      else this.counts.failed++;
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<GetResult | null> {
    const got = await this.count('get', () => this.observed.get(key, range));
    if (got) this.counts.bytesIn += got.body.length;
    return got;
  }

  async getStream(key: string, range?: ReadRange): Promise<StreamResult | null> {
    const got = await this.count('get', () => this.observed.getStream(key, range));
    if (got) this.counts.bytesIn += got.length;
    return got;
  }

  head(key: string): Promise<ObjectInfo | null> {
    return this.count('head', () => this.observed.head(key));
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    const conditional = options?.ifNoneMatch !== undefined || options?.ifMatch !== undefined;
    const result = await this.count(conditional ? 'conditionalPut' : 'put', () => this.observed.put(key, body, options));
    this.counts.bytesOut += body.length;
    if (options?.ifNoneMatch === '*' && key.startsWith(DATA_PREFIX)) {
      this.counts.objectsCreated++;
      this.counts.bytesCreated += body.length;
    }
    return result;
  }

  list(prefix: string, options?: { after?: string; limit?: number }): Promise<ListPage> {
    return this.count('list', () => this.observed.list(prefix, options));
  }

  delete(keys: string[]): Promise<void> {
    return this.count('delete', () => this.observed.delete(keys));
  }
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** One line for people, e.g. `store requests: 12 (get 3, head 1, put 2, conditional put 6, list 0, delete 0); 1 precondition failed, 0 failed; 1.2 MiB out, 3.4 KiB in`. */
export function meterSummary(s: MeterSnapshot): string {
  return `store requests: ${meterRequests(s)} (get ${s.get}, head ${s.head}, put ${s.put}, conditional put ${s.conditionalPut}, list ${s.list}, delete ${s.delete}); ` +
    `${s.preconditionFailed} precondition failed, ${s.failed} failed; ${bytes(s.bytesOut)} out, ${bytes(s.bytesIn)} in`;
}

/** The counts of several meters together (a writer and the functions it called). */
export function meterSum(snapshots: readonly MeterSnapshot[]): MeterSnapshot {
  const total = { ...ZERO };
  for (const s of snapshots) {
    for (const k of Object.keys(total) as (keyof MeterSnapshot)[]) total[k] += s[k] ?? 0;
  }
  return total;
}

/** Requests in a snapshot, of every kind. */
export function meterRequests(s: MeterSnapshot): number {
  return s.get + s.head + s.put + s.conditionalPut + s.list + s.delete;
}
