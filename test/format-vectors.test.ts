// Unit vectors from the spec and the stock sources: hash names, the empty object, path hashes, flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { ContentHash } from '../src/format/hash.js';
import { EMPTY_OBJECT, compressObject, prepareObject } from '../src/format/zlib-object.js';
import { md5Path, normalizeRepoPath } from '../src/format/md5path.js';
import { entryFlags, entryFromRow, FLAG, S_IFDIR, S_IFLNK, S_IFREG, type DirectoryEntry } from '../src/format/catalog-entry.js';
import { CatalogDb, COUNTER_NAMES } from '../src/format/catalog-db.js';

test('hash ids of the empty string carry the algorithm id (t_shash.cc)', () => {
  assert.equal(ContentHash.of('sha1', '').toHex(), 'da39a3ee5e6b4b0d3255bfef95601890afd80709');
  assert.equal(ContentHash.of('rmd160', '').toHex(), '9c1185a5c5e9fc54612808977ee8f548b2258d31-rmd160');
  assert.equal(ContentHash.of('shake128', '').toHex(), '7f9c2ba4e88f827d616045507605853ed73b8093-shake128');
});

test('the empty-file object is 78 9c 03 00 00 00 00 01 with the spec names', () => {
  assert.deepEqual(compressObject(Buffer.alloc(0)), EMPTY_OBJECT);
  assert.equal(prepareObject('sha1', Buffer.alloc(0), '').key, 'data/e8/ec3d88b62ebf526e4e5a4ff6162a3aa48a6b78');
  assert.equal(prepareObject('rmd160', Buffer.alloc(0), '').hash.toHex(), 'fcdb20b894f31f1306d56294c049ca7293dde0fc-rmd160');
  assert.equal(prepareObject('shake128', Buffer.alloc(0), '').hash.toHex(), '28d94b83b7229b331fc601362b8e272e02665122-shake128');
});

test('object keys put two hex digits in the directory and the suffix last', () => {
  const h = ContentHash.fromHex('6ed3d49a5c64f21f36936ab350d49aaf57585b9a');
  assert.equal(h.objectKey('C'), 'data/6e/d3d49a5c64f21f36936ab350d49aaf57585b9aC');
  const r = ContentHash.fromObjectName('d3d49a5c64f21f36936ab350d49aaf57585b9a00-rmd160P'.replace(/^/, ''));
  assert.equal(r.suffix, 'P');
  assert.equal(r.hash.algorithm, 'rmd160');
  assert.throws(() => ContentHash.fromHex('6ED3'), /not a content hash/);
});

test('md5path halves are little-endian signed int64 (spec check values)', () => {
  assert.deepEqual(md5Path(''), { h1: 338333539836370388n, h2: 9098107892288553193n });
  assert.deepEqual(md5Path('/foo'), { h1: 5745132282796244766n, h2: -5819618580357280866n });
});

test('repository paths are normalised and refuse .. and over-long names', () => {
  assert.equal(normalizeRepoPath('/'), '');
  assert.equal(normalizeRepoPath('sw//pkg/'), '/sw/pkg');
  assert.throws(() => normalizeRepoPath('/sw/../etc'), /contains '\.\.'/);
  assert.throws(() => normalizeRepoPath('/./x'), /contains '\.'/);
  assert.throws(() => normalizeRepoPath('/' + 'x'.repeat(256)), /longer than 255 bytes/);
});

function entry(mode: number, extra: Partial<DirectoryEntry> = {}): DirectoryEntry {
  return {
    name: 'x', mode, size: 0, mtime: 0, mtimeNs: null, uid: 0, gid: 0, hash: null, symlink: '', linkcount: 1,
    hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr: null, ...extra,
  };
}

test('flags per entry type match the stock values (spec §4.4)', () => {
  const sha1 = ContentHash.of('sha1', 'x');
  assert.equal(entryFlags(entry(S_IFDIR | 0o755)), 1);
  assert.equal(entryFlags(entry(S_IFDIR | 0o755, { extraFlags: FLAG.nestedMountpoint })), 3);
  assert.equal(entryFlags(entry(S_IFDIR | 0o755, { extraFlags: FLAG.nestedRoot })), 33);
  assert.equal(entryFlags(entry(S_IFREG | 0o644, { hash: sha1 })), 4);
  assert.equal(entryFlags(entry(S_IFREG | 0o644, { hash: ContentHash.of('rmd160', 'x') })), 260);
  assert.equal(entryFlags(entry(S_IFREG | 0o644, { hash: ContentHash.of('shake128', 'x') })), 516);
  assert.equal(entryFlags(entry(S_IFREG | 0o644, { hash: sha1, compression: 'none' })), 4 + 2048);
  assert.equal(entryFlags(entry(S_IFREG | 0o644, { extraFlags: FLAG.chunked, chunkAlgorithm: 'sha1' })), 68);
  assert.equal(entryFlags(entry(S_IFLNK | 0o777, { symlink: 't' })), 12);
  assert.equal(entryFlags(entry(0o010644)), 20);
});

test('a catalog row read back is the entry that was written, flags and mode included', () => {
  const db = CatalogDb.create({ revision: 1, lastModified: 5 });
  const e = entry(S_IFREG | 0o4755, { name: 'f', size: 7, mtime: 99, mtimeNs: 123, uid: 5, gid: 6, hash: ContentHash.of('rmd160', 'z'), linkcount: 2, hardlinkGroup: 3 });
  db.put('', entry(S_IFDIR | 0o755, { name: '', linkcount: 2 }));
  db.put('/f', e);
  assert.deepEqual(db.lookup('/f'), { ...e, chunkAlgorithm: undefined });
  assert.equal(entryFromRow({ hardlinks: (3n << 32n) | 2n, hash: null, size: 0, mode: S_IFDIR, mtime: 0, flags: 1, name: '', symlink: '', uid: 0, gid: 0 }).hardlinkGroup, 3);
  db.close();
});

test('statistics counters of a known tree', () => {
  const db = CatalogDb.create({ revision: 1, lastModified: 5 });
  db.put('', entry(S_IFDIR | 0o755, { name: '' }));
  db.put('/d', entry(S_IFDIR | 0o755, { name: 'd' }));
  db.put('/m', entry(S_IFDIR | 0o755, { name: 'm', extraFlags: FLAG.nestedMountpoint }));
  db.put('/d/a', entry(S_IFREG | 0o644, { name: 'a', size: 10, hash: ContentHash.of('sha1', 'a') }));
  db.put('/d/b', entry(S_IFREG | 0o644, { name: 'b', size: 5, hash: ContentHash.of('sha1', 'b'), xattr: Buffer.from([1, 0]) }));
  db.put('/l', entry(S_IFLNK | 0o777, { name: 'l', symlink: 'd/a', size: 3 }));
  db.put('/p', entry(0o010644, { name: 'p' }));
  db.setNestedCatalog({ path: '/m', hash: ContentHash.of('sha1', 'm'), size: 4096 });
  const c = db.computeSelfCounters();
  assert.deepEqual(c, { regular: 2, symlink: 1, special: 1, dir: 3, nested: 1, chunked: 0, chunks: 0, file_size: 15, chunked_size: 0, xattr: 1, external: 0, external_file_size: 0 });
  db.writeCounters(c, c);
  const bytes = db.serialize();
  assert.deepEqual([bytes[18], bytes[19]], [1, 1], 'rollback-journal file format, not WAL');
  const raw = new Database(bytes);
  assert.equal((raw.prepare('SELECT count(*) AS n FROM statistics').get() as { n: number }).n, 24);
  assert.deepEqual(raw.prepare('SELECT key, value, typeof(value) AS t FROM properties ORDER BY key').all(), [
    { key: 'last_modified', value: '5', t: 'text' }, { key: 'revision', value: '1', t: 'text' },
    { key: 'schema', value: '2.5', t: 'text' }, { key: 'schema_revision', value: '7', t: 'text' },
  ]);
  assert.equal(raw.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'bind_mountpoints'").pluck().get(), 1);
  raw.close();
  const stored = CatalogDb.fromBytes(bytes).readCounters();
  assert.deepEqual(stored.self, c, 'all 12 self counters survive serialization');
  assert.equal(COUNTER_NAMES.length * 2, 24, 'the client requires 24 statistics rows');
  db.close();
});

test('a catalog that lost most of its rows is compacted when serialized, keeping the rowids of the rest', async () => {
  const { CatalogDb } = await import('../src/format/catalog-db.js');
  const { newDirectoryEntry } = await import('../src/format/catalog-entry.js');
  const db = CatalogDb.create({ revision: 1, lastModified: 0 });
  db.put('', newDirectoryEntry('', 0, { uid: 0, gid: 0 }));
  for (let i = 0; i < 20_000; i++) db.put(`/d${i}`, newDirectoryEntry(`d${i}`, 0, { uid: 0, gid: 0 }));
  const full = db.serialize().length;
  for (let i = 0; i < 19_990; i++) db.delete(`/d${i}`);
  const bytes = db.serialize();
  assert.ok(bytes.length * 10 < full, `${bytes.length} bytes after deleting, ${full} before`);
  const again = CatalogDb.fromBytes(bytes);
  assert.equal(again.rowCount(), 11);
  assert.ok(again.lookup('/d19999'));
  db.close();
  again.close();
});
