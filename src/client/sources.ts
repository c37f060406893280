// Where a reader gets repository bytes: a URL (through HTTP caches or a CDN), a directory or an s3://
// store, plus a small on-disk cache of content-addressed objects, which never change once written.
import type { ObjectReader, ObjectStore } from '../store/object-store.js';
import { FsStore } from '../store/fs-store.js';
import { openStore } from '../store/open-store.js';
import { CachedSource } from '../repo/object-cache.js';

export { CachedSource };

export class HttpSource implements ObjectReader {
  readonly description: string;
  requests = 0;
  private readonly base: string;

  /** `revalidate`: ask HTTP caches on the way to check with the origin instead of answering from a copy. */
  constructor(url: string, private readonly options: { revalidate?: boolean } = {}) {
    this.base = url.replace(/\/+$/, '');
    this.description = this.base;
  }

  async get(key: string): Promise<{ body: Buffer } | null> {
    this.requests++;
    let res: Response;
    try {
      res = await fetch(`${this.base}/${key}`, this.options.revalidate ? { headers: { 'Cache-Control': 'no-cache', Pragma: 'no-cache' } } : undefined);
    } catch (err) {
      throw new Error(`cannot fetch ${this.base}/${key}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
    }
    if (res.status === 404) {
      await res.arrayBuffer().catch(() => undefined);
      return null;
    }
    if (res.status !== 200) throw new Error(`fetching ${this.base}/${key}: HTTP ${res.status} ${res.statusText}`);
    return { body: Buffer.from(await res.arrayBuffer()) };
  }
}

/** An object store seen through its read side only: a reader has no business writing. */
class StoreSource implements ObjectReader {
  readonly description: string;

  constructor(private readonly store: ObjectStore) {
    this.description = store.description;
  }

  get(key: string): Promise<{ body: Buffer } | null> {
    return this.store.get(key);
  }
}

function isUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

function openUncached(location: string, revalidate: boolean): ObjectReader {
  if (isUrl(location)) return new HttpSource(location, { revalidate });
  if (/^(s3|file):\/\//i.test(location)) return new StoreSource(openStore(location));
  return new FsStore(location);
}

/** A URL (http:// or https://), an s3:// store, or a directory (or file:// URL) holding a repository as a web server serves it. */
export function openSource(location: string, cacheDir?: string): ObjectReader {
  const source = openUncached(location, false);
  return cacheDir ? new CachedSource(source, cacheDir) : source;
}

/** The same locations read from the store itself: no local cache, and HTTP caches asked to revalidate. */
export function openStoreSource(location: string): ObjectReader {
  return openUncached(location, true);
}
