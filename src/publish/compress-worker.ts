// Worker thread: reads files, compresses them as objects and hashes the compressed bytes, so that
// every core compresses while the main thread walks the tree and uploads.
import { parentPort } from 'node:worker_threads';
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { compressObject } from '../format/zlib-object.js';
import { createHasher, type HashAlgorithm } from '../format/hash.js';

export interface CompressJob {
  id: number;
  path: string;
  /** Size and mtime seen by the scan: a file that differs when read is changing under us. */
  size: number;
  mtimeMs: number;
}

export interface CompressBatch {
  algorithm: HashAlgorithm;
  jobs: CompressJob[];
}

export type CompressResult =
  | { id: number; digest: Uint8Array; stored: Uint8Array }
  | { id: number; error: string };

function readWhole(job: CompressJob): Buffer {
  const fd = openSync(job.path, 'r');
  try {
    const before = fstatSync(fd);
    if (before.size !== job.size || before.mtimeMs !== job.mtimeMs) throw new Error('file changed after it was scanned');
    const buf = Buffer.allocUnsafe(job.size);
    let off = 0;
    while (off < job.size) {
      const n = readSync(fd, buf, off, job.size - off, off);
      if (n === 0) break;
      off += n;
    }
    const after = fstatSync(fd);
    if (off !== job.size || after.size !== job.size || after.mtimeMs !== job.mtimeMs) {
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
      results.push({ id: job.id, digest, stored });
      if (stored.byteOffset === 0 && stored.byteLength === stored.buffer.byteLength) transfer.push(stored.buffer as ArrayBuffer);
    } catch (err) {
      results.push({ id: job.id, error: describe(err) });
    }
  }
  parentPort!.postMessage(results, transfer);
});
