// export: a tree with every entry type comes out equal to its source; a second export fetches nothing;
// a repository with hostile names cannot make it write outside the destination.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { cliOk, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectReader } from '../src/store/object-store.js';
import { loadOrCreateKeys } from '../src/repo/keys-dir.js';
import { catalogLoader, commitRevision, initRepository, putIfAbsent, readHead } from '../src/repo/repository.js';
import { CatalogTree } from '../src/repo/catalog-tree.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { RepositoryReader } from '../src/client/reader.js';
import { exportTree, parseExportSpec } from '../src/client/export.js';
import { prepareObject } from '../src/format/zlib-object.js';
import { newDirectoryEntry, type DirectoryEntry } from '../src/format/catalog-entry.js';

class CountingSource implements ObjectReader {
  gets = 0;
  constructor(private readonly inner: ObjectReader) {}
  get description() { return this.inner.description; }
  async get(key: string) {
    this.gets++;
    return this.inner.get(key);
  }
}

function buildEveryType(src: string): void {
  mkdirSync(join(src, 'dir/sub'), { recursive: true });
  writeFileSync(join(src, 'plain.txt'), 'hello\n');
  writeFileSync(join(src, 'empty'), '');
  writeFileSync(join(src, 'tool'), '#!/bin/sh\n');
  chmodSync(join(src, 'tool'), 0o755);
  writeFileSync(join(src, 'secret'), 'mine');
  chmodSync(join(src, 'secret'), 0o600);
  writeFileSync(join(src, 'big.bin'), randomBytes(600_000)); // chunked (small chunk sizes below)
  writeFileSync(join(src, 'dir/a'), 'group member');
  linkSync(join(src, 'dir/a'), join(src, 'dir/b'));
  linkSync(join(src, 'dir/a'), join(src, 'dir/c'));
  symlinkSync('../plain.txt', join(src, 'dir/rel-link'));
  symlinkSync('/etc/hostname', join(src, 'abs-link'));
  symlinkSync('nowhere/at/all', join(src, 'dangling'));
  execFileSync('mkfifo', [join(src, 'pipe')]);
  mkdirSync(join(src, 'readonly'));
  writeFileSync(join(src, 'readonly/inside'), 'locked in');
  chmodSync(join(src, 'readonly/inside'), 0o444);
  chmodSync(join(src, 'readonly'), 0o555);
  writeFileSync(join(src, 'dir/sub/.cvmfscatalog'), '');
  writeFileSync(join(src, 'dir/sub/deep'), 'in a nested catalog');
  const old = new Date('2019-05-06T07:08:09Z');
  for (const p of ['plain.txt', 'dir/a', 'dir/sub', 'readonly/inside', 'pipe']) utimesSync(join(src, p), old, old);
}

/** Type, mode, size, content, link target, link count and mtime of every entry, by path. */
function describe(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = `${rel}/${name}`;
      const st = lstatSync(p);
      const fields: unknown[] = [st.mode.toString(8), Math.floor(st.mtimeMs / 1000)];
      if (st.isFile()) fields.push(st.size, st.nlink, readFileSync(p).toString('base64'));
      if (st.isSymbolicLink()) fields.push(readlinkSync(p));
      out.set(r, JSON.stringify(fields));
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(root, '');
  return out;
}

async function published() {
  const work = tempDir('export');
  const src = join(work, 'src');
  buildEveryType(src);
  const store = new FsStore(join(work, 'store'));
  const fqrn = 'export.example.org';
  const { keys } = await loadOrCreateKeys(join(work, 'keys'), fqrn);
  await initRepository(store, { fqrn, keys });
  await publishDirectory(store, src, { fqrn, keys, chunking: { minSize: 65_536, avgSize: 131_072, maxSize: 262_144 } });
  return { work, src, store, fqrn, keys, storeDir: join(work, 'store'), keysDir: join(work, 'keys') };
}

test('export of a tree with every entry type equals the source; a second export fetches nothing', async () => {
  const r = await published();
  const source = new CountingSource(r.store);
  const reader = await RepositoryReader.open(source, { fqrn: r.fqrn, publicKeys: [r.keys.masterPublicKeyPem] });
  const dest = join(r.work, 'out');
  const first = await exportTree(reader, dest, { parallel: 4 });
  const expected = describe(r.src);
  expected.delete('/dir/sub/.cvmfscatalog') ; // the marker is published as a file too
  const got = describe(dest);
  got.delete('/dir/sub/.cvmfscatalog');
  assert.deepEqual(got, expected);
  assert.equal(lstatSync(join(dest, 'dir/a')).ino, lstatSync(join(dest, 'dir/c')).ino, 'hard links share one inode');
  assert.ok(lstatSync(join(dest, 'pipe')).isFIFO());
  assert.ok(first.filesFetched > 0);
  assert.equal(first.hardlinks, 2);

  source.gets = 0;
  const second = await exportTree(reader, dest, { parallel: 4 });
  assert.equal(second.filesFetched, 0);
  assert.equal(second.bytesFetched, 0);
  assert.equal(source.gets, 0, 'a resumed export of an unchanged tree reads nothing from the store');
  assert.deepEqual(describe(dest), describe(dest));
  const again = describe(dest);
  again.delete('/dir/sub/.cvmfscatalog');
  assert.deepEqual(again, expected);

  // A changed or truncated local file is fetched again (and only that one).
  chmodSync(join(dest, 'dir'), 0o755);
  writeFileSync(join(dest, 'plain.txt'), 'HELLO\n');
  const third = await exportTree(reader, dest, { parallel: 4 });
  assert.equal(third.filesFetched, 1);
  assert.equal(readFileSync(join(dest, 'plain.txt'), 'utf8'), 'hello\n');
  reader.close();
});

test('export --spec writes only the listed paths; the CLI prints --json', async () => {
  const r = await published();
  const spec = join(r.work, 'spec.txt');
  writeFileSync(spec, '# only these\n/dir/*\n!/dir/sub\n/plain.txt\n');
  const dest = join(r.work, 'partial');
  const out = await cliOk(['export', r.storeDir, dest, '--fqrn', r.fqrn, '--pubkey', join(r.keysDir, `${r.fqrn}.pub`), '--no-cache', '--spec', spec, '--json']);
  const summary = JSON.parse(out.stdout) as { revision: number; filesFetched: number; files: number; hardlinks: number };
  assert.equal(summary.revision, 2);
  assert.deepEqual(readdirSync(dest).sort(), ['dir', 'plain.txt']);
  assert.deepEqual(readdirSync(join(dest, 'dir')).sort(), ['a', 'b', 'c', 'rel-link']);
  assert.equal(summary.hardlinks, 2);
  assert.deepEqual(parseExportSpec('^/a/*\n!/a/b\n/c\n'), { paths: ['/c'], subtrees: ['/a'], excluded: ['/a/b'] });
  // A subdirectory of the repository exports its contents; a destination that is a symlink to a directory is followed.
  const real = join(r.work, 'real-sub');
  mkdirSync(real);
  const sub = join(r.work, 'sub');
  symlinkSync(real, sub);
  await cliOk(['export', r.storeDir, '/dir/sub', sub, '--fqrn', r.fqrn, '--pubkey', join(r.keysDir, `${r.fqrn}.pub`), '--no-cache', '-q']);
  assert.equal(readFileSync(join(real, 'deep'), 'utf8'), 'in a nested catalog');
  assert.ok(lstatSync(sub).isSymbolicLink(), 'the destination symlink is kept');
});

test('a repository with hostile names cannot make export write outside the destination', async () => {
  const work = tempDir('hostile');
  const fqrn = 'hostile.example.org';
  const { keys } = await loadOrCreateKeys(join(work, 'keys'), fqrn);
  const obj = prepareObject('sha1', Buffer.from('pwned'), '');
  const file = (name: string): DirectoryEntry => ({ name, mode: 0o100644, size: 5, mtime: 1, mtimeNs: 0, uid: 0, gid: 0, hash: obj.hash,
    symlink: '', linkcount: 1, hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr: null });
  const outside = join(work, 'outside');
  mkdirSync(outside);
  const cases: { label: string; build: (t: CatalogTree) => Promise<void>; code: string }[] = [
    { label: 'dot-dot name', code: 'unsafe-name', build: async (t) => { await t.upsert('/evil', file('../../escape')); } },
    { label: 'slash in a name', code: 'unsafe-name', build: async (t) => { await t.upsert('/evil2', file(`..${'/'}x`)); } },
    { label: 'parent name', code: 'unsafe-name', build: async (t) => { await t.upsert('/up', { ...newDirectoryEntry('..', 1, { uid: 0, gid: 0 }) }); } },
    {
      // A symlink to the outside and a directory of the same name: writing into the directory must not follow the link.
      label: 'symlink and directory sharing a name', code: 'duplicate-name',
      build: async (t) => {
        await t.upsert('/x', { ...file('x'), mode: 0o120777, hash: null, symlink: outside, size: outside.length });
        await t.upsert('/y', newDirectoryEntry('x', 1, { uid: 0, gid: 0 }));
        await t.upsert('/y/f', file('f'));
      },
    },
  ];
  let n = 0;
  for (const c of cases) {
    const store = new FsStore(join(work, `store-${++n}`));
    await initRepository(store, { fqrn, keys });
    await putIfAbsent(store, obj);
    const head = (await readHead(store))!;
    const tree = await CatalogTree.open(catalogLoader(store), head.manifest.rootCatalog, 'sha1');
    await c.build(tree);
    await commitRevision(store, head, tree, { keys });
    tree.close();
    const reader = await RepositoryReader.open(store, { fqrn, publicKeys: [keys.masterPublicKeyPem] });
    const dest = join(work, 'dest', 'inner');
    await assert.rejects(exportTree(reader, dest), (err: Error & { code?: string }) => err.code === c.code, c.label);
    reader.close();
    assert.deepEqual(readdirSync(outside), [], `${c.label}: something was written outside`);
    assert.ok(!existsSync(join(work, 'escape')) && !existsSync(join(work, 'dest', 'escape')) && !existsSync(join(work, 'x')), c.label);
  }
});
