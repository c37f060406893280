// Objects in data/ are zlib streams named by the hash of the compressed bytes (spec §2).
import { deflate, deflateSync, inflateSync, constants } from 'node:zlib';
import { promisify } from 'node:util';
import { ContentHash, type HashAlgorithm, type ObjectSuffix } from './hash.js';
import { MAX_STOCK_DEFLATE_INPUT, stockDeflate } from './stock-deflate.js';

/** The 8-byte zlib stream of empty input that every zero-byte file references. */
export const EMPTY_OBJECT = Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);

const DEFLATE_OPTIONS = { level: 6, windowBits: 15, memLevel: 8, strategy: constants.Z_DEFAULT_STRATEGY };
/**
 * On the thread pool, Node's zlib hands each full output buffer back to the main thread before it goes
 * on: with the default 16 KiB, a catalog of tens of MB made thousands of round trips and compressed at
 * about one core's speed however many ran at once. The output bytes do not depend on the buffer size.
 */
const ASYNC_DEFLATE_OPTIONS = { ...DEFLATE_OPTIONS, chunkSize: 1 << 20 };
const deflateAsync = promisify(deflate);

export function compressObject(data: Uint8Array): Buffer {
  if (data.length === 0) return Buffer.from(EMPTY_OBJECT);
  return deflateSync(data, DEFLATE_OPTIONS);
}

/** The same bytes as prepareObject, compressed on the thread pool: several run in parallel. */
export async function prepareObjectAsync(algorithm: HashAlgorithm, data: Uint8Array, suffix: ObjectSuffix): Promise<PreparedObject> {
  if (STOCK_RECOMPRESSED.has(suffix) || data.length === 0) return prepareObject(algorithm, data, suffix);
  const stored = await deflateAsync(data, ASYNC_DEFLATE_OPTIONS);
  const hash = ContentHash.of(algorithm, stored);
  return { hash, suffix, key: hash.objectKey(suffix), stored };
}

export function decompressObject(stored: Uint8Array, what = 'object'): Buffer {
  try {
    return inflateSync(stored);
  } catch (err) {
    throw new Error(`${what} is not a valid zlib stream: ${(err as Error).message}`);
  }
}

export interface PreparedObject {
  hash: ContentHash;
  suffix: ObjectSuffix;
  key: string;
  /** The bytes to store: compressed, and what the hash covers. */
  stored: Buffer;
}

/**
 * Objects a stock tool rebuilds from their content under their old name: `cvmfs_swissknife pull`
 * re-compresses the certificate and the meta-info with stock zlib (swissknife_pull.cc, StoreBuffer with
 * compress=true), so ours must be stock zlib's bytes exactly (stock-deflate.ts).
 */
export const STOCK_RECOMPRESSED: ReadonlySet<ObjectSuffix> = new Set<ObjectSuffix>(['X', 'M']);

/** Compressed as stock zlib does it (small objects: certificates, meta-info); Node's zlib beyond that. */
export function compressStockIdentical(data: Uint8Array): Buffer {
  return data.length <= MAX_STOCK_DEFLATE_INPUT ? stockDeflate(data) : compressObject(data);
}

export function prepareObject(algorithm: HashAlgorithm, data: Uint8Array, suffix: ObjectSuffix): PreparedObject {
  const stored = STOCK_RECOMPRESSED.has(suffix) ? compressStockIdentical(data) : compressObject(data);
  const hash = ContentHash.of(algorithm, stored);
  return { hash, suffix, key: hash.objectKey(suffix), stored };
}

/** Checks stored bytes against the name they were fetched under; throws naming the key. */
export function verifyObject(key: string, hash: ContentHash, stored: Uint8Array): void {
  const actual = ContentHash.of(hash.algorithm, stored);
  if (!actual.equals(hash)) {
    throw new Error(`corrupt object ${key}: content hashes to ${actual.toHex()}`);
  }
}
