// The reader against the real repository written by the stock cvmfs_server 2.1 (test vector).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { extractVector } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { fetchCatalog } from '../src/repo/objects.js';
import { kindOfMode } from '../src/format/catalog-entry.js';

const vector = extractVector();
const publicKeys = [readFileSync(join(vector.keys, `${vector.fqrn}.pub`), 'utf8')];

test('the reader refuses the vector by default because its whitelist expired in 2015', async () => {
  await assert.rejects(RepositoryReader.open(new FsStore(vector.repo), { fqrn: vector.fqrn, publicKeys }), /expired on 2015-11-20/);
});

test('with the explicit option the vector verifies: signatures, whitelist, every catalog and object', async () => {
  const reader = await RepositoryReader.open(new FsStore(vector.repo), { fqrn: vector.fqrn, publicKeys, allowExpiredWhitelist: true });
  const report = await verifyRepository(reader);
  assert.equal(report.revision, 2);
  assert.equal(report.catalogs, 7, 'root + 3 nested + 3 grand-nested');
  assert.ok(report.tags.includes('trunk') && report.tags.includes('trunk-previous'));
  const names = (await reader.list('/')).map((e) => e.name);
  assert.deepEqual(names.slice().sort(), ['bar', 'baz', 'doesnt_need_migration', 'foo', 'hardlink_bar', 'hardlink_baz', 'hardlink_foo', 'needs_commit_due_to_child', 'needs_migration']);
  const foo = await reader.stat('/foo');
  assert.equal(foo?.linkcount, 2);
  assert.equal((await reader.readFile('/foo')).length, foo?.size);
  let files = 0;
  for await (const { entry } of reader.walk()) if (kindOfMode(entry.mode) === 'file') files++;
  assert.equal(files, 45, 'self_regular + subtree_regular of the root catalog');
  reader.close();
});

test('recomputed self statistics equal what the stock server stored in each vector catalog', async () => {
  const store = new FsStore(vector.repo);
  const reader = await RepositoryReader.open(store, { fqrn: vector.fqrn, publicKeys, allowExpiredWhitelist: true });
  const { db } = await fetchCatalog(store, reader.manifest.rootCatalog);
  assert.deepEqual(db.computeSelfCounters(), db.readCounters().self);
  for (const ref of db.nestedCatalogs()) {
    const nested = await fetchCatalog(store, ref.hash);
    assert.equal(nested.size, ref.size);
    assert.deepEqual(nested.db.computeSelfCounters(), nested.db.readCounters().self, ref.path);
    assert.equal(nested.db.rootPrefix, ref.path);
  }
  reader.close();
});

test('a reader given the wrong master key refuses the vector', async () => {
  const { masterPublicKeyPem } = await import('../src/format/keys.js').then((m) => m.generateRepositoryKeys('x.example.org'));
  await assert.rejects(RepositoryReader.open(new FsStore(vector.repo), { fqrn: vector.fqrn, publicKeys: [masterPublicKeyPem], allowExpiredWhitelist: true }), /whitelist.*signature does not verify/);
});
