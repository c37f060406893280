// Where a reader gets repository bytes: a URL (through HTTP caches or a CDN) or a directory, plus a
// small on-disk cache of content-addressed objects, which never change once written.
import type { ObjectReader } from '../store/object-store.js';
import { FsStore } from '../store/fs-store.js';
import { CachedSource } from '../repo/object-cache.js';

export { CachedSource };

export class HttpSource implements ObjectReader {
  readonly description: string;
  requests = 0;
  private readonly base: string;

  constructor(url: string) {
    this.base = url.replace(/\/+$/, '');
    this.description = this.base;
  }

  async get(key: string): Promise<{ body: Buffer } | null> {
    this.requests++;
    let res: Response;
    try {
      res = await fetch(`${this.base}/${key}`);
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

/** A URL (http:// or https://) or a directory holding a repository as a web server serves it. */
export function openSource(location: string, cacheDir?: string): ObjectReader {
  const source: ObjectReader = /^https?:\/\//.test(location) ? new HttpSource(location) : new FsStore(location);
  return cacheDir ? new CachedSource(source, cacheDir) : source;
}
