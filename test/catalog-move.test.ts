// Making a directory a nested catalog moves its rows as stored (CatalogDb.moveSubtree); merging one back
// moves them up with their hardlink groups renumbered. Either way every catalog must hold exactly the rows
// it would hold had the entries been written into it directly: same columns, chunk lists and nested
// catalog references (only the rowids, the order of insertion, may differ).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { catalogLoader } from '../src/repo/repository.js';
import { CatalogTree, type CommitResult } from '../src/repo/catalog-tree.js';
import { ScratchSpace } from '../src/repo/scratch.js';
import { ContentHash } from '../src/format/hash.js';
import { FLAG, newDirectoryEntry, type DirectoryEntry } from '../src/format/catalog-entry.js';
import { decompressObject } from '../src/format/zlib-object.js';
import type { FileChunk } from '../src/format/catalog-db.js';

const owner = { uid: 1000, gid: 1000 };
const dir = (name: string): DirectoryEntry => newDirectoryEntry(name, 1_700_000_000, owner);
const digest = (s: string) => ContentHash.of('sha1', Buffer.from(s));
const file = (name: string, extra: Partial<DirectoryEntry> = {}): DirectoryEntry =>
  ({ ...dir(name), mode: 0o100644, size: name.length, linkcount: 1, hash: digest(name), ...extra });

interface Item { path: string; entry: DirectoryEntry; chunks?: FileChunk[] }

/** A subtree with every kind of row a move must carry: files, a symlink, xattrs, hardlinks, chunks, depth. */
function subtree(root: string, groupBase: number): Item[] {
  const chunks: FileChunk[] = [0, 1, 2].map((i) => ({ offset: i * 4096, size: 4096, hash: digest(`${root} chunk ${i}`) }));
  const items: Item[] = [
    { path: root, entry: dir(root.slice(root.lastIndexOf('/') + 1)) },
    { path: `${root}/lib`, entry: dir('lib') },
    { path: `${root}/lib/deep`, entry: dir('deep') },
    { path: `${root}/lib/big.so`, entry: file('big.so', { size: 3 * 4096, hash: null, extraFlags: FLAG.chunked, chunkAlgorithm: 'sha1' }), chunks },
    { path: `${root}/lib/link`, entry: { ...file('link'), mode: 0o120777, hash: null, symlink: 'big.so', size: 6 } },
    { path: `${root}/lib/attrs`, entry: file('attrs', { xattr: Buffer.from([1, 1, 4, 3, 0x75, 0x73, 0x72, 0x76, 0x61, 0x6c]) }) },
    { path: `${root}/lib/h1`, entry: file('h1', { linkcount: 2, hardlinkGroup: groupBase + 1 }) },
    { path: `${root}/lib/h2`, entry: file('h2', { linkcount: 2, hardlinkGroup: groupBase + 1 }) },
    { path: `${root}/sub`, entry: dir('sub') },
  ];
  for (let i = 0; i < 40; i++) items.push({ path: `${root}/lib/deep/f${i}`, entry: file(`f${i}`) });
  for (let i = 0; i < 5; i++) items.push({ path: `${root}/sub/s${i}`, entry: file(`s${i}`) });
  return items;
}

async function withTree<T>(name: string, scratch: boolean, fn: (t: CatalogTree) => Promise<T>): Promise<T> {
  const space = scratch ? ScratchSpace.create(tempDir(name)) : undefined;
  const tree = CatalogTree.createEmpty(catalogLoader(new FsStore(tempDir(name))), 'sha1', dir(''), 240, { scratch: space });
  try {
    return await fn(tree);
  } finally {
    tree.close();
    space?.dispose();
  }
}

async function put(tree: CatalogTree, items: Item[]): Promise<void> {
  for (const i of items) await tree.upsert(i.path, i.entry, i.chunks ?? []);
}

/** Per catalog (by mountpoint): its rows without rowids, its chunk rows and its nested catalog paths. */
function contents(result: CommitResult): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const c of result.catalogs) {
    const db = new Database(decompressObject(c.object.stored));
    const rows = (sql: string) => db.prepare(sql).safeIntegers(true).raw(true).all();
    out.set(c.mountpoint, {
      rows: rows('SELECT md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, size, mode, mtime, mtimens, flags, name, symlink, uid, gid, xattr FROM catalog ORDER BY md5path_1, md5path_2'),
      chunks: rows('SELECT * FROM chunks ORDER BY md5path_1, md5path_2, offset'),
      nested: rows('SELECT path FROM nested_catalogs ORDER BY path'),
      counters: rows("SELECT counter, value FROM statistics ORDER BY counter"),
    });
    db.close();
  }
  return out;
}

for (const scratch of [true, false]) {
  const where = scratch ? 'scratch files' : 'memory';
  test(`a subtree made a nested catalog holds the rows it would hold had they been written there (${where})`, async () => {
    const a = subtree('/a', 0);
    const moved = await withTree('move-after', scratch, async (t) => {
      await put(t, [...a, { path: '/top', entry: file('top') }]);
      // A nested catalog inside the subtree moves with it: its reference goes to the new catalog.
      await t.createNested('/a/sub');
      await t.createNested('/a');
      return contents(await t.commit(2, 1_700_000_100));
    });
    const direct = await withTree('move-before', scratch, async (t) => {
      await put(t, [a[0]!, { path: '/top', entry: file('top') }]);
      await t.createNested('/a');
      await put(t, a.filter((i) => i.path !== '/a' && !i.path.startsWith('/a/sub')));
      await put(t, a.filter((i) => i.path === '/a/sub'));
      await t.createNested('/a/sub');
      await put(t, a.filter((i) => i.path.startsWith('/a/sub/')));
      return contents(await t.commit(2, 1_700_000_100));
    });
    assert.deepEqual([...moved.keys()].sort(), ['', '/a', '/a/sub']);
    assert.deepEqual(moved, direct);
  });

  test(`a nested catalog merged back holds the rows of one written flat, its hardlink groups above the parent's (${where})`, async () => {
    const merged = await withTree('merge-after', scratch, async (t) => {
      await put(t, subtree('/p', 0));
      await t.upsert('/q', dir('q'));
      await t.createNested('/q');
      // Both catalogs use group 1: the merged one must move up to 2.
      await put(t, subtree('/q', 0).slice(1));
      await t.removeNested('/q');
      return contents(await t.commit(2, 1_700_000_100));
    });
    const flat = await withTree('merge-flat', scratch, async (t) => {
      await put(t, subtree('/p', 0));
      await put(t, subtree('/q', 1));
      return contents(await t.commit(2, 1_700_000_100));
    });
    assert.deepEqual([...merged.keys()], ['']);
    assert.deepEqual(merged, flat);
  });
}

test('a move into a catalog that already holds one of the rows fails on the primary key instead of keeping two', async () => {
  await withTree('move-conflict', true, async (t) => {
    await put(t, subtree('/a', 0));
    await t.createNested('/a');
    // A second copy of a moved row, as a hostile catalog could hold, in the parent.
    const parentDb = (t as unknown as { handles: Map<string, { db: { put(p: string, e: DirectoryEntry): void } }> }).handles.get('')!.db;
    parentDb.put('/a/lib', dir('lib'));
    await assert.rejects(t.removeNested('/a'), /UNIQUE constraint failed/);
  });
});

test('a large move lets timers run (the publish lock renews while a catalog is split)', async () => {
  await withTree('move-yields', true, async (t) => {
    await t.upsert('/a', dir('a'));
    for (let d = 0; d < 5; d++) {
      await t.upsert(`/a/d${d}`, dir(`d${d}`));
      for (let i = 0; i < 5_000; i++) await t.upsert(`/a/d${d}/f${i}`, file(`f${i}`), [], true);
    }
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 1);
    try {
      await t.createNested('/a');
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 1, `a 1 ms timer ran ${ticks} times during the move of 25,005 rows`);
    assert.equal((await t.list('/a/d4')).length, 5_000);
  });
});
