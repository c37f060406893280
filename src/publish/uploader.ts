// Uploads content-addressed objects with many requests in flight, each object at most once.
import { putIfAbsent } from '../repo/repository.js';
import { Slots } from '../store/slots.js';
import type { ObjectStore } from '../store/object-store.js';
import type { PreparedObject } from '../format/zlib-object.js';

/** What the compress pool and the publishers hand objects to: the store directly, or through grants. */
export interface ObjectUploader {
  /** Resolves when the object is in the store. Same key twice uploads once. */
  upload(obj: PreparedObject): Promise<void>;
  /** Counts objects that a worker wrote into the store itself (and bad ones it replaced). */
  recordObjects(o: WorkerObjects): void;
  /** Lets the key be uploaded again (the commit removed a bad object under it). */
  forget(key: string): void;
  readonly uploaded: number;
  readonly alreadyPresent: number;
  readonly bytesUploaded: number;
  /**
   * Objects stored without the store client (compress workers writing a directory, PUTs to granted
   * URLs), so that no meter around the store saw them; the cost ledger adds them to what meters saw.
   */
  readonly storedOutside: { objects: number; bytes: number };
}

/** What compress workers that write into a directory store did. */
export interface WorkerObjects {
  written: number;
  present: number;
  bytesWritten: number;
  /** Keys that held bytes not matching their name, overwritten with the right ones. */
  replaced?: ReplacedObject[];
}

export interface ReplacedObject {
  key: string;
  /** What the bad bytes hashed to. */
  actual: string;
}

export interface UploaderOptions {
  /**
   * Take objects that are already in the store on trust: right for a serverless writer, whose commit
   * function checks every new object itself; wrong for the owner, who references objects directly.
   */
  trustPresent?: boolean;
}

export class Uploader implements ObjectUploader {
  private readonly seen = new Map<string, Promise<void>>();
  private readonly slots: Slots;
  uploaded = 0;
  alreadyPresent = 0;
  bytesUploaded = 0;
  readonly storedOutside = { objects: 0, bytes: 0 };
  /** Objects found under their key with other bytes, and overwritten. */
  readonly replaced: ReplacedObject[] = [];
  private readonly trustPresent: boolean;

  constructor(private readonly store: ObjectStore, concurrency = 32, options: UploaderOptions = {}) {
    this.slots = new Slots(concurrency);
    this.trustPresent = options.trustPresent ?? false;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }

  /** Queues an upload; resolves when the object is in the store. Same key twice uploads once. */
  upload(obj: PreparedObject): Promise<void> {
    let p = this.seen.get(obj.key);
    if (!p) {
      p = this.slots.run(() => this.put(obj));
      this.seen.set(obj.key, p);
    }
    return p;
  }

  /** Counts objects that a worker wrote into the store itself. */
  recordObjects(o: WorkerObjects): void {
    this.uploaded += o.written;
    this.alreadyPresent += o.present;
    this.bytesUploaded += o.bytesWritten;
    this.storedOutside.objects += o.written;
    this.storedOutside.bytes += o.bytesWritten;
    if (o.replaced) this.replaced.push(...o.replaced);
  }

  /** Uploads without queueing behind data objects (catalogs on the commit path). */
  uploadNow(obj: PreparedObject): Promise<void> {
    let p = this.seen.get(obj.key);
    if (!p) {
      p = this.put(obj);
      this.seen.set(obj.key, p);
    }
    return p;
  }

  private async put(obj: PreparedObject): Promise<void> {
    // Unless trusted, an object already there is read back and replaced if its bytes are not its name's.
    const onReplaced = (key: string, actual: string) => { this.replaced.push({ key, actual }); };
    if (await putIfAbsent(this.store, obj, { trustPresent: this.trustPresent, onReplaced })) {
      this.uploaded++;
      this.bytesUploaded += obj.stored.length;
    } else {
      this.alreadyPresent++;
    }
  }
}

/** At most `limit` calls run at once; the others wait their turn in order. */

export { Slots };
