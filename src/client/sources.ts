// Where a reader gets repository bytes: a URL (through HTTP caches or a CDN) or a directory, plus a
// small on-disk cache of content-addressed objects, which never change once written.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ObjectReader } from '../store/object-store.js';
import { FsStore } from '../store/fs-store.js';

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

/** Keeps `data/` objects on local disk; mutable top-level files always go to the source. */
export class CachedSource implements ObjectReader {
  readonly description: string;
  hits = 0;

  constructor(private readonly inner: ObjectReader, private readonly dir: string) {
    this.description = inner.description;
  }

  async get(key: string): Promise<{ body: Buffer } | null> {
    if (!key.startsWith('data/')) return this.inner.get(key);
    const path = join(this.dir, key);
    try {
      const body = await readFile(path);
      this.hits++;
      return { body };
    } catch {
      // not cached yet
    }
    const got = await this.inner.get(key);
    if (got) {
      // Callers verify hashes on every read, so a bad cached copy is caught, not trusted.
      const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await mkdir(join(this.dir, key, '..'), { recursive: true });
        await writeFile(tmp, got.body);
        await rename(tmp, path);
      } catch {
        // A cache that cannot be written only costs speed.
      }
    }
    return got;
  }
}

/** A URL (http:// or https://) or a directory holding a repository as a web server serves it. */
export function openSource(location: string, cacheDir?: string): ObjectReader {
  const source: ObjectReader = /^https?:\/\//.test(location) ? new HttpSource(location) : new FsStore(location);
  return cacheDir ? new CachedSource(source, cacheDir) : source;
}
