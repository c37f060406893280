// The scoped publish (`changed`: only listed paths of the source are compared) against the plain walk:
// the same change published both ways into copies of one store, with the same keys and clock, must
// leave byte-identical stores (catalogs, data objects, manifest). Also what the scope misses and what
// it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { FsStore } from '../src/store/fs-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { catalogLoader, initRepository, readHead, MANIFEST_KEY } from '../src/repo/repository.js';
import { publishDirectory, type PublishOptions } from '../src/publish/publish-directory.js';
import { changedScope, sortByBytes } from '../src/publish/source-diff.js';
import { RefusedError } from '../src/errors.js';
import { prepareObject, prepareObjectAsync } from '../src/format/zlib-object.js';
import { catalogRows, cliOk, fileDigests, runCli, tempDir } from './helpers.js';
import { fetchCatalog } from '../src/repo/objects.js';
import type { ContentHash } from '../src/format/hash.js';
import { CatalogTree } from '../src/repo/catalog-tree.js';
import { newDirectoryEntry } from '../src/format/catalog-entry.js';

const FQRN = 'incr.example.org';
const keys = await generateRepositoryKeys(FQRN);
const clock = (() => { let t = Math.floor(Date.now() / 1000) * 1000 - 3_600_000; return () => () => new Date(t += 1000); })();


function baseTree(src: string): void {
  mkdirSync(join(src, 'a/x'), { recursive: true });
  mkdirSync(join(src, 'b/nested/deep'), { recursive: true });
  mkdirSync(join(src, 'c'));
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'a', `f${i}`), `a ${i}\n`);
  for (let i = 0; i < 5; i++) writeFileSync(join(src, 'a/x', `g${i}`), `x ${i}\n`);
  writeFileSync(join(src, 'b/nested/.cvmfscatalog'), '');
  writeFileSync(join(src, 'b/nested/deep/file'), 'deep\n');
  writeFileSync(join(src, 'b/nested/n1'), 'n1\n');
  writeFileSync(join(src, 'c/h1'), 'linked\n');
  linkSync(join(src, 'c/h1'), join(src, 'c/h2'));
  writeFileSync(join(src, 'c/plain'), 'plain\n');
  symlinkSync('../a/f1', join(src, 'c/link'));
  writeFileSync(join(src, 'top'), 'top\n');
}

interface Pair { src: string; plain: string; scoped: string; now: () => Date }

/** One repository published from `baseTree`, copied into two stores. */
async function pair(prefix: string): Promise<Pair> {
  const dir = tempDir(prefix);
  const src = join(dir, 'src');
  baseTree(src);
  const plain = join(dir, 'plain');
  const now = clock();
  const store = new FsStore(plain);
  await initRepository(store, { fqrn: FQRN, keys, now: now() });
  await publishDirectory(store, src, { fqrn: FQRN, keys, now, xattrs: null, autocatalogs: false });
  const scoped = join(dir, 'scoped');
  cpSync(plain, scoped, { recursive: true });
  return { src, plain, scoped, now };
}

/** Publishes the source into both stores at the same instant, plainly and scoped to `changed`. */
async function publishBoth(p: Pair, changed: string[], extra: Partial<PublishOptions> = { xattrs: null }) {
  const at = p.now();
  const options = { fqrn: FQRN, keys, now: () => at, autocatalogs: false, ...extra };
  const a = await publishDirectory(new FsStore(p.plain), p.src, options);
  const b = await publishDirectory(new FsStore(p.scoped), p.src, { ...options, changed });
  return { a, b };
}

/**
 * What each catalog of the head says, without its bytes: rows are written as files finish compressing,
 * so their rowids, and with them a catalog's bytes and hash, depend on the workers' timing in either
 * walk. Rows, chunk lists, nested mountpoints, counters and revision must be the same.
 */
async function catalogContents(store: FsStore): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  const visit = async (hash: ContentHash, mountpoint: string) => {
    const { db } = await fetchCatalog(store, hash);
    const rows = [...db.walk()].map(({ path, entry }) => ({
      path, ...entry, hash: entry.hash?.toHex() ?? null, xattr: entry.xattr?.toString('hex') ?? null,
      chunks: entry.chunkAlgorithm ? db.chunks(path, entry.chunkAlgorithm).map((c) => `${c.offset}+${c.size}:${c.hash.toHex()}`) : [],
    }));
    const nested = db.nestedCatalogs();
    out.set(mountpoint, { rows, nested: nested.map((n) => n.path), counters: db.readCounters(), revision: db.revision });
    db.close();
    for (const n of nested) await visit(n.hash, n.path);
  };
  await visit((await readHead(store))!.manifest.rootCatalog, '');
  return out;
}

/** Data objects of file contents (whole files and chunks), by key and digest: independent of row order. */
function contentObjects(root: string): Map<string, string> {
  return new Map([...fileDigests(root)].filter(([key]) => /^data\/[0-9a-f]{2}\/[0-9a-f]+P?$/.test(key)));
}

async function assertSameStores(p: Pair, summaries: { a: { revision: number }; b: { revision: number } }) {
  assert.equal(summaries.b.revision, summaries.a.revision);
  assert.deepEqual(await catalogContents(new FsStore(p.scoped)), await catalogContents(new FsStore(p.plain)), 'same catalog contents');
  assert.deepEqual(contentObjects(p.scoped), contentObjects(p.plain), 'same content objects');
}

test('scoped publish of changed files equals the plain publish: same catalogs, same objects', async () => {
  const p = await pair('incr-files');
  writeFileSync(join(p.src, 'a/f3'), 'changed 3\n');
  writeFileSync(join(p.src, 'a/x/g1'), 'changed g1, longer\n');
  writeFileSync(join(p.src, 'b/nested/deep/file'), 'changed deep\n');
  writeFileSync(join(p.src, 'top'), 'changed top\n');
  const s = await publishBoth(p, ['a/f3', 'a/x/g1', './b/nested/deep/file', 'top']);
  assert.equal(s.b.modified, 4);
  assert.ok(s.b.scanned < s.a.scanned / 3, `scoped walk scanned ${s.b.scanned} of ${s.a.scanned}`);
  await assertSameStores(p, s);
});

test('scoped publish of additions, removals, kind changes and metadata equals the plain publish', async () => {
  const p = await pair('incr-shapes');
  rmSync(join(p.src, 'a/f5'));                                      // listed, gone: removed
  mkdirSync(join(p.src, 'new/deeper'), { recursive: true });        // new ancestor: compared whole
  writeFileSync(join(p.src, 'new/deeper/n'), 'new\n');
  writeFileSync(join(p.src, 'new/sibling'), 'sibling\n');
  rmSync(join(p.src, 'c/plain'));                                    // file becomes a directory
  mkdirSync(join(p.src, 'c/plain'));
  writeFileSync(join(p.src, 'c/plain/inside'), 'inside\n');
  chmodSync(join(p.src, 'a/f7'), 0o600);                            // metadata only
  const old = statSync(join(p.src, 'a/f8'));
  utimesSync(join(p.src, 'a/f8'), old.atime, new Date(old.mtimeMs + 5000));
  rmSync(join(p.src, 'a/x'), { recursive: true });                 // a listed directory removed
  mkdirSync(join(p.src, 'd'));                                      // a listed new directory
  for (let i = 0; i < 3; i++) writeFileSync(join(p.src, 'd', `e${i}`), `d ${i}\n`);
  const s = await publishBoth(p, ['a/f5', 'new/deeper/n', 'c/plain', 'a/f7', 'a/f8', 'a/x', 'd', 'never/was/here']);
  assert.ok(s.b.removed >= 2 && s.b.added >= 7, JSON.stringify(s.b));
  await assertSameStores(p, s);
});

test('a scoped path in a hardlink group compares the whole directory, as the plain walk does', async () => {
  const p = await pair('incr-links');
  writeFileSync(join(p.src, 'c/h1'), 'linked, rewritten\n');         // both names of the inode change
  const s = await publishBoth(p, ['c/h1']);
  assert.equal(s.b.modified, s.a.modified);
  await assertSameStores(p, s);
});

test('scoped publish adds and removes nested catalogs by their marker, as the plain walk does', async () => {
  const p = await pair('incr-nest');
  writeFileSync(join(p.src, 'a/x/.cvmfscatalog'), '');
  rmSync(join(p.src, 'b/nested/.cvmfscatalog'));
  let s = await publishBoth(p, ['a/x/.cvmfscatalog', 'b/nested/.cvmfscatalog']);
  assert.deepEqual([...(await catalogRows(new FsStore(p.scoped), (await readHead(new FsStore(p.scoped)))!.manifest.rootCatalog)).keys()], ['', '/a/x']);
  await assertSameStores(p, s);
  writeFileSync(join(p.src, 'a/x/g2'), 'inside the new catalog\n');
  s = await publishBoth(p, ['a/x/g2']);
  await assertSameStores(p, s);
});

test('scoped publish reads the user xattrs of its scope like the plain walk reads the tree', async () => {
  const p = await pair('incr-xattr');
  writeFileSync(join(p.src, 'a/f2'), 'with attributes\n');
  execFileSync('setfattr', ['-n', 'user.scvmfs.test', '-v', 'yes', join(p.src, 'a/f2')]);
  execFileSync('setfattr', ['-n', 'user.scvmfs.dir', '-v', 'a', join(p.src, 'a')]);
  const s = await publishBoth(p, ['a/f2'], {});
  await assertSameStores(p, s);
  assert.ok(s.a.modified >= 2, 'the directory a and the file a/f2 changed');
});

test("'.' as the changed path is the plain walk", async () => {
  const p = await pair('incr-all');
  writeFileSync(join(p.src, 'a/f1'), 'one\n');
  writeFileSync(join(p.src, 'c/h2'), 'link broken? no: same inode\n');
  const s = await publishBoth(p, ['.']);
  assert.equal(s.b.scanned, s.a.scanned);
  await assertSameStores(p, s);
});

test('a change outside the listed paths is missed by the scoped publish and found by the next plain one', async () => {
  const p = await pair('incr-missed');
  writeFileSync(join(p.src, 'a/f1'), 'listed change\n');
  writeFileSync(join(p.src, 'a/f9'), 'unlisted change\n');
  const store = new FsStore(p.scoped);
  const scoped = await publishDirectory(store, p.src, { fqrn: FQRN, keys, now: p.now, xattrs: null, autocatalogs: false, changed: ['a/f1'] });
  assert.equal(scoped.modified, 1, 'the list is trusted: a/f9 is taken from the head');
  const plain = await publishDirectory(store, p.src, { fqrn: FQRN, keys, now: p.now, xattrs: null, autocatalogs: false });
  assert.equal(plain.modified, 1, 'the plain walk finds a/f9');
  assert.equal(plain.changed, true);
});

test('changed paths that are absolute or leave the source are refused before anything is written', async () => {
  const p = await pair('incr-bad');
  writeFileSync(join(p.src, 'a/f1'), 'would change\n');
  const manifest = readFileSync(join(p.scoped, MANIFEST_KEY));
  for (const [path, code] of [['/a/f1', 'changed-path-absolute'], ['a/../../etc', 'changed-path-outside'], ['..', 'changed-path-outside']] as const) {
    await assert.rejects(publishDirectory(new FsStore(p.scoped), p.src, { fqrn: FQRN, keys, now: p.now, xattrs: null, changed: ['a/f1', path] }),
      (err: unknown) => err instanceof RefusedError && err.code === code);
    assert.deepEqual(readFileSync(join(p.scoped, MANIFEST_KEY)), manifest);
  }
  const keysDir = join(p.src, '..', 'keys');
  await writeKeys(keysDir, FQRN, keys);
  const cli = await runCli(['publish', FQRN, p.src, '--store', p.scoped, '--keys', keysDir, '--no-cache', '--changed', 'a/f1', '--changed', '/etc']);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /changed path '\/etc' is absolute/);
  assert.deepEqual(readFileSync(join(p.scoped, MANIFEST_KEY)), manifest);
});

test('scvmfs publish --changed and --changed-from publish the listed paths only', async () => {
  const p = await pair('incr-cli');
  const keysDir = join(p.src, '..', 'keys');
  await writeKeys(keysDir, FQRN, keys);
  writeFileSync(join(p.src, 'a/f1'), 'cli one\n');
  writeFileSync(join(p.src, 'a/x/g0'), 'cli two\n');
  writeFileSync(join(p.src, 'top'), 'cli three\n');
  const list = join(p.src, '..', 'changed.txt');
  writeFileSync(list, 'a/x/g0\n\ntop\n');
  const run = await cliOk(['publish', FQRN, p.src, '--store', p.scoped, '--keys', keysDir, '--no-xattrs', '--no-cache', '--no-autocatalogs',
    '--changed', 'a/f1', '--changed-from', list, '--json', '-q']);
  const summary = JSON.parse(run.stdout) as { modified: number; scanned: number };
  assert.equal(summary.modified, 3);
  assert.ok(summary.scanned <= 6, `scanned ${summary.scanned}`);
  const refused = await runCli(['publish', FQRN, p.src, '--store', p.scoped, '--publisher', join(keysDir, 'x.publisher'), '--changed', 'a']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /--changed/);
});

test('changed paths form a scope: duplicates and paths under a listed directory fold into it', () => {
  const scope = changedScope(['a/b/c', 'a/b', 'a//b/d/', './e', 'e/f']);
  assert.ok(scope !== 'all');
  assert.deepEqual([...scope.keys()], ['a', 'e']);
  assert.equal(scope.get('e'), 'all');
  const a = scope.get('a');
  assert.ok(a instanceof Map && a.get('b') === 'all');
  assert.equal(changedScope(['x', '.']), 'all');
});

test('names sort by their UTF-8 bytes with or without characters above U+D7FF', () => {
  const names = ['b', 'a', '\u{1F600}', '\uE000', 'é', 'Z', 'a\u0000'.slice(0, 1) + 'b', '\uFFFD'];
  const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(sortByBytes([...names]), byBytes);
  const ascii = ['f10', 'f1', 'F2', '_', 'é'];
  assert.deepEqual(sortByBytes([...ascii]), [...ascii].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
});

test('catalogs compressed on the thread pool have the bytes and names of the blocking compression', async () => {
  const data = Buffer.concat(Array.from({ length: 2000 }, (_, i) => Buffer.from(`row ${i} ${i * 7919 % 1000}\n`)));
  // Mostly random bytes: the output spans several of the thread pool's 1 MiB output buffers.
  const large = Buffer.concat([randomBytes(3 << 20), data]);
  for (const input of [data, large, Buffer.alloc(0)]) {
    const sync = prepareObject('sha1', input, 'C');
    const pooled = await prepareObjectAsync('sha1', input, 'C');
    assert.deepEqual(pooled.stored, sync.stored);
    assert.equal(pooled.key, sync.key);
  }
});

test('a row claimed new that the tree already holds fails on the primary key instead of becoming a second row', async () => {
  const tree = CatalogTree.createEmpty(catalogLoader(new FsStore(tempDir('absent-claim'))), 'sha1', newDirectoryEntry('', 1, { uid: 0, gid: 0 }), 240);
  try {
    const file = { ...newDirectoryEntry('f', 1, { uid: 0, gid: 0 }), mode: 0o100644, size: 3, linkcount: 1 };
    await tree.upsert('/f', file, [], true);
    await assert.rejects(tree.upsert('/f', { ...file, size: 4 }, [], true), /UNIQUE constraint failed/);
    assert.equal((await tree.lookup('/f'))?.size, 3);
    await tree.upsert('/f', { ...file, size: 5 });
    assert.equal((await tree.lookup('/f'))?.size, 5);
    assert.equal((await tree.list('')).length, 1);
  } finally {
    tree.close();
  }
});
