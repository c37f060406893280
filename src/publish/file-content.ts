// Turning a source file into catalog content: compressed (and chunked when large) by the pool, its
// objects stored, and the entry given its hash or chunk list. Shared by the owner's publish and the
// serverless writer so that both record files identically.
import type { ObjectStore } from '../store/object-store.js';
import { directFsRoot } from '../store/fs-store.js';
import type { HashAlgorithm } from '../format/hash.js';
import { FLAG, type DirectoryEntry } from '../format/catalog-entry.js';
import type { FileChunk } from '../format/catalog-db.js';
import type { ChunkingParameters } from '../format/chunker.js';
import type { PreparedObject } from '../format/zlib-object.js';
import type { Readable } from 'node:stream';
import { CompressPool, type CompressedContent } from './compress-pool.js';
import type { ObjectUploader } from './uploader.js';

/**
 * Workers write straight into a filesystem store; for other stores, or when `viaUploader` says so, they
 * hand objects to the uploader. `trustPresent`: workers take objects already there on trust (a writer
 * whose commit function checks them); otherwise they compare them and replace bad ones (the owner).
 */
export function compressPoolFor(store: ObjectStore, uploader: ObjectUploader, algorithm: HashAlgorithm,
  options: { workers?: number; chunking?: Partial<ChunkingParameters> | false; viaUploader?: boolean; trustPresent?: boolean }): CompressPool {
  const root = options.viaUploader ? undefined : directFsRoot(store);
  return new CompressPool({
    algorithm, workers: options.workers, chunking: options.chunking,
    sink: root !== undefined ? { fsStoreRoot: root, verifyPresent: !options.trustPresent } : { upload: (o) => uploader.upload(o) },
  });
}

export interface FileContent {
  entry: DirectoryEntry;
  chunks: FileChunk[];
  /** Bytes read from the source (0 for an empty file). */
  bytesRead: number;
}

/** Compresses and stores one file; the entry comes back with its hash, or chunk flag and algorithm. */
export async function storeFileContent(pool: CompressPool, uploader: ObjectUploader, empty: PreparedObject,
  source: string, entry: DirectoryEntry, mtimeNs: bigint): Promise<FileContent> {
  if (entry.size === 0) return emptyContent(uploader, empty, entry);
  return asContent(pool, uploader, entry, await pool.compress(source, entry.size, mtimeNs));
}

/**
 * The same for content that arrives as a stream of `entry.size` bytes (a tarball member): read as fast
 * as compression and uploads keep up, never held whole. An empty entry's stream is not read at all.
 */
export async function storeStreamContent(pool: CompressPool, uploader: ObjectUploader, empty: PreparedObject,
  stream: Readable, entry: DirectoryEntry, what: string): Promise<FileContent> {
  if (entry.size === 0) return emptyContent(uploader, empty, entry);
  return asContent(pool, uploader, entry, await pool.compressStream(stream, { expectedSize: entry.size, what }));
}

async function emptyContent(uploader: ObjectUploader, empty: PreparedObject, entry: DirectoryEntry): Promise<FileContent> {
  await uploader.upload(empty);
  return { entry: { ...entry, hash: empty.hash, extraFlags: entry.extraFlags & ~FLAG.chunked }, chunks: [], bytesRead: 0 };
}

function asContent(pool: CompressPool, uploader: ObjectUploader, entry: DirectoryEntry, c: CompressedContent): FileContent {
  uploader.recordObjects(c.objects);
  if (c.chunks.length > 0) {
    return {
      entry: { ...entry, hash: null, extraFlags: entry.extraFlags | FLAG.chunked, chunkAlgorithm: pool.algorithm },
      chunks: c.chunks, bytesRead: entry.size,
    };
  }
  return { entry: { ...entry, hash: c.hash, extraFlags: entry.extraFlags & ~FLAG.chunked }, chunks: [], bytesRead: entry.size };
}
