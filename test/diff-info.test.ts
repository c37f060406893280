// diff, info and catalogs: exact changes at a cost that follows the change, and the fields info reports
// checked against the stock test vector and a repository made here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliOk, extractVector, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectReader } from '../src/store/object-store.js';
import { loadOrCreateKeys } from '../src/repo/keys-dir.js';
import { catalogLoader, commitRevision, initRepository, putIfAbsent, readHead } from '../src/repo/repository.js';
import { CatalogTree } from '../src/repo/catalog-tree.js';
import { prepareObject, type PreparedObject } from '../src/format/zlib-object.js';
import { newDirectoryEntry, type DirectoryEntry } from '../src/format/catalog-entry.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { RepositoryReader } from '../src/client/reader.js';
import { diffRevisions } from '../src/client/diff.js';
import { listCatalogs, repositoryInfo, type RepositoryInfo } from '../src/client/info.js';

/** Counts catalog fetches (objects named …C). */
class CountingSource implements ObjectReader {
  catalogs = 0;
  constructor(private readonly inner: ObjectReader) {}
  get description() { return this.inner.description; }
  async get(key: string) {
    if (key.startsWith('data/') && key.endsWith('C')) this.catalogs++;
    return this.inner.get(key);
  }
}

/** A file entry naming `obj`. */
function fileEntry(name: string, obj: PreparedObject, size: number, mtime: number): DirectoryEntry {
  return { name, mode: 0o100644, size, mtime, mtimeNs: 0, uid: 1000, gid: 1000, hash: obj.hash, symlink: '', linkcount: 1,
    hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr: null };
}

/**
 * A repository of 100 directories (each its own catalog) holding `total` files, built through the
 * catalog tree (no source tree on disk); revision 2 is the tree, revision 3 makes three changes.
 */
async function bigRepository(total: number) {
  const work = tempDir('diff');
  const store = new FsStore(join(work, 'store'));
  const fqrn = 'diff.example.org';
  const { keys } = await loadOrCreateKeys(join(work, 'keys'), fqrn);
  await initRepository(store, { fqrn, keys });
  const x = prepareObject('sha1', Buffer.from('x'), '');
  const y = prepareObject('sha1', Buffer.from('y'), '');
  for (const o of [x, y]) await putIfAbsent(store, o);
  const edit = async (fn: (tree: CatalogTree) => Promise<void>) => {
    const head = (await readHead(store))!;
    const tree = await CatalogTree.open(catalogLoader(store), head.manifest.rootCatalog, 'sha1');
    await fn(tree);
    await commitRevision(store, head, tree, { keys });
    tree.close();
  };
  const perDir = total / 100;
  await edit(async (tree) => {
    for (let d = 0; d < 100; d++) {
      const dir = `/d${String(d).padStart(3, '0')}`;
      await tree.upsert(dir, newDirectoryEntry(dir.slice(1), 1_700_000_000, { uid: 1000, gid: 1000 }));
      await tree.createNested(dir);
      for (let f = 0; f < perDir; f++) await tree.upsert(`${dir}/f${f}`, fileEntry(`f${f}`, x, 1, 1_700_000_000));
    }
  });
  await edit(async (tree) => {
    await tree.upsert('/d005/f0', fileEntry('f0', y, 1, 1_700_000_000));
    await tree.upsert('/d017/new', fileEntry('new', x, 1, 1_700_000_100));
    await tree.remove('/d042/f3');
  });
  return { store, fqrn, keys, work, storeDir: join(work, 'store'), keysDir: join(work, 'keys') };
}

test('diff of a 10^5-entry repository with 3 changes reports exactly them, reading as many catalogs as at 10^4', async () => {
  const reads: number[] = [];
  for (const total of [10_000, 100_000]) {
    const r = await bigRepository(total);
    const source = new CountingSource(r.store);
    const open = (at?: { revision: number }) => RepositoryReader.open(source, { fqrn: r.fqrn, publicKeys: [r.keys.masterPublicKeyPem], at });
    const from = await open({ revision: 2 });
    const to = await open();
    source.catalogs = 0;
    const result = await diffRevisions(from, to);
    assert.deepEqual(result.changes, [
      { op: 'changed', path: '/d005/f0', type: 'file', fields: ['content'] },
      { op: 'added', path: '/d017/new', type: 'file' },
      { op: 'removed', path: '/d042/f3', type: 'file' },
    ]);
    // Two roots and the three changed directories' catalogs on each side; 97 nested catalogs skipped by hash.
    assert.equal(source.catalogs, 8);
    assert.equal(result.catalogsRead, 8);
    assert.equal(result.catalogsSkipped, 97);
    reads.push(source.catalogs);
    from.close();
    to.close();
    if (total === 10_000) {
      const pub = join(r.keysDir, `${r.fqrn}.pub`);
      const out = JSON.parse((await cliOk(['diff', r.storeDir, '--fqrn', r.fqrn, '--pubkey', pub, '--no-cache', '--from', '2', '--json'])).stdout) as
        { from: { revision: number }; to: { revision: number }; changes: unknown[]; catalogsRead: number };
      assert.equal(out.from.revision, 2);
      assert.equal(out.to.revision, 3);
      assert.deepEqual(out.changes, result.changes);
      const text = (await cliOk(['diff', r.storeDir, '/d005', '--fqrn', r.fqrn, '--pubkey', pub, '--no-cache', '--from', '2', '--to', '3'])).stdout;
      assert.equal(text, 'M [F] /d005/f0: content\n');
    }
  }
  assert.equal(reads[0], reads[1]);
});

test('diff names what changed: mode, size, link target, type, and an unchanged revision pair is empty', async () => {
  const work = tempDir('diff-kinds');
  const src = join(work, 'src');
  mkdirSync(join(src, 'dir'), { recursive: true });
  writeFileSync(join(src, 'a'), 'aaa');
  writeFileSync(join(src, 'b'), 'bbb');
  writeFileSync(join(src, 'c'), 'ccc');
  const { symlinkSync } = await import('node:fs');
  symlinkSync('a', join(src, 'link'));
  const store = new FsStore(join(work, 'store'));
  const fqrn = 'kinds.example.org';
  const { keys } = await loadOrCreateKeys(join(work, 'keys'), fqrn);
  await initRepository(store, { fqrn, keys });
  await publishDirectory(store, src, { fqrn, keys });
  chmodSync(join(src, 'a'), 0o600);
  writeFileSync(join(src, 'b'), 'bbbb');
  rmSync(join(src, 'link'));
  symlinkSync('b', join(src, 'link'));
  rmSync(join(src, 'c'));
  mkdirSync(join(src, 'c'));
  await publishDirectory(store, src, { fqrn, keys });
  const open = (revision?: number) => RepositoryReader.open(store, { fqrn, publicKeys: [keys.masterPublicKeyPem], at: revision ? { revision } : undefined });
  const [from, to] = [await open(2), await open()];
  const { changes } = await diffRevisions(from, to);
  const by = new Map(changes.map((c) => [c.path, c]));
  assert.deepEqual(by.get('/a')?.fields?.filter((f) => f !== 'mtime'), ['mode']);
  assert.deepEqual(by.get('/b')?.fields?.filter((f) => f !== 'mtime'), ['content', 'size']);
  assert.deepEqual(by.get('/link')?.fields?.filter((f) => f !== 'mtime'), ['target']);
  assert.deepEqual(by.get('/c')?.fields, ['type']);
  assert.deepEqual((await diffRevisions(to, to)).changes, []);
  from.close();
  to.close();
});

test('info --json of the stock test vector: revision, root, time, TTL, hash, GC flag, fingerprint, expired whitelist, totals, markers', async () => {
  const v = extractVector();
  const pub = join(v.keys, `${v.fqrn}.pub`);
  const info = JSON.parse((await cliOk(['info', v.repo, '--fqrn', v.fqrn, '--pubkey', pub, '--json'])).stdout) as RepositoryInfo;
  assert.equal(info.fqrn, v.fqrn);
  assert.equal(info.revision, 2);
  assert.equal(info.rootCatalog, '6ed3d49a5c64f21f36936ab350d49aaf57585b9a');
  assert.equal(info.publishedAt, Date.parse('2015-10-21T11:55:15Z') / 1000);
  assert.equal(info.ttl, 900);
  assert.equal(info.hashAlgorithm, 'sha1');
  assert.equal(info.garbageCollectable, false);
  assert.match(info.certificate.fingerprint, /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
  assert.equal(info.whitelist.expired, true);
  assert.equal(info.whitelist.verified, true);
  assert.equal(info.whitelist.expiresAt, Date.parse('2015-11-20T11:55:13Z') / 1000);
  assert.ok(info.warnings.some((w) => /whitelist expired/.test(w)));
  assert.equal(info.catalogs, 7);
  assert.equal(info.stratum1.masterReplica, true);
  assert.equal(info.stratum1.lastSnapshot, null);
  // The totals equal a full walk of the vector.
  const reader = await RepositoryReader.open(new FsStore(v.repo), { fqrn: v.fqrn, publicKeys: [await readFile(pub, 'utf8')], allowExpiredWhitelist: true });
  let files = 0;
  let dirs = 0;
  let links = 0;
  for await (const { path, entry } of reader.walk('/')) {
    if (path === '') continue;
    const k = entry.mode & 0o170000;
    if (k === 0o040000) dirs++;
    else if (k === 0o120000) links++;
    else files++;
  }
  assert.deepEqual([info.entries.regular, info.entries.dir, info.entries.symlink], [files, dirs + 1, links]); // '/' included
  const catalogs = JSON.parse((await cliOk(['catalogs', v.repo, '--fqrn', v.fqrn, '--pubkey', pub, '--allow-expired-whitelist', '--no-cache', '--json'])).stdout) as
    { path: string; hash: string; entries: number; size: number }[];
  assert.equal(catalogs.length, info.catalogs);
  assert.deepEqual(catalogs[0], { path: '/', hash: info.rootCatalog, entries: 10, size: 14336, depth: 0 });
  const listed = [];
  for await (const c of listCatalogs(reader)) listed.push(c);
  assert.deepEqual(listed, catalogs);
  reader.close();
  // Without --pubkey info still reads, and says the whitelist signature was not checked.
  const unverified = await repositoryInfo(new FsStore(v.repo), { fqrn: v.fqrn });
  assert.equal(unverified.whitelist.verified, false);
  assert.ok(unverified.warnings.some((w) => /not checked/.test(w)));
});

test('info warns when fewer than 7 days of whitelist are left, and counts the catalogs of a repository made here', async () => {
  const work = tempDir('info');
  const src = join(work, 'src');
  mkdirSync(join(src, 'sw/a'), { recursive: true });
  writeFileSync(join(src, 'sw/.cvmfscatalog'), '');
  writeFileSync(join(src, 'sw/a/file'), 'hello');
  const store = new FsStore(join(work, 'store'));
  const fqrn = 'info.example.org';
  const { keys } = await loadOrCreateKeys(join(work, 'keys'), fqrn);
  await initRepository(store, { fqrn, keys, whitelistDays: 5, ttl: 120, algorithm: 'shake128' });
  await publishDirectory(store, src, { fqrn, keys });
  const info = await repositoryInfo(store, { fqrn, publicKeys: [keys.masterPublicKeyPem] });
  assert.equal(info.revision, 2);
  assert.equal(info.ttl, 120);
  assert.equal(info.hashAlgorithm, 'shake128');
  assert.equal(info.whitelist.expired, false);
  assert.ok(info.whitelist.daysLeft < 7);
  assert.ok(info.warnings.some((w) => /expires in \d days/.test(w)));
  assert.equal(info.catalogs, 2);
  assert.equal(info.entries.regular, 2); // sw/.cvmfscatalog and sw/a/file
  assert.equal(info.entries.dir, 3); // /, /sw, /sw/a
});
