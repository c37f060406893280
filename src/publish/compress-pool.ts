// A pool of compress workers fed in batches: per-message overhead would otherwise dominate for the
// small files that make up most software trees.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { ContentHash, type HashAlgorithm } from '../format/hash.js';
import type { CompressBatch, CompressJob, CompressResult } from './compress-worker.js';

export type CompressedFile =
  /** Compressed bytes for the caller to upload. */
  | { hash: ContentHash; stored: Buffer }
  /** Already written to the filesystem store by the worker. */
  | { hash: ContentHash; storedSize: number; written: boolean };

interface Pending {
  job: CompressJob;
  resolve: (r: CompressedFile) => void;
  reject: (e: Error) => void;
}

const BATCH_FILES = 64;
const BATCH_BYTES = 1 << 20;

export class CompressPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<number, Pending>();
  private nextId = 1;
  private flushTimer: NodeJS.Immediate | null = null;
  private failure: Error | null = null;

  constructor(private readonly algorithm: HashAlgorithm, readonly size = availableParallelism(), private readonly fsStoreRoot?: string) {
    const url = new URL('./compress-worker.js', import.meta.url);
    for (let i = 0; i < size; i++) {
      const w = new Worker(url);
      w.on('message', (results: CompressResult[]) => this.onResults(w, results));
      w.on('error', (err) => this.fail(err));
      w.unref();
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  compress(path: string, size: number, mtimeNs: bigint): Promise<CompressedFile> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, path, size, mtimeNs }, resolve, reject });
      // Deferred so that files queued in the same turn travel together.
      if (!this.flushTimer) this.flushTimer = setImmediate(() => { this.flushTimer = null; this.dispatch(); });
    });
  }

  /** Busy workers let the queue grow, so batches fill up by themselves under load. */
  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const jobs: Pending[] = [];
      let bytes = 0;
      while (this.queue.length > 0 && jobs.length < BATCH_FILES && (jobs.length === 0 || bytes < BATCH_BYTES)) {
        const p = this.queue.shift()!;
        bytes += p.job.size;
        jobs.push(p);
      }
      for (const p of jobs) this.inFlight.set(p.job.id, p);
      const worker = this.idle.pop()!;
      const batch: CompressBatch = { algorithm: this.algorithm, jobs: jobs.map((p) => p.job), fsStoreRoot: this.fsStoreRoot };
      worker.ref();
      worker.postMessage(batch);
    }
  }

  private onResults(worker: Worker, results: CompressResult[]): void {
    worker.unref();
    this.idle.push(worker);
    for (const r of results) {
      const p = this.inFlight.get(r.id);
      if (!p) continue;
      this.inFlight.delete(r.id);
      if ('error' in r) p.reject(new Error(`cannot read ${p.job.path}: ${r.error}`));
      else if ('written' in r) p.resolve({ hash: new ContentHash(this.algorithm, Buffer.from(r.digest)), storedSize: r.storedSize, written: r.written });
      else p.resolve({ hash: new ContentHash(this.algorithm, Buffer.from(r.digest)), stored: Buffer.from(r.stored.buffer, r.stored.byteOffset, r.stored.byteLength) });
    }
    this.dispatch();
  }

  private fail(err: Error): void {
    this.failure = new Error(`compression worker failed: ${err.message}`);
    for (const p of [...this.inFlight.values(), ...this.queue]) p.reject(this.failure);
    this.inFlight.clear();
    this.queue.length = 0;
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
