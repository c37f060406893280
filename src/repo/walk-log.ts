// A catalog walk that outlives its sandbox. Each step of a chain logs what its walk added as one
// immutable segment object (gzip'd JSON) under the chain's prefix, and names it in the chain state it
// writes with compare-and-swap: the state lists exactly the segments of the winning deliveries, so a
// losing delivery's segment is never replayed. A sandbox that still holds the walk file of the same
// segment list (a warm one) goes on from it; any other replays the segments into a fresh file. Uploading
// only what each step added keeps the whole walk's traffic proportional to its size.
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ObjectStore } from '../store/object-store.js';
import { CatalogWalk, type WalkDelta } from './catalog-walk.js';

const LOG_META = 'segments';

/**
 * The sandbox's own file for the walk: two deliveries running at once on one host (as the local runtime
 * delivers twice) must never share one, or one's save could log away rows the other never reports.
 */
function localFile(prefix: string, dir: string): string {
  return join(dir, `scvmfs-walk-${prefix.replace(/[^A-Za-z0-9_-]+/g, '_')}-${process.pid}-${threadId}.db`);
}

/**
 * The walk whose state is `segments` (as the chain state lists them) under `prefix`. `dir` is the
 * sandbox's scratch directory (default: the OS temporary directory, /tmp on Lambda).
 */
export async function openChainWalk(store: ObjectStore, prefix: string, segments: readonly string[], dir = process.env.SCVMFS_SCRATCH ?? tmpdir()): Promise<CatalogWalk> {
  const file = localFile(prefix, dir);
  if (existsSync(file)) {
    const walk = CatalogWalk.open(file);
    const held = JSON.parse(walk.meta(LOG_META) ?? '[]') as string[];
    // A file whose segment list is a prefix of the state's is this chain's, from a winning delivery.
    if (held.length <= segments.length && held.every((s, i) => s === segments[i])) {
      await replay(store, prefix, walk, segments.slice(held.length));
      walk.setMeta(LOG_META, JSON.stringify(segments));
      return walk;
    }
    // The file holds a superseded delivery's work (or another walk's): start again from the log.
    walk.close();
    removeWalkFile(file);
  }
  const walk = CatalogWalk.open(file);
  await replay(store, prefix, walk, segments);
  walk.setMeta(LOG_META, JSON.stringify(segments));
  return walk;
}

async function replay(store: ObjectStore, prefix: string, walk: CatalogWalk, segments: readonly string[]): Promise<void> {
  for (const name of segments) {
    const got = await store.get(`${prefix}${name}`);
    if (!got) throw new Error(`walk segment ${prefix}${name} is missing: the chain's state names it`);
    walk.apply(JSON.parse(gunzipSync(got.body).toString('utf8')) as WalkDelta);
  }
}

/**
 * Logs what the walk added since the last segment; returns the new segment's name, which the caller adds
 * to its chain state (and to `held`, what the local file now holds), or null when nothing was added.
 */
export async function saveWalkSegment(store: ObjectStore, prefix: string, walk: CatalogWalk, held: readonly string[]): Promise<string | null> {
  const { delta, upTo } = walk.unloggedDelta();
  if (delta.catalogs.length === 0 && delta.marked.length === 0 && delta.visited.length === 0) return null;
  const name = `seg-${String(held.length).padStart(6, '0')}-${randomBytes(6).toString('hex')}`;
  await store.put(`${prefix}${name}`, gzipSync(Buffer.from(JSON.stringify(delta))), { ifNoneMatch: '*' });
  walk.loggedUpTo(upTo);
  walk.setMeta(LOG_META, JSON.stringify([...held, name]));
  return name;
}

/** Deletes the walk's segments from the store and the sandbox's file. */
export async function dropChainWalk(store: ObjectStore, prefix: string, dir = process.env.SCVMFS_SCRATCH ?? tmpdir()): Promise<void> {
  for (;;) {
    const page = await store.list(prefix, { limit: 1000 });
    if (page.objects.length === 0) break;
    await store.delete(page.objects.map((o) => o.key));
    if (!page.next) break;
  }
  removeWalkFile(localFile(prefix, dir));
}

function removeWalkFile(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}
