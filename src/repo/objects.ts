// Reading content-addressed objects from a store, always checked against their names.
import { RefusedError } from '../errors.js';
import type { ObjectReader } from '../store/object-store.js';
import { ContentHash, type ObjectSuffix } from '../format/hash.js';
import { decompressObject, verifyObject } from '../format/zlib-object.js';
import { CatalogDb } from '../format/catalog-db.js';

export class MissingObjectError extends RefusedError {
  constructor(readonly key: string) {
    super('missing-object', `object ${key} is missing from the store`);
    this.name = 'MissingObjectError';
  }
}

/** The stored (compressed) bytes of an object, verified against its hash. */
export async function fetchStoredObject(store: ObjectReader, hash: ContentHash, suffix: ObjectSuffix): Promise<Buffer> {
  const key = hash.objectKey(suffix);
  const got = await store.get(key);
  if (!got) throw new MissingObjectError(key);
  verifyObject(key, hash, got.body);
  return got.body;
}

/** The inflated content of an object, verified against its hash. */
export async function fetchObjectContent(store: ObjectReader, hash: ContentHash, suffix: ObjectSuffix): Promise<Buffer> {
  return decompressObject(await fetchStoredObject(store, hash, suffix), `object ${hash.objectKey(suffix)}`);
}

/** A catalog, verified, opened in memory or (with `file`) in a scratch file. */
export async function fetchCatalog(store: ObjectReader, hash: ContentHash, file?: string): Promise<{ db: CatalogDb; size: number }> {
  const bytes = await fetchObjectContent(store, hash, 'C');
  try {
    return { db: CatalogDb.fromBytes(bytes, file), size: bytes.length };
  } catch (err) {
    throw new Error(`catalog ${hash.objectKey('C')}: ${(err as Error).message}`);
  }
}
