// Worker thread: reads files, compresses them as objects and hashes the compressed bytes, so that
// every core compresses while the main thread walks the tree and uploads.
import { parentPort } from 'node:worker_threads';
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { compressObject } from '../format/zlib-object.js';
import { ContentHash, createHasher, type HashAlgorithm } from '../format/hash.js';
import { putContentAddressedSync } from '../store/fs-store.js';

export interface CompressJob {
  id: number;
  path: string;
  /** Size and mtime seen by the scan: a file that differs when read is changing under us. */
  size: number;
  mtimeNs: bigint;
}

export interface CompressBatch {
  algorithm: HashAlgorithm;
  jobs: CompressJob[];
  /** A filesystem store's root: the worker writes objects itself instead of sending them back. */
  fsStoreRoot?: string;
}

export type CompressResult =
  | { id: number; digest: Uint8Array; stored: Uint8Array }
  | { id: number; digest: Uint8Array; storedSize: number; written: boolean }
  | { id: number; error: string };

function readWhole(job: CompressJob): Buffer {
  const fd = openSync(job.path, 'r');
  try {
    const before = fstatSync(fd, { bigint: true });
    if (before.size !== BigInt(job.size) || before.mtimeNs !== job.mtimeNs) throw new Error('file changed after it was scanned');
    const buf = Buffer.allocUnsafe(job.size);
    let off = 0;
    while (off < job.size) {
      const n = readSync(fd, buf, off, job.size - off, off);
      if (n === 0) break;
      off += n;
    }
    const after = fstatSync(fd, { bigint: true });
    if (off !== job.size || after.size !== BigInt(job.size) || after.mtimeNs !== job.mtimeNs) {
      throw new Error('file changed while it was read');
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'ENOENT') return 'file disappeared during the publish';
  return e.message ?? String(err);
}

parentPort!.on('message', (batch: CompressBatch) => {
  const results: CompressResult[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const job of batch.jobs) {
    try {
      const stored = compressObject(readWhole(job));
      const digest = createHasher(batch.algorithm).update(stored).digest();
      if (batch.fsStoreRoot !== undefined) {
        const written = putContentAddressedSync(batch.fsStoreRoot, new ContentHash(batch.algorithm, digest).objectKey(''), stored);
        results.push({ id: job.id, digest, storedSize: stored.length, written });
        continue;
      }
      results.push({ id: job.id, digest, stored });
      if (stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength) transfer.push(stored.buffer as ArrayBuffer);
    } catch (err) {
      results.push({ id: job.id, error: describe(err) });
    }
  }
  parentPort!.postMessage(results, transfer);
});
