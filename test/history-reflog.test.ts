import { TEST_SOURCE_DIR } from './helpers.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { ContentHash } from '../src/format/hash.js';
import { createHistory, nextHistoryTags, readHistory, type Tag } from '../src/format/history.js';
import { addToReflog, createReflog, readReflog } from '../src/format/reflog.js';

const TESTDATA = join(TEST_SOURCE_DIR, 'fixtures');
const FQRN = 'legacy_aufs.cern.ch';

const h = (s: string) => ContentHash.of('sha1', s);

test('history: create → read round trip, exact DDL and properties, rollback-journal header', () => {
  const tags: Tag[] = [
    { name: 'generic-2024-01-01T00:00:00Z', hash: h('r1'), size: 4096, revision: 1, timestamp: 1704067200, description: '' },
    { name: 'trunk', hash: h('r1'), size: 4096, revision: 1, timestamp: 1704067200, description: 'current HEAD' },
  ];
  const previous = ContentHash.of('sha1', 'previous history');
  const bytes = createHistory('example.org', tags, previous);
  assert.equal(bytes.subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
  assert.equal(bytes[18], 1);
  assert.equal(bytes[19], 1);

  assert.deepEqual(readHistory(bytes), { fqrn: 'example.org', tags, previous });

  const db = new Database(bytes);
  const master = db.prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").all();
  assert.deepEqual(master, [
    { type: 'table', name: 'properties', sql: 'CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key))' },
    {
      type: 'table', name: 'branches',
      sql: 'CREATE TABLE branches (branch TEXT, parent TEXT, initial_revision INTEGER,  CONSTRAINT pk_branch PRIMARY KEY (branch),'
        + "   FOREIGN KEY (parent) REFERENCES branches (branch),   CHECK ((branch <> '') OR (parent IS NULL)),"
        + "   CHECK ((branch = '') OR (parent IS NOT NULL)))",
    },
    {
      type: 'table', name: 'tags',
      sql: 'CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER,   timestamp INTEGER, channel INTEGER, description TEXT,'
        + ' size INTEGER,   branch TEXT, CONSTRAINT pk_tags PRIMARY KEY (name),   FOREIGN KEY (branch) REFERENCES branches (branch))',
    },
    { type: 'table', name: 'recycle_bin', sql: 'CREATE TABLE recycle_bin (hash TEXT, flags INTEGER,   CONSTRAINT pk_hash PRIMARY KEY (hash))' },
  ]);
  assert.deepEqual(db.prepare('SELECT key, value FROM properties ORDER BY rowid').all(), [
    { key: 'schema', value: '1.0' },
    { key: 'schema_revision', value: '3' },
    { key: 'fqrn', value: 'example.org' },
    { key: 'previous_revision', value: previous.toHex() },
  ]);
  assert.deepEqual(db.prepare('SELECT * FROM branches').all(), [{ branch: '', parent: null, initial_revision: 0 }]);
  assert.deepEqual(db.prepare("SELECT DISTINCT channel, branch FROM tags").all(), [{ channel: 0, branch: '' }]);
  assert.deepEqual(db.prepare('SELECT count(*) AS n FROM recycle_bin').get(), { n: 0 });
  db.close();

  const first = createHistory('example.org', []);
  assert.deepEqual(readHistory(first), { fqrn: 'example.org', tags: [] });
  const firstDb = new Database(first);
  assert.deepEqual(firstDb.prepare("SELECT value FROM properties WHERE key = 'previous_revision'").get(), { value: '0'.repeat(40) });
  firstDb.close();
  assert.throws(() => createHistory('example.org', [tags[0]!, tags[0]!]), /given twice/);
});

test('history: readHistory refuses compressed or foreign bytes', () => {
  const bytes = createHistory('example.org', []);
  assert.throws(() => readHistory(deflateSync(bytes)), /zlib-compressed; inflate/);
  assert.throws(() => readHistory(Buffer.from('hello world')), /not an SQLite database/);
  assert.throws(() => readHistory(createReflog('example.org')), /no tags table/);
});

test('history: nextHistoryTags moves trunk, keeps older tags, adds auto and user tags', () => {
  const head1 = { hash: h('r1'), size: 100, revision: 1, timestamp: Date.UTC(2024, 4, 6, 7, 8, 9) / 1000 };
  const t1 = nextHistoryTags([], head1);
  assert.deepEqual(t1.map((t) => [t.name, t.description, t.revision]), [
    ['generic-2024-05-06T07:08:09Z', '', 1],
    ['trunk', 'current HEAD', 1],
  ]);
  const head2 = { hash: h('r2'), size: 200, revision: 2, timestamp: head1.timestamp + 61 };
  const t2 = nextHistoryTags(t1, head2, { name: 'v1.0', description: 'first release' });
  assert.deepEqual(t2.map((t) => [t.name, t.description, t.revision]), [
    ['generic-2024-05-06T07:08:09Z', '', 1],
    ['generic-2024-05-06T07:09:10Z', '', 2],
    ['v1.0', 'first release', 2],
    ['trunk-previous', 'default undo target', 1],
    ['trunk', 'current HEAD', 2],
  ]);
  const trunk = t2.find((t) => t.name === 'trunk')!;
  assert.ok(trunk.hash.equals(head2.hash));
  assert.equal(trunk.size, 200);
  assert.equal(trunk.timestamp, head2.timestamp);
  const prev = t2.find((t) => t.name === 'trunk-previous')!;
  assert.ok(prev.hash.equals(head1.hash));
  assert.equal(prev.size, 100);
  assert.equal(prev.timestamp, head1.timestamp);

  const head3 = { hash: h('r3'), size: 300, revision: 3, timestamp: head2.timestamp + 1 };
  const t3 = nextHistoryTags(t2, head3);
  assert.deepEqual(t3.map((t) => [t.name, t.revision]), [
    ['generic-2024-05-06T07:08:09Z', 1],
    ['generic-2024-05-06T07:09:10Z', 2],
    ['v1.0', 2],
    ['generic-2024-05-06T07:09:11Z', 3],
    ['trunk-previous', 2],
    ['trunk', 3],
  ]);
  // The result is storable as it is.
  assert.deepEqual(readHistory(createHistory('example.org', t3)).tags, t3);

  assert.throws(() => nextHistoryTags(t3, { ...head3, revision: 4 }, { name: 'v1.0' }), /already exists/);
  assert.throws(() => nextHistoryTags(t3, head3, { name: 'trunk' }), /reserved/);
  assert.throws(() => nextHistoryTags(t3, head3, { name: 'has space' }), /blanks/);
});

test('history: the vector history objects read with readHistory', () => {
  const work = mkdtempSync(join(tmpdir(), 'scvmfs-history-'));
  try {
    execFileSync('tar', ['xzf', join(TESTDATA, 'legacy_aufs_repo_21/legacy_aufs_repo.tar.gz'), '-C', work]);
    const data = join(work, 'srv/cvmfs', FQRN, 'data');
    const newest = readHistory(inflateSync(readFileSync(join(data, '36/5d5083b27d67e2caeff6d66e5fe3f2d104a6bdH'))));
    assert.equal(newest.fqrn, FQRN);
    assert.equal(newest.previous?.toHex(), '288213516c871dfef0daeabfe288c03ba9ff7ea4');
    const byName = new Map(newest.tags.map((t) => [t.name, t]));
    assert.deepEqual([...byName.keys()].sort(),
      ['generic-2015-10-21T11:55:14Z', 'generic-2015-10-21T11:55:15Z', 'trunk', 'trunk-previous']);
    const trunk = byName.get('trunk')!;
    assert.equal(trunk.hash.toHex(), '6ed3d49a5c64f21f36936ab350d49aaf57585b9a'); // the manifest's C
    assert.deepEqual([trunk.revision, trunk.timestamp, trunk.size, trunk.description], [2, 1445428515, 14336, 'current HEAD']);
    const trunkPrevious = byName.get('trunk-previous')!;
    assert.equal(trunkPrevious.hash.toHex(), 'e6ceff5bfeded1ddc5d21dd0ce32aca99013e31e');
    assert.deepEqual([trunkPrevious.revision, trunkPrevious.description], [1, 'default undo target']);

    const oldest = readHistory(inflateSync(readFileSync(join(data, '28/8213516c871dfef0daeabfe288c03ba9ff7ea4H'))));
    assert.equal(oldest.previous, undefined, 'a null previous_revision means none');
    assert.deepEqual(oldest.tags.map((t) => t.name), ['generic-2015-10-21T11:55:14Z', 'trunk']);

    // What nextHistoryTags makes from revision 1's tags matches what the stock server stored for revision 2.
    const next = nextHistoryTags(oldest.tags, { hash: trunk.hash, size: 14336, revision: 2, timestamp: 1445428515 });
    assert.deepEqual(next, newest.tags);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('reflog: create, add, INSERT OR REPLACE, read', () => {
  const empty = createReflog('example.org');
  assert.equal(empty[18], 1);
  assert.equal(empty[19], 1);
  assert.deepEqual(readReflog(empty), { fqrn: 'example.org', refs: [] });
  const db = new Database(empty);
  assert.deepEqual(db.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").all(), [
    { name: 'properties', sql: 'CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key))' },
    { name: 'refs', sql: 'CREATE TABLE refs (hash TEXT, type INTEGER, timestamp INTEGER, CONSTRAINT pk_refs PRIMARY KEY (hash))' },
  ]);
  assert.deepEqual(db.prepare('SELECT key, value FROM properties ORDER BY rowid').all(), [
    { key: 'schema', value: '1.0' }, { key: 'schema_revision', value: '0' }, { key: 'fqrn', value: 'example.org' },
  ]);
  db.close();

  const catalog = h('catalog'), cert = h('cert'), hist = ContentHash.of('shake128', 'history'), meta = h('meta');
  const one = addToReflog(empty, 'example.org', [
    { hash: catalog, type: 'catalog', timestamp: 100 },
    { hash: cert, type: 'certificate', timestamp: 100 },
    { hash: hist, type: 'history', timestamp: 101 },
    { hash: meta, type: 'metainfo', timestamp: 102 },
  ]);
  const rows = new Database(one).prepare('SELECT hash, type, timestamp FROM refs ORDER BY type').all();
  assert.deepEqual(rows, [
    { hash: catalog.toHex(), type: 0, timestamp: 100 },
    { hash: cert.toHex(), type: 1, timestamp: 100 },
    { hash: hist.toHex(), type: 2, timestamp: 101 },
    { hash: meta.toHex(), type: 3, timestamp: 102 },
  ]);
  const two = addToReflog(one, 'example.org', [{ hash: cert, type: 'certificate', timestamp: 200 }, { hash: h('c2'), type: 'catalog', timestamp: 200 }]);
  const read = readReflog(two);
  assert.equal(read.refs.length, 5);
  assert.deepEqual(read.refs.filter((r) => r.hash.equals(cert)).map((r) => [r.type, r.timestamp]), [['certificate', 200]]);
  assert.ok(read.refs.some((r) => r.hash.equals(hist) && r.type === 'history'));

  assert.deepEqual(readReflog(addToReflog(undefined, 'new.org', [{ hash: catalog, type: 'catalog', timestamp: 5 }])),
    { fqrn: 'new.org', refs: [{ hash: catalog, type: 'catalog', timestamp: 5 }] });
  assert.throws(() => addToReflog(two, 'other.org', []), /belongs to repository 'example.org'/);
  assert.throws(() => readReflog(createHistory('example.org', [])), /no refs table/);
});

test('verify: a reflog ahead of the manifest (publish interrupted) is a warning; one that lost the root is an error', async () => {
  const { FsStore } = await import('../src/store/fs-store.js');
  const { generateRepositoryKeys } = await import('../src/format/keys.js');
  const { initRepository, REFLOG_KEY, readHead } = await import('../src/repo/repository.js');
  const { addToReflog } = await import('../src/format/reflog.js');
  const { RepositoryReader } = await import('../src/client/reader.js');
  const { verifyRepository } = await import('../src/client/verify.js');
  const { ContentHash } = await import('../src/format/hash.js');
  const { tempDir } = await import('./helpers.js');
  const { join } = await import('node:path');
  const store = new FsStore(join(tempDir('reflog-ahead'), 'store'));
  const keys = await generateRepositoryKeys('ahead.example.org');
  await initRepository(store, { fqrn: 'ahead.example.org', keys });
  const open = () => RepositoryReader.open(store, { fqrn: 'ahead.example.org', publicKeys: [keys.masterPublicKeyPem] });
  const current = (await store.get(REFLOG_KEY))!.body;
  // An interrupted publish added its root catalog to the reflog but never swapped the manifest.
  const ahead = addToReflog(current, 'ahead.example.org', [{ hash: ContentHash.of('sha1', Buffer.from('unpublished')), type: 'catalog', timestamp: 2 }]);
  await store.put(REFLOG_KEY, ahead);
  let reader = await open();
  const report = await verifyRepository(reader);
  assert.equal(report.warnings.length, 1);
  assert.match(report.warnings[0]!, /newer than the manifest/);
  reader.close();
  // A reflog that does not list the published root catalog is wrong.
  const head = (await readHead(store))!;
  await store.put(REFLOG_KEY, addToReflog(undefined, 'ahead.example.org', [{ hash: head.manifest.certificate, type: 'certificate', timestamp: 1 }]));
  reader = await open();
  await assert.rejects(verifyRepository(reader), /lacks the root catalog/);
  reader.close();
});
