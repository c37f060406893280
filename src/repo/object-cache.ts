// A local on-disk copy of content-addressed objects (`data/…`), which never change once written. The
// reader uses it to avoid refetching, and the writer to keep the catalogs it read or wrote, so that an
// incremental publish reads from the store only the catalogs it has never seen: its store requests
// follow the change, not the size of the repository. Every read is still verified against the object's
// name by the caller, so a damaged cached copy is caught, never trusted.
import { mkdir, readFile, readdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import type { ObjectReader } from '../store/object-store.js';

/** `$XDG_CACHE_HOME/scvmfs` or `~/.cache/scvmfs`. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'scvmfs');
}

export class CachedSource implements ObjectReader {
  readonly description: string;
  hits = 0;

  constructor(private readonly inner: ObjectReader, readonly dir: string) {
    this.description = inner.description;
  }

  async get(key: string): Promise<{ body: Buffer } | null> {
    if (!key.startsWith('data/')) return this.inner.get(key);
    const path = join(this.dir, key);
    try {
      const body = await readFile(path);
      this.hits++;
      // The modification time orders copies for pruning: recently used ones stay.
      const now = new Date();
      await utimes(path, now, now).catch(() => {});
      return { body };
    } catch {
      // not cached yet
    }
    const got = await this.inner.get(key);
    if (got) await this.put(key, got.body);
    return got;
  }

  /** Keeps a copy of an object this process wrote itself. */
  async put(key: string, body: Uint8Array): Promise<void> {
    if (!key.startsWith('data/')) return;
    const path = join(this.dir, key);
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(join(this.dir, key, '..'), { recursive: true });
      await writeFile(tmp, body);
      await rename(tmp, path);
    } catch {
      // A cache that cannot be written only costs speed.
      await unlink(tmp).catch(() => {});
    }
  }

  /** Removes the least recently used copies until the cache holds at most `maxBytes`. */
  async prune(maxBytes: number): Promise<{ removed: number; bytes: number }> {
    const files: { path: string; size: number; mtime: number }[] = [];
    const data = join(this.dir, 'data');
    for (const sub of await readdir(data).catch(() => [] as string[])) {
      for (const name of await readdir(join(data, sub)).catch(() => [] as string[])) {
        const path = join(data, sub, name);
        const st = await stat(path).catch(() => null);
        if (st?.isFile()) files.push({ path, size: st.size, mtime: st.mtimeMs });
      }
    }
    let total = files.reduce((n, f) => n + f.size, 0);
    let removed = 0;
    files.sort((a, b) => a.mtime - b.mtime);
    for (const f of files) {
      if (total <= maxBytes) break;
      await unlink(f.path).catch(() => {});
      total -= f.size;
      removed++;
    }
    return { removed, bytes: total };
  }
}
