// Uploads content-addressed objects with many requests in flight, each object at most once.
import { putIfAbsent } from '../repo/repository.js';
import { Slots } from '../store/slots.js';
import type { ObjectStore } from '../store/object-store.js';
import type { PreparedObject } from '../format/zlib-object.js';

/** What the compress pool and the publishers hand objects to: the store directly, or through grants. */
export interface ObjectUploader {
  /** Resolves when the object is in the store. Same key twice uploads once. */
  upload(obj: PreparedObject): Promise<void>;
  /** Counts objects that a worker wrote into the store itself. */
  recordObjects(o: { written: number; present: number; bytesWritten: number }): void;
  readonly uploaded: number;
  readonly alreadyPresent: number;
  readonly bytesUploaded: number;
}

export class Uploader implements ObjectUploader {
  private readonly seen = new Map<string, Promise<void>>();
  private readonly slots: Slots;
  uploaded = 0;
  alreadyPresent = 0;
  bytesUploaded = 0;

  constructor(private readonly store: ObjectStore, concurrency = 32) {
    this.slots = new Slots(concurrency);
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
  recordObjects(o: { written: number; present: number; bytesWritten: number }): void {
    this.uploaded += o.written;
    this.alreadyPresent += o.present;
    this.bytesUploaded += o.bytesWritten;
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
    // Content-addressed: if it exists it already holds these bytes, so a lost create is a success.
    if (await putIfAbsent(this.store, obj)) {
      this.uploaded++;
      this.bytesUploaded += obj.stored.length;
    } else {
      this.alreadyPresent++;
    }
  }
}

/** At most `limit` calls run at once; the others wait their turn in order. */

export { Slots };
