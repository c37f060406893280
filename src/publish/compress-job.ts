// What a compress worker does to one file, in pieces that the pool can also run on its own thread: a
// publish of a few small files then starts no worker at all (a worker thread costs about 100 ms of CPU
// to start, more than compressing the files takes).
import { constants, openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ContentHash, createHasher, type HashAlgorithm } from '../format/hash.js';
import { holdsBytesSync, putContentAddressedSync } from '../store/fs-store.js';
import type { WorkerObjects } from './uploader.js';

export interface FileJob {
  id: number;
  path: string;
  /** Size and mtime seen by the scan: a file that differs when read is changing under us. */
  size: number;
  mtimeNs: bigint;
  /**
   * Only these bytes of the file, as one object with this suffix: a piece of a large file whose cuts a
   * scan found, so that one file's chunks compress on every worker.
   */
  range?: { offset: number; length: number; suffix: '' | 'P' };
}

/** What writing objects into a filesystem store did, counted per job (the uploader's record, always with its list). */
export type FsWriteCounts = Required<WorkerObjects>;

/**
 * Opens a file the scan saw as a regular file. A symbolic link put in its place since is not followed
 * (its target could be any file this process may read); the size and mtime check catches the rest.
 */
export function openScanned(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
}

export function checkUnchanged(fd: number, job: FileJob, message: string): void {
  const st = fstatSync(fd, { bigint: true });
  if (st.size !== BigInt(job.size) || st.mtimeNs !== job.mtimeNs) throw new Error(message);
}

export function readFully(fd: number, into: Uint8Array, position: number): void {
  for (let got = 0; got < into.length;) {
    const n = readSync(fd, into, got, into.length - got, position + got);
    if (n === 0) throw new Error('file changed while it was read (it became shorter)');
    got += n;
  }
}

/**
 * A whole file read in one piece, checked once after the read: a change made before it shows there as
 * well, and one stat per file is measurable on trees of small files.
 */
export function readWholeFile(job: FileJob): Buffer {
  const fd = openScanned(job.path);
  try {
    const bytes = Buffer.allocUnsafe(job.size);
    readFully(fd, bytes, 0);
    checkUnchanged(fd, job, 'file changed after it was scanned');
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes one compressed object into a filesystem store unless it is there; with `verifyPresent`, an
 * object already there with other bytes is replaced and reported.
 */
export function writeToFsStore(root: string, algorithm: HashAlgorithm, verifyPresent: boolean, key: string,
  stored: Uint8Array, counts: FsWriteCounts): void {
  let written = putContentAddressedSync(root, key, stored);
  if (!written && verifyPresent && !holdsBytesSync(root, key, stored)) {
    const actual = actualHash(root, key, algorithm);
    written = putContentAddressedSync(root, key, stored, true);
    counts.replaced.push({ key, actual });
  }
  if (written) {
    counts.written++;
    counts.bytesWritten += stored.length;
  } else {
    counts.present++;
  }
}

/** A read failure as the publish reports it. */
export function describeReadError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'ENOENT') return 'file disappeared during the publish';
  if (e.code === 'ELOOP') return 'file changed after it was scanned (it is a symbolic link now)';
  return e.message ?? String(err);
}

/** What the bytes under a key hash to, for the report of a replaced object. */
function actualHash(root: string, key: string, algorithm: HashAlgorithm): string {
  let fd: number;
  try {
    fd = openSync(join(root, key), 'r');
  } catch {
    return 'unreadable';
  }
  try {
    const hasher = createHasher(algorithm);
    const piece = Buffer.alloc(1 << 20);
    for (let n; (n = readSync(fd, piece, 0, piece.length, null)) > 0;) hasher.update(piece.subarray(0, n));
    return new ContentHash(algorithm, hasher.digest()).toHex();
  } finally {
    closeSync(fd);
  }
}
