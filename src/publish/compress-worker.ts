// Worker thread: reads files (or receives the bytes of a stream) in bounded blocks, cuts them into
// content-defined chunks (spec §3), compresses each chunk as its own object and hashes the compressed
// bytes, so that every core compresses while the main thread walks the tree and uploads.
// Memory per worker: one read block, one chunk (at most the maximum chunk size) and its compressed
// form, plus what the upload budget allows to be in flight.
import { parentPort, workerData } from 'node:worker_threads';
import { closeSync } from 'node:fs';
import { compressObject } from '../format/zlib-object.js';
import { ContentHash, digestOf, type HashAlgorithm } from '../format/hash.js';
import { ChunkSplitter, Xor32Chunker, type ChunkingParameters } from '../format/chunker.js';
import { checkUnchanged, describeReadError as describe, openScanned, readFully, readWholeFile, writeToFsStore, type FileJob, type FsWriteCounts } from './compress-job.js';

export type { FileJob } from './compress-job.js';

export interface WorkerSetup {
  algorithm: HashAlgorithm;
  /** null: every file is one object. */
  chunking: ChunkingParameters | null;
  /** A filesystem store's root: the worker writes objects itself instead of sending them back. */
  fsStoreRoot?: string;
  /**
   * With fsStoreRoot: compare an object that is already there with the bytes it should hold, and replace
   * it if they differ (the owner's publish; a writer's objects are checked by the commit function).
   */
  verifyPresent?: boolean;
  /** Compressed bytes this worker may have sent back and not had acknowledged as uploaded. */
  bytesInFlight: number;
}

export type WorkerRequest =
  | { type: 'files'; jobs: FileJob[] }
  /** Finds a large file's chunk cuts (reported as 'cuts' while it reads) without compressing anything. */
  | { type: 'scan'; job: FileJob }
  | { type: 'stream-start'; id: number }
  | { type: 'stream-data'; id: number; bytes: Uint8Array }
  | { type: 'stream-end'; id: number; abort?: boolean }
  /** The pool has uploaded this many of the bytes sent back. */
  | { type: 'ack'; bytes: number };

/** An object for the main thread to upload (only without a filesystem store). */
export interface EmittedObject {
  job: number;
  suffix: '' | 'P';
  digest: Uint8Array;
  stored: Uint8Array;
}

export interface ContentOutcome extends FsWriteCounts {
  id: number;
  size: number;
  /** Digest of the single object; null when the content was chunked. */
  digest: Uint8Array | null;
  chunks: { offset: number; size: number; digest: Uint8Array }[];
  storedBytes: number;
}

export type WorkerReply =
  | { type: 'objects'; objects: EmittedObject[]; bytes: number }
  /** Input bytes of a stream taken in, so the pool may send more. */
  | { type: 'consumed'; id: number; bytes: number }
  /** Cut offsets a scan found in the block it just read, ascending. */
  | { type: 'cuts'; id: number; cuts: number[] }
  | { type: 'done'; results: (ContentOutcome | { id: number; error: string })[] };

const READ_BLOCK = 2 << 20;
/** Small objects travel back together; per-message overhead dominates for small files. */
const FLUSH_BYTES = 1 << 20;

const setup = workerData as WorkerSetup;
const port = parentPort!;

let outstanding = 0;
let wake: (() => void) | null = null;
let pending: EmittedObject[] = [];
let pendingBytes = 0;

async function flush(): Promise<void> {
  if (pending.length === 0) return;
  const objects = pending;
  const bytes = pendingBytes;
  pending = [];
  pendingBytes = 0;
  // Backpressure: wait for uploads to catch up; one message alone may always go.
  while (outstanding > 0 && outstanding + bytes > setup.bytesInFlight) {
    await new Promise<void>((resolve) => { wake = resolve; });
  }
  outstanding += bytes;
  const transfer: ArrayBuffer[] = [];
  for (const o of objects) {
    if (o.stored.byteOffset === 0 && o.stored.byteLength === o.stored.buffer.byteLength) transfer.push(o.stored.buffer as ArrayBuffer);
  }
  port.postMessage({ type: 'objects', objects, bytes } satisfies WorkerReply, transfer);
}

/** One file's or stream's content on its way to objects. */
class ContentJob {
  private readonly splitter: ChunkSplitter | null;
  private readonly whole: Uint8Array[] = [];
  readonly outcome: ContentOutcome;

  /** `size`: when known and no larger than the minimum chunk, the content cannot be cut (small files skip the scan). */
  constructor(readonly id: number, size?: number) {
    const cuttable = setup.chunking !== null && (size === undefined || size > setup.chunking.minSize);
    this.splitter = cuttable ? new ChunkSplitter(setup.chunking!) : null;
    this.outcome = { id, size: 0, digest: null, chunks: [], storedBytes: 0, written: 0, present: 0, bytesWritten: 0, replaced: [] };
  }

  async push(block: Uint8Array): Promise<void> {
    this.outcome.size += block.length;
    if (!this.splitter) {
      this.whole.push(block);
      return;
    }
    for (const chunk of this.splitter.push(block)) {
      const size = chunk.pieces.reduce((n, p) => n + p.length, 0);
      const digest = await this.storeObject(chunk.pieces, 'P');
      this.outcome.chunks.push({ offset: chunk.offset, size, digest });
    }
  }

  async finish(): Promise<ContentOutcome> {
    if (!this.splitter) {
      this.outcome.digest = await this.storeObject(this.whole, '');
    } else {
      const last = this.splitter.finish();
      if (!last.chunked) {
        // One piece: an ordinary object (spec §3.1 step 3).
        this.outcome.digest = await this.storeObject(last.pieces, '');
      } else {
        const size = last.pieces.reduce((n, p) => n + p.length, 0);
        const digest = await this.storeObject(last.pieces, 'P');
        this.outcome.chunks.push({ offset: last.offset, size, digest });
      }
    }
    return this.outcome;
  }

  /** Compresses and hashes one object, then writes it (filesystem store) or queues it for the pool. */
  async storeObject(pieces: Uint8Array[], suffix: '' | 'P'): Promise<Uint8Array> {
    const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const stored = compressObject(data);
    const digest = digestOf(setup.algorithm, stored);
    this.outcome.storedBytes += stored.length;
    if (setup.fsStoreRoot !== undefined) {
      const key = new ContentHash(setup.algorithm, digest).objectKey(suffix);
      writeToFsStore(setup.fsStoreRoot, setup.algorithm, setup.verifyPresent === true, key, stored, this.outcome);
    } else {
      pending.push({ job: this.id, suffix, digest, stored });
      pendingBytes += stored.length;
      // Chunks are large: send each at once so uploads start while the next is compressed.
      if (suffix === 'P' || pendingBytes >= FLUSH_BYTES) await flush();
    }
    return digest;
  }
}

async function compressFile(job: FileJob): Promise<ContentOutcome> {
  if (job.size <= READ_BLOCK && !job.range) {
    const content = new ContentJob(job.id, job.size);
    await content.push(readWholeFile(job));
    return await content.finish();
  }
  const fd = openScanned(job.path);
  try {
    // A piece's file was read once already, by the scan of its cuts.
    if (job.range) {
      checkUnchanged(fd, job, 'file changed while it was read');
      return await compressRange(fd, job, job.range);
    }
    checkUnchanged(fd, job, 'file changed after it was scanned');
    const content = new ContentJob(job.id, job.size);
    let off = 0;
    while (off < job.size) {
      // A fresh block each time: finished chunks may still hold slices of the previous ones.
      const want = Math.min(READ_BLOCK, job.size - off);
      const block = Buffer.allocUnsafe(want);
      readFully(fd, block, off);
      off += want;
      await content.push(block);
    }
    checkUnchanged(fd, job, 'file changed while it was read');
    return await content.finish();
  } finally {
    closeSync(fd);
  }
}

/** One piece of a large file (at most the maximum chunk size) as one object; the scan read it before. */
async function compressRange(fd: number, job: FileJob, range: NonNullable<FileJob['range']>): Promise<ContentOutcome> {
  const bytes = Buffer.allocUnsafe(range.length);
  readFully(fd, bytes, range.offset);
  checkUnchanged(fd, job, 'file changed while it was read');
  const content = new ContentJob(job.id, 0);
  content.outcome.size = range.length;
  content.outcome.digest = await content.storeObject([bytes], range.suffix);
  return content.outcome;
}

/** Reads a file through the chunker alone: the cuts go back as they are found, for the pool to hand out. */
function scanFile(job: FileJob): ContentOutcome {
  const fd = openScanned(job.path);
  try {
    checkUnchanged(fd, job, 'file changed after it was scanned');
    const chunker = new Xor32Chunker(setup.chunking!);
    // One block reused: the chunker keeps no reference to the bytes.
    const block = Buffer.allocUnsafe(Math.min(READ_BLOCK, job.size));
    for (let off = 0; off < job.size;) {
      const piece = block.subarray(0, Math.min(block.length, job.size - off));
      readFully(fd, piece, off);
      off += piece.length;
      const cuts = chunker.push(piece);
      if (cuts.length > 0) port.postMessage({ type: 'cuts', id: job.id, cuts } satisfies WorkerReply);
    }
    checkUnchanged(fd, job, 'file changed while it was read');
    return { id: job.id, size: job.size, digest: null, chunks: [], storedBytes: 0, written: 0, present: 0, bytesWritten: 0, replaced: [] };
  } finally {
    closeSync(fd);
  }
}

async function compressFiles(jobs: FileJob[]): Promise<void> {
  const results: (ContentOutcome | { id: number; error: string })[] = [];
  for (const job of jobs) {
    try {
      results.push(await compressFile(job));
    } catch (err) {
      pending = pending.filter((o) => o.job !== job.id);
      pendingBytes = pending.reduce((n, o) => n + o.stored.length, 0);
      results.push({ id: job.id, error: describe(err) });
    }
  }
  await flush();
  port.postMessage({ type: 'done', results } satisfies WorkerReply);
}

const streams = new Map<number, { content: ContentJob; error: string | null }>();

async function handle(msg: WorkerRequest): Promise<void> {
  switch (msg.type) {
    case 'files':
      return compressFiles(msg.jobs);
    case 'scan': {
      let result: ContentOutcome | { id: number; error: string };
      try {
        result = scanFile(msg.job);
      } catch (err) {
        result = { id: msg.job.id, error: describe(err) };
      }
      port.postMessage({ type: 'done', results: [result] } satisfies WorkerReply);
      return;
    }
    case 'stream-start':
      streams.set(msg.id, { content: new ContentJob(msg.id), error: null });
      return;
    case 'stream-data': {
      const s = streams.get(msg.id);
      if (s && s.error === null) {
        try {
          await s.content.push(msg.bytes);
        } catch (err) {
          s.error = describe(err);
        }
      }
      port.postMessage({ type: 'consumed', id: msg.id, bytes: msg.bytes.length } satisfies WorkerReply);
      return;
    }
    case 'stream-end': {
      const s = streams.get(msg.id);
      streams.delete(msg.id);
      let result: ContentOutcome | { id: number; error: string };
      if (!s || msg.abort) result = { id: msg.id, error: 'stream aborted' };
      else if (s.error !== null) result = { id: msg.id, error: s.error };
      else {
        try {
          result = await s.content.finish();
        } catch (err) {
          result = { id: msg.id, error: describe(err) };
        }
      }
      await flush();
      port.postMessage({ type: 'done', results: [result] } satisfies WorkerReply);
      return;
    }
    case 'ack':
      return;
  }
}

let chain = Promise.resolve();
port.on('message', (msg: WorkerRequest) => {
  // Acks are taken at once: the job in progress may be waiting for them.
  if (msg.type === 'ack') {
    outstanding -= msg.bytes;
    const w = wake;
    wake = null;
    w?.();
    return;
  }
  chain = chain.then(() => handle(msg)).catch((err: unknown) => {
    // A bug, not bad input: let the pool fail loudly.
    setImmediate(() => { throw err; });
  });
});
