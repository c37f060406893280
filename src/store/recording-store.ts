// Records every request a store is asked to make, one JSON line per call (a delete lists its keys)
// appended to a file, so a test can check a function's requests against the permissions its deployment
// grants (test/iam-evaluation.test.ts). Appends of one short line are atomic, so several sandboxes may
// share the file. It only watches: results and errors pass through unchanged.
import { appendFileSync } from 'node:fs';
import type { ByteRange, GetResult, ListPage, ObjectInfo, ObjectStore, PutOptions, ReadRange, StreamResult } from './object-store.js';

export type RecordedAction = 'get' | 'head' | 'put' | 'list' | 'delete';

export interface StoreRecord {
  /** Who asked: a function name, or 'writer'. */
  who: string;
  action: RecordedAction;
  /** The key (for a list, the prefix; for a delete, its first key or ''). */
  key: string;
  /** For a delete: every key of the batch. */
  keys?: string[];
  /** For get and head: whether the key existed (a missing key needs more permissions on S3). */
  found?: boolean;
}

export class RecordingStore implements ObjectStore {
  readonly description: string;

  constructor(readonly observed: ObjectStore, private readonly who: string, private readonly file: string) {
    this.description = observed.description;
  }

  private record(action: RecordedAction, key: string, extra: Partial<StoreRecord> = {}): void {
    const r: StoreRecord = { who: this.who, action, key, ...extra };
    appendFileSync(this.file, `${JSON.stringify(r)}\n`);
  }

  async get(key: string, range?: ByteRange): Promise<GetResult | null> {
    const got = await this.observed.get(key, range);
    this.record('get', key, { found: got !== null });
    return got;
  }

  async getStream(key: string, range?: ReadRange): Promise<StreamResult | null> {
    const got = await this.observed.getStream(key, range);
    this.record('get', key, { found: got !== null });
    return got;
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const got = await this.observed.head(key);
    this.record('head', key, { found: got !== null });
    return got;
  }

  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    // Recorded before the outcome: a refused conditional put was still asked of the store.
    this.record('put', key);
    return this.observed.put(key, body, options);
  }

  list(prefix: string, options?: { after?: string; limit?: number }): Promise<ListPage> {
    this.record('list', prefix);
    return this.observed.list(prefix, options);
  }

  delete(keys: string[]): Promise<void> {
    this.record('delete', keys[0] ?? '', { keys: [...keys] });
    return this.observed.delete(keys);
  }
}

/** Every record in a file written by RecordingStore. */
export function parseStoreRecords(text: string): StoreRecord[] {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as StoreRecord);
}
