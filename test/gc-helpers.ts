// A repository with six publishes of changing content, a named tag on one of them, an aborted
// transaction and unreferenced objects, for the gc tests; and an independent count of what each revision
// references (plain recursion over catalogs, not the walker gc uses).
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { loadOrCreateKeys } from '../src/repo/keys-dir.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { fetchCatalog } from '../src/repo/objects.js';
import { listRevisions, type RevisionInfo } from '../src/repo/gc-plan.js';
import { FLAG, kindOfMode } from '../src/format/catalog-entry.js';
import { ContentHash } from '../src/format/hash.js';
import { prepareObject } from '../src/format/zlib-object.js';
import type { RepositoryKeys } from '../src/format/keys.js';

export const GC_FQRN = 'gc.example.org';
export const HOUR = 3_600_000;

/** Every key a revision's tree references: its catalogs, data objects and chunks. */
export async function referencedKeys(store: ObjectStore, root: ContentHash): Promise<Set<string>> {
  const out = new Set<string>();
  const visit = async (hash: ContentHash) => {
    out.add(hash.objectKey('C'));
    const { db } = await fetchCatalog(store, hash);
    try {
      for (const { path, entry } of db.walk()) {
        if (kindOfMode(entry.mode) !== 'file') continue;
        if (entry.hash) out.add(entry.hash.objectKey(''));
        if (entry.extraFlags & FLAG.chunked) for (const c of db.chunks(path, entry.chunkAlgorithm ?? hash.algorithm)) out.add(c.hash.objectKey('P'));
      }
      for (const n of db.nestedCatalogs()) await visit(n.hash);
    } finally {
      db.close();
    }
  };
  await visit(root);
  return out;
}

/** Revisions 2–7 by six publishes (revision 3 tagged 'release'); returns what each references. */
export async function sixPublishes(store: ObjectStore, opts: { work?: string; base?: number } = {}) {
  const work = opts.work ?? tempDir('gc');
  const keysDir = join(work, 'keys');
  const { keys } = await loadOrCreateKeys(keysDir, GC_FQRN);
  await initRepository(store, { fqrn: GC_FQRN, keys });
  const src = join(work, 'src');
  mkdirSync(join(src, 'deep', 'er'), { recursive: true });
  // Publishes happened days ago, so their objects are past any grace period by the objects' own times.
  let clock = opts.base ?? Date.now() - 10 * 24 * HOUR;
  const now = () => new Date(clock += 60_000);
  for (let i = 1; i <= 6; i++) {
    writeFileSync(join(src, 'changing.txt'), `content of publish ${i}\n`);
    writeFileSync(join(src, 'deep', 'er', `only-${i}.txt`), `only in publish ${i} and later`.repeat(i));
    writeFileSync(join(src, 'same.txt'), 'never changes\n');
    // A file that exists in one publish only.
    for (let j = 1; j < i; j++) rmSync(join(src, `transient-${j}.txt`), { force: true });
    writeFileSync(join(src, `transient-${i}.txt`), `transient ${i}\n`);
    await publishDirectory(store, src, { fqrn: GC_FQRN, keys, now, tag: i === 2 ? { name: 'release' } : undefined, autocatalogs: { maxWeight: 4, minWeight: 1 } });
  }
  const head = (await readHead(store))!;
  const revisions: RevisionInfo[] = await listRevisions(store, head.manifest);
  const refs = new Map<number, Set<string>>();
  for (const r of revisions) refs.set(r.revision, await referencedKeys(store, r.hash));
  return { work, keysDir, keys: keys as RepositoryKeys, src, revisions, refs, head };
}

/** Makes every object of a directory store look `ageMs` old (the publishes happened long ago). */
export function ageObjects(storeDir: string, ageMs: number): void {
  const t = new Date(Date.now() - ageMs);
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else utimesSync(join(dir, e.name), t, t);
    }
  };
  walk(join(storeDir, 'data'));
}

/** Stores an object nothing references, with a modification time `ageMs` ago (fs store only). */
export async function orphan(store: ObjectStore, storeDir: string | null, content: string, ageMs: number): Promise<string> {
  const obj = prepareObject('sha1', Buffer.from(content), '');
  await store.put(obj.key, obj.stored);
  if (storeDir && ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    utimesSync(join(storeDir, obj.key), t, t);
  }
  return obj.key;
}

/** An aborted transaction's control records, last written `ageMs` ago (fs store only). */
export function abortedTransaction(storeDir: string, txnId: string, ageMs: number): string[] {
  const dir = join(storeDir, '.scvmfs', 'txn', txnId);
  mkdirSync(dir, { recursive: true });
  const files = ['state.json', 'changeset.json'];
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ txnId, status: 'aborted' }));
  writeFileSync(join(dir, 'changeset.json'), '{}');
  const t = new Date(Date.now() - ageMs);
  for (const f of files) utimesSync(join(dir, f), t, t);
  return files.map((f) => `.scvmfs/txn/${txnId}/${f}`);
}
