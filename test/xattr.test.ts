// Extended attributes: the catalog blob (spec §4.7), a catalog and repository round trip through the
// reader, and reading user.* attributes of a source tree with getfattr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeXattrs, encodeXattrs } from '../src/format/xattr.js';
import { CatalogDb } from '../src/format/catalog-db.js';
import { newDirectoryEntry, S_IFREG, type DirectoryEntry } from '../src/format/catalog-entry.js';
import { ContentHash } from '../src/format/hash.js';
import { FsStore } from '../src/store/fs-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { catalogLoader, commitRevision, initRepository, readHead } from '../src/repo/repository.js';
import { CatalogTree } from '../src/repo/catalog-tree.js';
import { RepositoryReader } from '../src/client/reader.js';
import { GetfattrParser, readPathXattrs, readTreeXattrs } from '../src/publish/xattrs.js';
import { tempDir } from './helpers.js';

const attrs = (pairs: [string, string | Buffer][]) => new Map(pairs.map(([k, v]) => [k, Buffer.from(v)]));

test('xattr blob: version 1, count, entries sorted by key bytes (hand-computed vector)', () => {
  const blob = encodeXattrs(attrs([['user.b', 'xy'], ['user.a', '']]));
  assert.equal(blob!.toString('hex'), [
    '01', '02', // version, count
    '06', '00', Buffer.from('user.a').toString('hex'), // key length, value length, key, (empty value)
    '06', '02', Buffer.from('user.b').toString('hex'), '7879',
  ].join(''));
  assert.deepEqual(decodeXattrs(blob), attrs([['user.a', ''], ['user.b', 'xy']]));
});

test('xattr blob: the order is by UTF-8 bytes, not by JavaScript string order', () => {
  // U+E000 is EE 80 80 in UTF-8, U+1F600 is F0 9F 98 80; as UTF-16 the surrogate pair sorts first.
  const blob = encodeXattrs(attrs([['user.\u{1F600}', 'b'], ['user.\uE000', 'a']]))!;
  assert.equal(blob[2], 8);
  assert.equal(blob.subarray(4, 12).toString('utf8'), 'user.\uE000');
});

test('xattr blob: no attributes is NULL; limits are refused with the attribute named', () => {
  assert.equal(encodeXattrs(new Map()), null);
  assert.deepEqual(decodeXattrs(null), new Map());
  assert.throws(() => encodeXattrs(attrs([['user.big', Buffer.alloc(256)]])), /value of attribute 'user.big' has 256 bytes/);
  assert.doesNotThrow(() => encodeXattrs(attrs([['user.max', Buffer.alloc(255)]])));
  assert.throws(() => encodeXattrs(attrs([['user.' + 'k'.repeat(251), 'v']])), /longer than 255 bytes/);
  assert.throws(() => encodeXattrs(attrs([['', 'v']])), /empty attribute name/);
  assert.throws(() => encodeXattrs(attrs([['user.a\0b', 'v']])), /NUL/);
  const many = new Map(Array.from({ length: 256 }, (_, i) => [`user.${i}`, Buffer.from('v')] as [string, Buffer]));
  assert.throws(() => encodeXattrs(many), /256 extended attributes; a catalog entry holds at most 255/);
  many.delete('user.0');
  assert.equal(encodeXattrs(many)![1], 255);
});

test('xattr blob: malformed blobs are refused', () => {
  assert.throws(() => decodeXattrs(Buffer.from([2, 0])), /version 2/);
  assert.throws(() => decodeXattrs(Buffer.from([1])), /shorter than its 2-byte header/);
  assert.throws(() => decodeXattrs(Buffer.from([1, 1, 3, 1, 0x61, 0x62])), /ends inside entry 1 of 1/);
  assert.throws(() => decodeXattrs(Buffer.from([1, 1, 0, 1, 0x61])), /empty name/);
});

function fileEntry(name: string, xattr: Buffer | null): DirectoryEntry {
  return {
    name, mode: S_IFREG | 0o644, size: 1, mtime: 1, mtimeNs: 0, uid: 0, gid: 0, hash: ContentHash.of('sha1', 'x'), symlink: '',
    linkcount: 1, hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr,
  };
}

test('the blob survives a catalog, counts in self_xattr, and an empty blob is stored as NULL', () => {
  const db = CatalogDb.create({ revision: 1, lastModified: 1 });
  db.put('', newDirectoryEntry('', 1, { uid: 0, gid: 0 }));
  db.put('/with', fileEntry('with', encodeXattrs(attrs([['user.origin', 'test']]))));
  db.put('/empty', fileEntry('empty', Buffer.alloc(0)));
  const reopened = CatalogDb.fromBytes(db.serialize());
  assert.deepEqual(decodeXattrs(reopened.lookup('/with')!.xattr), attrs([['user.origin', 'test']]));
  assert.equal(reopened.lookup('/empty')!.xattr, null);
  assert.equal(reopened.computeSelfCounters().xattr, 1);
});

test('the reader returns the xattrs a publisher recorded; entries without have none', async () => {
  const store = new FsStore(join(tempDir('xattr-repo'), 'store'));
  const fqrn = 'xattr.example.org';
  const keys = await generateRepositoryKeys(fqrn);
  await initRepository(store, { fqrn, keys });
  const head = (await readHead(store))!;
  const tree = await CatalogTree.open(catalogLoader(store), head.manifest.rootCatalog, head.algorithm);
  await tree.upsert('/f', fileEntry('f', encodeXattrs(attrs([['user.b', Buffer.from([0, 255])], ['user.a', 'x']]))));
  await tree.upsert('/g', fileEntry('g', null));
  await commitRevision(store, head, tree, { keys });
  const reader = await RepositoryReader.open(store, { fqrn, publicKeys: [keys.masterPublicKeyPem] });
  assert.deepEqual(await reader.xattrs('/f'), attrs([['user.a', 'x'], ['user.b', Buffer.from([0, 255])]]));
  assert.deepEqual(await reader.xattrs('g'), new Map());
  await assert.rejects(reader.xattrs('/missing'), /no such file or directory: \/missing/);
  reader.close();
});

const NO_ATTR = spawnSync('setfattr', ['--version'], { stdio: 'ignore' }).status === 0 ? false
  : 'setfattr/getfattr not installed (Debian package attr)';

test('getfattr output is parsed with its octal escapes undone', () => {
  const parser = new GetfattrParser();
  const out = '# file: /s/we ird\\012name\\134x\nuser.k\\075ey=0x00ff\nuser.empty\nuser.e2=0x\ntrusted.no=0x01\n\n# file: /s/d\nuser.d=0x64\n';
  // Fed in awkward pieces, as a pipe delivers it.
  const bytes = Buffer.from(out);
  for (let i = 0; i < bytes.length; i += 7) parser.push(bytes.subarray(i, i + 7));
  assert.deepEqual(parser.end(), new Map([
    ['/s/we ird\nname\\x', attrs([['user.k=ey', Buffer.from([0, 255])], ['user.empty', ''], ['user.e2', '']])],
    ['/s/d', attrs([['user.d', 'd']])],
  ]));
});

test('user.* attributes of a whole tree in one getfattr run, names with newlines and = included', { skip: NO_ATTR }, async () => {
  const root = tempDir('xattr-tree');
  mkdirSync(join(root, 'sub'));
  writeFileSync(join(root, 'plain'), 'no attributes');
  writeFileSync(join(root, 'f'), 'x');
  const odd = 'new\nline\\back ü=eq';
  writeFileSync(join(root, 'sub', odd), 'x');
  symlinkSync('nowhere', join(root, 'dangling'));
  execFileSync('setfattr', ['-n', 'user.bin', '-v', '0x000aff', join(root, 'f')]);
  execFileSync('setfattr', ['-n', 'user.k=\\ ü\nx', '-v', 'v', join(root, 'sub', odd)]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'd', join(root, 'sub')]);
  execFileSync('setfattr', ['-n', 'user.root', '-v', 'r', root]);
  // trusted.* is readable to root only; either way it must not show up.
  spawnSync('setfattr', ['-n', 'trusted.t', '-v', 't', join(root, 'f')]);
  const tree = await readTreeXattrs(root);
  assert.deepEqual(tree, new Map([
    [root, attrs([['user.root', 'r']])],
    [join(root, 'f'), attrs([['user.bin', Buffer.from([0, 10, 255])]])],
    [join(root, 'sub'), attrs([['user.dir', 'd']])],
    [join(root, 'sub', odd), attrs([['user.k=\\ ü\nx', 'v']])],
  ]));
  assert.deepEqual(await readPathXattrs(join(root, 'f')), attrs([['user.bin', Buffer.from([0, 10, 255])]]));
  assert.deepEqual(await readPathXattrs(join(root, 'plain')), new Map());
  assert.deepEqual(await readPathXattrs(join(root, 'dangling')), new Map());
  await assert.rejects(readTreeXattrs(join(root, 'missing')), /getfattr failed .*No such file or directory/);
});

test('without getfattr on PATH the tree reader returns null for the caller to warn', async () => {
  const saved = process.env.PATH;
  process.env.PATH = tempDir('empty-path');
  try {
    assert.equal(await readTreeXattrs('/tmp'), null);
    assert.equal(await readPathXattrs('/tmp'), null);
  } finally {
    process.env.PATH = saved;
  }
});
