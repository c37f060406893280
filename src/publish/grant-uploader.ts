// Uploads content-addressed objects through upload grants, in the Uploader's role: keys go in batches
// to the upload-grant function, which says which already exist and signs a PUT URL for each of the
// others; the bytes then go straight to the store over HTTP. The writer needs no write access to data
// objects, and objects that exist are never sent.
import { putIfAbsent } from '../repo/repository.js';
import type { ObjectStore } from '../store/object-store.js';
import type { PreparedObject } from '../format/zlib-object.js';
import { checkGrantAnswer, MAX_GRANT_KEYS, type UploadGrant } from '../format/upload-grant.js';
import { Slots, type ObjectUploader, type WorkerObjects } from './uploader.js';

export interface GrantUploaderOptions {
  /** PUTs in flight at once (default 32, as Uploader). */
  concurrency?: number;
  /** How long a key waits for others to share its grant call (default 10 ms). */
  batchDelayMs?: number;
  /** Keys per grant call (default and at most 1000). */
  maxBatch?: number;
  /** Attempts per PUT on throttling, 5xx and network errors (default 5). */
  attempts?: number;
}

interface Waiting {
  obj: PreparedObject;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class GrantUploader implements ObjectUploader {
  uploaded = 0;
  alreadyPresent = 0;
  bytesUploaded = 0;
  grantCalls = 0;
  /** Objects this writer put into the store itself: keys granted without a URL. */
  directPuts = 0;
  /** PUTs to granted URLs the store answered (retries included): requests it bills, made outside the store client. */
  urlPuts = 0;
  readonly storedOutside = { objects: 0, bytes: 0 };
  private readonly seen = new Map<string, Promise<void>>();
  private batch: Waiting[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly slots: Slots;
  private readonly batchDelayMs: number;
  private readonly maxBatch: number;
  private readonly attempts: number;

  /** `grant(keys)`: one call of the upload-grant function for these keys; resolves to its answer. */
  constructor(private readonly store: ObjectStore, private readonly grant: (keys: string[]) => Promise<unknown>,
    options: GrantUploaderOptions = {}) {
    this.slots = new Slots(options.concurrency ?? 32);
    this.batchDelayMs = options.batchDelayMs ?? 10;
    this.maxBatch = options.maxBatch ?? MAX_GRANT_KEYS;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > MAX_GRANT_KEYS) {
      throw new Error(`maxBatch must be 1 to ${MAX_GRANT_KEYS}, got ${this.maxBatch}`);
    }
    this.attempts = options.attempts ?? 5;
  }

  upload(obj: PreparedObject): Promise<void> {
    let p = this.seen.get(obj.key);
    if (!p) {
      p = new Promise<void>((resolve, reject) => this.batch.push({ obj, resolve, reject }));
      this.seen.set(obj.key, p);
      if (this.batch.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.batchDelayMs);
    }
    return p;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }

  recordObjects(o: WorkerObjects): void {
    this.uploaded += o.written;
    this.alreadyPresent += o.present;
    this.bytesUploaded += o.bytesWritten;
    this.storedOutside.objects += o.written;
    this.storedOutside.bytes += o.bytesWritten;
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.batch;
    this.batch = [];
    if (batch.length > 0) void this.send(batch);
  }

  private async send(batch: Waiting[]): Promise<void> {
    const keys = batch.map((w) => w.obj.key);
    let answer;
    try {
      this.grantCalls++;
      answer = checkGrantAnswer(keys, await this.grant(keys));
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    const byKey = new Map(batch.map((w) => [w.obj.key, w]));
    for (const key of answer.present) {
      this.alreadyPresent++;
      byKey.get(key)!.resolve();
    }
    for (const g of answer.upload) {
      const w = byKey.get(g.key)!;
      this.slots.run(() => this.put(w.obj, g)).then(w.resolve, w.reject);
    }
  }

  private async put(obj: PreparedObject, grant: UploadGrant): Promise<void> {
    if (grant.url === undefined) return this.putDirect(obj);
    // Transferred from the workers as plain ArrayBuffers, never shared ones.
    const body = obj.stored as Uint8Array<ArrayBuffer>;
    for (let attempt = 1; ; attempt++) {
      let status = 0;
      let detail: string;
      try {
        const res = await fetch(grant.url, { method: 'PUT', body, headers: grant.headers ?? {} });
        this.urlPuts++;
        const text = await res.text();
        if (res.ok) {
          this.uploaded++;
          this.bytesUploaded += obj.stored.length;
          this.storedOutside.objects++;
          this.storedOutside.bytes += obj.stored.length;
          return;
        }
        // The URL is create-only: 412 means the object exists (another writer, or our own earlier attempt
        // whose answer was lost). Whether its bytes are these, the commit function checks.
        if (res.status === 412) {
          this.alreadyPresent++;
          return;
        }
        status = res.status;
        detail = `HTTP ${status} ${errorCode(text)}`.trimEnd();
      } catch (err) {
        detail = (err as Error).message;
      }
      // Throttling, server errors and network errors are worth another try; a refusal (403: expired or
      // not signed for this) is not.
      const transient = status === 0 || status === 429 || status >= 500;
      if (!transient || attempt >= this.attempts) throw new Error(`upload of ${obj.key} through its grant failed: ${detail}`);
      await sleep(Math.random() * Math.min(5000, 50 * 2 ** (attempt - 1)));
    }
  }

  /** No URL: the store signs none (a directory), so the writer writes the object itself. */
  private async putDirect(obj: PreparedObject): Promise<void> {
    // The commit function reads every object a changeset names (but those of the entries it replaces).
    if (await putIfAbsent(this.store, obj, { trustPresent: true })) {
      this.directPuts++;
      this.uploaded++;
      this.bytesUploaded += obj.stored.length;
    } else {
      this.alreadyPresent++;
    }
  }
}

/** The S3 error code of an XML error body, e.g. SignatureDoesNotMatch or AccessDenied. */
function errorCode(body: string): string {
  return /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? body.slice(0, 120);
}
