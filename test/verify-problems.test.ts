// `verify` checks the store itself, never the local object cache, and lists every problem it finds
// (object key and the paths referencing it) up to --max-problems, then fails. Through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync, deflateSync } from 'node:zlib';
import { cliOk, runCli, tempDir } from './helpers.js';
import { verifyRepository, type VerifyReport } from '../src/client/verify.js';
import { RepositoryReader } from '../src/client/reader.js';
import { CachedSource } from '../src/client/sources.js';
import { FsStore } from '../src/store/fs-store.js';
import { parseManifest } from '../src/format/manifest.js';
import { fetchCatalog } from '../src/repo/objects.js';
import type { RefusedError } from '../src/errors.js';

const FQRN = 'verify.example.org';

// The children inherit this: `cat` below fills the default cache (~/.cache/scvmfs) in a place of our own.
const CACHE_HOME = tempDir('verify-cache-home');
process.env.XDG_CACHE_HOME = CACHE_HOME;
const cacheDir = join(CACHE_HOME, 'scvmfs', FQRN);

/** A published repository of the given files; `objects` maps each content to its data object. */
async function repository(name: string, files: Record<string, string>, store?: string) {
  const work = tempDir(name);
  const keys = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(src);
  for (const [file, content] of Object.entries(files)) writeFileSync(join(src, file), content);
  const where = store ?? join(work, 'store');
  await cliOk(['init', FQRN, '--store', where, '--keys', keys, ...(store ? ['--create-bucket'] : [])]);
  await cliOk(['publish', FQRN, src, '--store', where, '--keys', keys, '-q']);
  return { work, store: where, pub: join(keys, `${FQRN}.pub`) };
}

/** Data objects (no suffix) of a directory store, by the content they inflate to. */
function objectsByContent(store: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of readdirSync(join(store, 'data'))) {
    for (const f of readdirSync(join(store, 'data', d))) {
      if (/[A-Z]$/.test(f)) continue;
      out.set(inflateSync(readFileSync(join(store, 'data', d, f))).toString(), `data/${d}/${f}`);
    }
  }
  return out;
}

const verifyArgs = (location: string, pub: string, ...extra: string[]) => ['verify', location, '--fqrn', FQRN, '--pubkey', pub, ...extra];

function parseReport(stdout: string): VerifyReport & { ok: boolean } {
  return JSON.parse(stdout) as VerifyReport & { ok: boolean };
}

test('verify reads the store, not a warm local cache: an overwritten and a deleted object are both listed with their paths', async () => {
  const r = await repository('warm', { 'a.txt': 'content of a\n', 'a-copy.txt': 'content of a\n', 'b.txt': 'content of b\n', 'c.txt': 'content of c\n' });
  const objects = objectsByContent(r.store);
  const overwritten = objects.get('content of a\n')!;
  const deleted = objects.get('content of b\n')!;
  // Warm the default cache with every file, as any earlier ls/cat/verify would have.
  await cliOk(['cat', r.store, '/a.txt', '/b.txt', '/c.txt', '--fqrn', FQRN, '--pubkey', r.pub]);
  assert.ok(existsSync(join(cacheDir, overwritten)) && existsSync(join(cacheDir, deleted)), 'the cache holds both objects');
  await cliOk(verifyArgs(r.store, r.pub));
  const manifest = readFileSync(join(r.store, '.cvmfspublished'));

  writeFileSync(join(r.store, overwritten), deflateSync('tampered\n'));
  rmSync(join(r.store, deleted));

  const res = await runCli(verifyArgs(r.store, r.pub));
  assert.notEqual(res.code, 0, res.stdout);
  assert.match(res.stderr, /2 problems in verify\.example\.org revision 2/);
  assert.match(res.stderr, new RegExp(`${overwritten}: corrupt object ${overwritten}: content hashes to [0-9a-f]+ \\(referenced by /a(-copy)?\\.txt, /a(-copy)?\\.txt\\)`));
  assert.match(res.stderr, new RegExp(`${deleted}: missing from the store \\(referenced by /b\\.txt\\)`));

  const json = await runCli(verifyArgs(r.store, r.pub, '--json'));
  assert.notEqual(json.code, 0);
  const report = parseReport(json.stdout);
  assert.equal(report.ok, false);
  assert.equal(report.revision, 2);
  assert.equal(report.truncated, false);
  const byKey = new Map(report.problems.map((p) => [p.key, p]));
  assert.equal(report.problems.length, 2);
  assert.equal(byKey.get(overwritten)?.code, 'corrupt-object');
  assert.deepEqual(byKey.get(overwritten)?.paths.sort(), ['/a-copy.txt', '/a.txt']);
  assert.equal(byKey.get(deleted)?.code, 'missing-object');
  assert.deepEqual(byKey.get(deleted)?.paths, ['/b.txt']);
  assert.ok(readFileSync(join(r.store, '.cvmfspublished')).equals(manifest));
});

test('verify neither reads nor fills the local cache', async () => {
  const r = await repository('no-fill', { 'x.txt': 'x\n' });
  rmSync(join(CACHE_HOME, 'scvmfs'), { recursive: true, force: true });
  const ok = await cliOk(verifyArgs(r.store, r.pub, '--json'));
  const report = parseReport(ok.stdout);
  assert.equal(report.ok, true);
  assert.deepEqual(report.problems, []);
  assert.equal(report.objects, 1);
  assert.equal(existsSync(join(CACHE_HOME, 'scvmfs')), false, 'verify wrote to the cache');
});

test('--max-problems N stops after N problems and says there may be more', async () => {
  const files = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`f${i}`, `file number ${i}\n`]));
  const r = await repository('limit', files);
  for (const key of objectsByContent(r.store).values()) rmSync(join(r.store, key));

  const all = await runCli(verifyArgs(r.store, r.pub, '--json'));
  assert.notEqual(all.code, 0);
  const full = parseReport(all.stdout);
  assert.equal(full.problems.length, 5);
  assert.equal(full.truncated, false);
  assert.deepEqual(full.problems.map((p) => p.paths[0]).sort(), ['/f0', '/f1', '/f2', '/f3', '/f4']);

  const limited = await runCli(verifyArgs(r.store, r.pub, '--max-problems', '2'));
  assert.notEqual(limited.code, 0);
  assert.match(limited.stderr, /2 problems in .* \(stopped after 2: there may be more; raise --max-problems to see them\)/);
  assert.equal(limited.stderr.match(/missing from the store/g)?.length, 2);
  const limitedJson = parseReport((await runCli(verifyArgs(r.store, r.pub, '--max-problems', '2', '--json'))).stdout);
  assert.equal(limitedJson.problems.length, 2);
  assert.equal(limitedJson.truncated, true);

  const bad = await runCli(verifyArgs(r.store, r.pub, '--max-problems', '0'));
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--max-problems needs a positive whole number/);
});

test('a manifest that cannot be trusted is one problem in the --json report', async () => {
  const r = await repository('tampered', { 'x.txt': 'x\n' });
  const file = join(r.store, '.cvmfspublished');
  writeFileSync(file, Buffer.from(readFileSync(file, 'latin1').replace(/^S2$/m, 'S9'), 'latin1'));
  const res = await runCli(verifyArgs(r.store, r.pub, '--json'));
  assert.notEqual(res.code, 0);
  const report = parseReport(res.stdout);
  assert.equal(report.ok, false);
  assert.equal(report.revision, null);
  assert.equal(report.problems.length, 1);
  assert.equal(report.problems[0]!.key, '.cvmfspublished');
  assert.match(report.problems[0]!.message, /signature does not verify/);
});

test('verify reads an s3:// store on Ceph and lists a deleted object', { timeout: 120_000 }, async () => {
  const { freshBucket } = await import('./s3-env.js');
  const bucket = await freshBucket('verify-s3');
  const r = await repository('s3', { 'one.txt': 'one\n', 'two.txt': 'two\n' }, bucket.url('repo'));
  const ok = parseReport((await cliOk(verifyArgs(r.store, r.pub, '--json'))).stdout);
  assert.equal(ok.ok, true);
  assert.equal(ok.objects, 2);
  assert.match(ok.location, /^s3:\/\/t-verify-s3-[0-9a-f]+\/repo/);

  const store = bucket.store('repo');
  let victim: string | undefined;
  for (const { key } of (await store.list('data/')).objects) {
    const got = await store.get(key);
    if (!/[A-Z]$/.test(key) && inflateSync(got!.body).toString() === 'one\n') victim = key;
  }
  assert.ok(victim, 'the object of one.txt');
  await store.delete([victim]);
  const res = await runCli(verifyArgs(r.store, r.pub, '--json'));
  assert.notEqual(res.code, 0);
  const report = parseReport(res.stdout);
  assert.deepEqual(report.problems.map((p) => [p.key, p.code]), [[victim, 'missing-object']]);
  assert.deepEqual(report.problems[0]!.paths, ['/one.txt']);
});

test('a missing nested catalog is listed with its mountpoint and verify goes on to the other problems', async () => {
  const r = await repository('nested', { 'top.txt': 'top\n' });
  const src = join(r.work, 'src');
  mkdirSync(join(src, 'sub'));
  writeFileSync(join(src, 'sub', '.cvmfscatalog'), '');
  writeFileSync(join(src, 'sub', 'inner.txt'), 'inner\n');
  await cliOk(['publish', FQRN, src, '--store', r.store, '--keys', join(r.work, 'keys'), '-q']);
  const store = new FsStore(r.store);
  const manifest = parseManifest((await store.get('.cvmfspublished'))!.body).manifest;
  const { db } = await fetchCatalog(store, manifest.rootCatalog);
  const nested = db.nestedCatalogs();
  db.close();
  assert.deepEqual(nested.map((n) => n.path), ['/sub']);
  const nestedKey = nested[0]!.hash.objectKey('C');
  const topKey = objectsByContent(r.store).get('top\n')!;
  rmSync(join(r.store, nestedKey));
  rmSync(join(r.store, topKey));

  const res = await runCli(verifyArgs(r.store, r.pub, '--json'));
  assert.notEqual(res.code, 0);
  const report = parseReport(res.stdout);
  assert.deepEqual(report.problems.map((p) => [p.key, p.code, p.paths]).sort(),
    [[nestedKey, 'missing-object', ['/sub']], [topKey, 'missing-object', ['/top.txt']]].sort());
});

test('verifyRepository refuses a reader that reads through the local object cache', async () => {
  const r = await repository('cached-reader', { 'x.txt': 'x\n' });
  const pub = readFileSync(r.pub, 'utf8');
  const reader = await RepositoryReader.open(new CachedSource(new FsStore(r.store), join(r.work, 'cache')), { fqrn: FQRN, publicKeys: [pub] });
  await assert.rejects(verifyRepository(reader), (err: RefusedError) => err.code === 'verify-through-cache');
  reader.close();
  const direct = await RepositoryReader.open(new FsStore(r.store), { fqrn: FQRN, publicKeys: [pub] });
  assert.equal((await verifyRepository(direct)).problems.length, 0);
  direct.close();
});
