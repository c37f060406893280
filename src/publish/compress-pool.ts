// A pool of compress workers. Files are fed in batches (per-message overhead would otherwise dominate
// for the small files that make up most software trees); a stream gets a worker to itself. A file
// large enough to be chunked is first scanned for its cuts by one worker, and its chunks are handed
// out as they are found, ahead of other files, so that one huge file keeps every core compressing. Objects go
// either straight into a filesystem store (the workers write them) or back here to an upload function,
// with backpressure so that no worker runs more than a bounded number of bytes ahead of the uploads.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import { ContentHash, digestOf, type HashAlgorithm } from '../format/hash.js';
import { chunkingParameters, type ChunkingParameters } from '../format/chunker.js';
import type { FileChunk } from '../format/catalog-db.js';
import { compressObject, type PreparedObject } from '../format/zlib-object.js';
import type { ContentOutcome, FileJob, WorkerReply, WorkerRequest, WorkerSetup } from './compress-worker.js';
import { describeReadError, readWholeFile, writeToFsStore, type FsWriteCounts } from './compress-job.js';
import type { WorkerObjects } from './uploader.js';

/** Where the objects go. */
export type ObjectSink =
  /** Workers write into this filesystem store root themselves (checking objects already there if `verifyPresent`). */
  | { fsStoreRoot: string; verifyPresent?: boolean }
  /** Each object is handed to this function; it resolves once the object is stored. */
  | { upload: (obj: PreparedObject) => Promise<void> };

export interface CompressPoolOptions {
  algorithm: HashAlgorithm;
  sink: ObjectSink;
  /** Worker threads; default: one per core. */
  workers?: number;
  /** Content-defined chunking (spec §3); missing fields take the stock defaults 4/8/16 MiB; false: off. */
  chunking?: Partial<ChunkingParameters> | false;
  /**
   * Upload sink only: compressed bytes one worker may have handed over that are not uploaded yet.
   * Default twice the maximum chunk size. A single object larger than this still goes through alone.
   */
  bytesInFlightPerWorker?: number;
  /**
   * Small files compressed on the calling thread before any worker is started, at most this many bytes
   * in all (default 1 MiB); 0: every file goes to a worker.
   */
  inlineBytes?: number;
  /**
   * Batches of small files one worker may hold: the one it runs and those behind it (default 2, so that
   * it need not wait for this thread between two); 1: a batch only to an idle worker.
   */
  batchesAhead?: number;
}

/** The objects of one file or stream. */
export interface CompressedContent {
  /** The single object's hash; null for a chunked file (no whole-file object, spec §3.2). */
  hash: ContentHash | null;
  /** Chunks (suffix P), contiguous from 0; empty when the content is one ordinary object. */
  chunks: FileChunk[];
  /** Uncompressed bytes. */
  size: number;
  /** Compressed bytes of all its objects. */
  storedBytes: number;
  /**
   * What the workers did in a filesystem store: objects written, objects already there, bytes written.
   * All zero with an upload sink, whose function sees every object.
   */
  objects: WorkerObjects;
}

type Settle = { resolve: (r: CompressedContent) => void; reject: (e: Error) => void };
type QueuedFile = { kind: 'file'; job: FileJob } & Settle;
type QueuedStream = {
  kind: 'stream'; id: number; stream: AsyncIterable<unknown>; expectedSize?: number; what: string;
  /** Why reading the stream failed; reported instead of the worker's 'aborted'. */
  readError?: Error;
} & Settle;
/** A large file's cut scan; each report of cuts becomes chunk pieces for any worker. */
type QueuedScan = { kind: 'scan'; job: FileJob; onCuts: (cuts: number[]) => void } & Settle;
type Queued = QueuedFile | QueuedStream | QueuedScan;

interface Slot {
  index: number;
  worker: Worker;
  /** Stream input sent to the worker and not yet taken in. */
  inputOutstanding: number;
  inputWaiter: (() => void) | null;
  /** Units of work sent and not yet answered with 'done'. */
  busy: number;
  /** It runs a scan or a stream: nothing is queued behind it. */
  exclusive: boolean;
}

const BATCH_FILES = 64;
/** A file compressed on the calling thread is at most this large (a few hundred microseconds of deflate). */
const INLINE_FILE_BYTES = 64 << 10;
const DEFAULT_INLINE_BYTES = 1 << 20;
const BATCH_BYTES = 1 << 20;
/**
 * A worker's young generation: its garbage is small objects per file (the bytes are outside the heap),
 * and V8's default lets each worker's young generation grow to 48 MiB. 3 MiB took 20 MB off the peak
 * RSS of a 20,000-file publish at the same speed (docs/performance.md).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 3 };
/** Stream bytes queued towards one worker before the reading side is paused. */
const STREAM_INPUT_BYTES = 4 << 20;

export class CompressPool {
  readonly size: number;
  readonly algorithm: HashAlgorithm;
  private readonly sink: ObjectSink;
  private readonly slots: Slot[] = [];
  private readonly queue: Queued[] = [];
  /** Pieces of scanned files: dispatched before the queue, so a started file finishes first. */
  private readonly pieces: QueuedFile[] = [];
  private readonly chunking: ChunkingParameters | null;
  /** Pieces of large files each worker compressed (shows that one file's chunks spread). */
  readonly piecesPerWorker: number[];
  private readonly running = new Map<number, Queued>();
  /** Uploads started per job: a job is done only when its objects are stored. */
  private readonly uploads = new Map<number, Promise<void>[]>();
  private nextId = 1;
  private flushTimer: NodeJS.Immediate | null = null;
  private failure: Error | null = null;
  private inFlight = 0;
  /** Largest number of compressed bytes handed to the upload function and not yet uploaded. */
  peakBytesInFlight = 0;
  /** Files compressed on the calling thread (before the workers were needed). */
  inlineFiles = 0;
  private inlineBudget: number;
  private readonly batchesAhead: number;
  /** Batches sent to a worker that was still running another. */
  batchesSentAhead = 0;
  private readonly setup: WorkerSetup;

  constructor(options: CompressPoolOptions) {
    this.algorithm = options.algorithm;
    this.sink = options.sink;
    this.size = options.workers ?? availableParallelism();
    if (!Number.isInteger(this.size) || this.size < 1) throw new Error(`worker count must be a positive integer, got ${this.size}`);
    const chunking = options.chunking === false ? null : chunkingParameters(options.chunking ?? {});
    this.chunking = chunking;
    this.piecesPerWorker = new Array<number>(this.size).fill(0);
    this.setup = {
      algorithm: this.algorithm,
      chunking,
      fsStoreRoot: 'fsStoreRoot' in this.sink ? this.sink.fsStoreRoot : undefined,
      verifyPresent: 'fsStoreRoot' in this.sink ? this.sink.verifyPresent : undefined,
      bytesInFlight: options.bytesInFlightPerWorker ?? 2 * (chunking?.maxSize ?? 16 << 20),
    };
    this.inlineBudget = options.inlineBytes ?? DEFAULT_INLINE_BYTES;
    this.batchesAhead = options.batchesAhead ?? 2;
    if (!Number.isInteger(this.batchesAhead) || this.batchesAhead < 1) throw new Error(`batchesAhead must be a positive integer, got ${this.batchesAhead}`);
  }

  /** Worker threads started so far: they start when the queue first needs them, up to `size`. */
  get workersStarted(): number {
    return this.slots.length;
  }

  private startWorker(): Slot {
    const url = new URL('./compress-worker.js', import.meta.url);
    const slot: Slot = { index: this.slots.length, worker: new Worker(url, { workerData: this.setup, resourceLimits: WORKER_LIMITS }), inputOutstanding: 0, inputWaiter: null, busy: 0, exclusive: false };
    slot.worker.on('message', (reply: WorkerReply) => this.onReply(slot, reply));
    slot.worker.on('error', (err) => this.fail(err));
    this.slots.push(slot);
    return slot;
  }

  /** Compresses a file the scan saw with this size and mtime; it fails if the file changes meanwhile. */
  compress(path: string, size: number, mtimeNs: bigint): Promise<CompressedContent> {
    if (this.chunking && size > this.chunking.minSize) return this.compressSpread(path, size, mtimeNs);
    if (this.slots.length === 0 && size <= INLINE_FILE_BYTES && size <= this.inlineBudget) {
      this.inlineBudget -= size;
      return this.compressInline({ id: this.nextId++, path, size, mtimeNs });
    }
    this.inlineBudget = 0;
    return this.enqueue((settle) => ({ kind: 'file', job: { id: this.nextId++, path, size, mtimeNs }, ...settle }));
  }

  /** What a worker does with a small file (compress-job.ts), done here: no thread to start for it. */
  private async compressInline(job: FileJob): Promise<CompressedContent> {
    if (this.failure) throw this.failure;
    this.inlineFiles++;
    let bytes: Buffer;
    try {
      bytes = readWholeFile(job);
    } catch (err) {
      throw new Error(`cannot read ${job.path}: ${describeReadError(err)}`);
    }
    const stored = compressObject(bytes);
    const hash = new ContentHash(this.algorithm, digestOf(this.algorithm, stored));
    const objects: FsWriteCounts = { written: 0, present: 0, bytesWritten: 0, replaced: [] };
    const key = hash.objectKey('');
    if ('fsStoreRoot' in this.sink) writeToFsStore(this.sink.fsStoreRoot, this.algorithm, this.sink.verifyPresent === true, key, stored, objects);
    else await this.sink.upload({ hash, suffix: '', key, stored });
    return { hash, chunks: [], size: job.size, storedBytes: stored.length, objects };
  }

  /**
   * A file that may be chunked: one worker scans it for cuts (the same xor32 cuts as reading it whole),
   * and each chunk becomes a piece that any worker reads and compresses on its own.
   */
  private async compressSpread(path: string, size: number, mtimeNs: bigint): Promise<CompressedContent> {
    const pieces: { offset: number; length: number; done: Promise<CompressedContent> }[] = [];
    const queued = new Set<QueuedFile>();
    let end = 0;
    const piece = (cut: number, suffix: '' | 'P') => {
      const offset = end;
      end = cut;
      const done = new Promise<CompressedContent>((resolve, reject) => {
        if (this.failure) return reject(this.failure);
        const q: QueuedFile = { kind: 'file', job: { id: this.nextId++, path, size, mtimeNs, range: { offset, length: cut - offset, suffix } }, resolve, reject };
        queued.add(q);
        this.pieces.push(q);
      });
      // Awaited below, once the scan is over; a piece that fails before then is not unhandled.
      done.catch(() => {});
      pieces.push({ offset, length: cut - offset, done });
    };
    try {
      await this.enqueue((settle) => ({
        kind: 'scan', job: { id: this.nextId++, path, size, mtimeNs }, ...settle,
        onCuts: (cuts) => {
          for (const c of cuts) piece(c, 'P');
          this.dispatch();
        },
      }));
    } catch (err) {
      // The file changed or vanished: pieces not handed out yet are dropped, the others finish first.
      for (let i = this.pieces.length - 1; i >= 0; i--) {
        const q = this.pieces[i]!;
        if (!queued.has(q)) continue;
        this.pieces.splice(i, 1);
        q.reject(err as Error);
      }
      await Promise.allSettled(pieces.map((p) => p.done));
      throw err;
    }
    // No cut at all: the file is one ordinary object (spec §3.1 step 3).
    piece(size, pieces.length > 0 ? 'P' : '');
    this.dispatch();
    const settled = await Promise.allSettled(pieces.map((p) => p.done));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const parts = settled.map((r) => (r as PromiseFulfilledResult<CompressedContent>).value);
    const objects: WorkerObjects = { written: 0, present: 0, bytesWritten: 0, replaced: [] };
    for (const p of parts) {
      objects.written += p.objects.written;
      objects.present += p.objects.present;
      objects.bytesWritten += p.objects.bytesWritten;
      objects.replaced!.push(...(p.objects.replaced ?? []));
    }
    const storedBytes = parts.reduce((n, p) => n + p.storedBytes, 0);
    if (parts.length === 1) return { hash: parts[0]!.hash, chunks: [], size, storedBytes, objects };
    return {
      hash: null, size, storedBytes, objects,
      chunks: pieces.map((p, i) => ({ offset: p.offset, size: p.length, hash: parts[i]!.hash! })),
    };
  }

  /**
   * Compresses the bytes of a stream (e.g. one tarball member) with the same chunking and backpressure:
   * the stream is read only as fast as the worker and the uploads keep up.
   */
  compressStream(stream: Readable | AsyncIterable<Uint8Array>, options: { expectedSize?: number; what?: string } = {}): Promise<CompressedContent> {
    return this.enqueue((settle) => ({
      kind: 'stream', id: this.nextId++, stream, expectedSize: options.expectedSize, what: options.what ?? 'stream', ...settle,
    }));
  }

  private enqueue(make: (settle: Settle) => Queued): Promise<CompressedContent> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push(make({ resolve, reject }));
      // Deferred so that files queued in the same turn travel together.
      if (!this.flushTimer) this.flushTimer = setImmediate(() => { this.flushTimer = null; this.dispatch(); });
    });
  }

  /**
   * Busy workers let the queue grow, so batches fill up by themselves under load. A worker that runs a
   * batch of files may hold one more behind it, so that it goes on at once instead of waiting for this
   * thread, which may be busy with catalog rows, to answer its 'done'. Pieces, scans and streams go to
   * an idle worker only: a piece should start on the next free core, and nothing should wait behind a
   * scan or a stream of unknown length.
   */
  private dispatch(): void {
    for (;;) {
      if (this.pieces.length === 0 && this.queue.length === 0) return;
      const batchNext = this.pieces.length === 0 && this.queue[0]!.kind === 'file';
      const slot = this.freeSlot(batchNext);
      if (!slot) return;
      if (slot.busy > 0) this.batchesSentAhead++;
      if (slot.busy++ === 0) slot.worker.ref();
      if (this.pieces.length > 0) {
        const q = this.pieces.shift()!;
        this.running.set(q.job.id, q);
        this.piecesPerWorker[slot.index]!++;
        this.post(slot, { type: 'files', jobs: [q.job] });
        continue;
      }
      const head = this.queue[0]!;
      if (head.kind === 'stream') {
        this.queue.shift();
        slot.exclusive = true;
        this.running.set(head.id, head);
        void this.pump(slot, head);
        continue;
      }
      if (head.kind === 'scan') {
        this.queue.shift();
        slot.exclusive = true;
        this.running.set(head.job.id, head);
        this.post(slot, { type: 'scan', job: head.job });
        continue;
      }
      const jobs: FileJob[] = [];
      let bytes = 0;
      let taken = 0;
      for (; taken < this.queue.length && jobs.length < BATCH_FILES && (jobs.length === 0 || bytes < BATCH_BYTES); taken++) {
        const q = this.queue[taken]!;
        if (q.kind !== 'file') break;
        bytes += q.job.size;
        jobs.push(q.job);
        this.running.set(q.job.id, q);
      }
      // Removed once per batch: shift() per file turns quadratic once a long queue leaves V8's fast path.
      this.queue.splice(0, taken);
      this.post(slot, { type: 'files', jobs });
    }
  }

  /**
   * An idle worker, else a new one (up to `size`), else, for a batch of files, the least busy worker
   * that runs only batches and holds fewer than `batchesAhead`; null when none fits.
   */
  private freeSlot(batch: boolean): Slot | null {
    let best: Slot | null = null;
    for (const s of this.slots) {
      if (s.busy === 0) return s;
      if (batch && !s.exclusive && s.busy < this.batchesAhead && (!best || s.busy < best.busy)) best = s;
    }
    if (this.slots.length < this.size && !this.failure) return this.startWorker();
    return best;
  }

  private post(slot: Slot, msg: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    slot.worker.postMessage(msg, transfer);
  }

  /** Feeds a stream to its worker, pausing while the worker has enough input queued. */
  private async pump(slot: Slot, q: QueuedStream): Promise<void> {
    this.post(slot, { type: 'stream-start', id: q.id });
    let total = 0;
    try {
      for await (const piece of q.stream) {
        if (!(piece instanceof Uint8Array)) throw new Error(`${q.what} yielded ${typeof piece} data; binary chunks expected`);
        if (piece.length === 0) continue;
        while (slot.inputOutstanding > 0 && slot.inputOutstanding + piece.length > STREAM_INPUT_BYTES) {
          await new Promise<void>((resolve) => { slot.inputWaiter = resolve; });
        }
        if (this.failure) throw this.failure;
        slot.inputOutstanding += piece.length;
        total += piece.length;
        // Copied into a buffer of its own and moved: the stream may reuse its buffer, and a cloned view
        // would carry the whole buffer behind it.
        const bytes = new Uint8Array(piece);
        this.post(slot, { type: 'stream-data', id: q.id, bytes }, [bytes.buffer]);
      }
      if (q.expectedSize !== undefined && total !== q.expectedSize) {
        throw new Error(`${q.what} gave ${total} bytes, ${q.expectedSize} expected`);
      }
      this.post(slot, { type: 'stream-end', id: q.id });
    } catch (err) {
      q.readError = err instanceof Error ? err : new Error(String(err));
      this.post(slot, { type: 'stream-end', id: q.id, abort: true });
    }
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    switch (reply.type) {
      case 'objects':
        this.uploadObjects(slot, reply.objects, reply.bytes);
        return;
      case 'cuts': {
        const q = this.running.get(reply.id);
        if (q?.kind === 'scan') q.onCuts(reply.cuts);
        return;
      }
      case 'consumed': {
        slot.inputOutstanding -= reply.bytes;
        const w = slot.inputWaiter;
        slot.inputWaiter = null;
        w?.();
        return;
      }
      case 'done':
        slot.exclusive = false;
        if (--slot.busy === 0) slot.worker.unref();
        for (const r of reply.results) this.finishJob(r);
        this.dispatch();
        return;
    }
  }

  private uploadObjects(slot: Slot, objects: Extract<WorkerReply, { type: 'objects' }>['objects'], bytes: number): void {
    if (!('upload' in this.sink)) return;
    this.inFlight += bytes;
    this.peakBytesInFlight = Math.max(this.peakBytesInFlight, this.inFlight);
    const started: Promise<void>[] = [];
    for (const o of objects) {
      const hash = new ContentHash(this.algorithm, Buffer.from(o.digest));
      const stored = Buffer.from(o.stored.buffer, o.stored.byteOffset, o.stored.byteLength);
      const p = this.sink.upload({ hash, suffix: o.suffix, key: hash.objectKey(o.suffix), stored });
      started.push(p);
      let list = this.uploads.get(o.job);
      if (!list) this.uploads.set(o.job, (list = []));
      list.push(p);
    }
    // Acknowledged when settled either way: a failed upload fails its job, not the worker.
    void Promise.allSettled(started).then(() => {
      this.inFlight -= bytes;
      slot.worker.postMessage({ type: 'ack', bytes } satisfies WorkerRequest);
    });
  }

  private finishJob(r: ContentOutcome | { id: number; error: string }): void {
    const q = this.running.get(r.id);
    if (!q) return;
    this.running.delete(r.id);
    const uploads = this.uploads.get(r.id) ?? [];
    this.uploads.delete(r.id);
    const what = q.kind === 'stream' ? q.what : q.job.path;
    if (q.kind === 'stream' && q.readError) {
      q.reject(q.readError);
      return;
    }
    if ('error' in r) {
      q.reject(new Error(`cannot read ${what}: ${r.error}`));
      return;
    }
    const content: CompressedContent = {
      hash: r.digest ? new ContentHash(this.algorithm, Buffer.from(r.digest)) : null,
      chunks: r.chunks.map((c) => ({ offset: c.offset, size: c.size, hash: new ContentHash(this.algorithm, Buffer.from(c.digest)) })),
      size: r.size,
      storedBytes: r.storedBytes,
      objects: { written: r.written, present: r.present, bytesWritten: r.bytesWritten, replaced: r.replaced },
    };
    // A filesystem store's workers wrote the objects themselves: nothing to wait for.
    if (uploads.length === 0) q.resolve(content);
    else Promise.all(uploads).then(() => q.resolve(content), (err: Error) => q.reject(err));
  }

  private fail(err: Error): void {
    this.failure = new Error(`compression worker failed: ${err.message}`);
    for (const q of [...this.running.values(), ...this.queue, ...this.pieces]) q.reject(this.failure);
    this.running.clear();
    this.queue.length = 0;
    this.pieces.length = 0;
    for (const s of this.slots) s.inputWaiter?.();
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
