// `scvmfs check`: a chain of bounded slices over the catalog walk that lists every problem with its paths,
// reads each object once however many paths reference it, and survives kills and double delivery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { cliOk, runCli, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { parseManifest, signManifest } from '../src/format/manifest.js';
import { fetchCatalog } from '../src/repo/objects.js';
import { loadKeys } from '../src/repo/keys-dir.js';
import { compressObject } from '../src/format/zlib-object.js';
import { ContentHash } from '../src/format/hash.js';
import { handleCheckEvent, readCheckReport, type CheckEvent } from '../src/functions/check.js';
import type { FunctionContext } from '../src/functions/types.js';
import { CheckFailedError, runCheck, type CheckRunOptions } from '../src/runtime/check-run.js';
import { killAtPlan, killPlansFrom, type InvocationRecord } from '../src/runtime/local.js';
import type { ByteRange, ObjectStore, ReadRange } from '../src/store/object-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { CatalogWalk } from '../src/repo/catalog-walk.js';

const FQRN = 'check.example.org';
process.env.SCVMFS_SCRATCH = tempDir('check-scratch');
const SHARED = 'the same bytes under fifty paths\n';

/**
 * A repository with a nested catalog (/sub), a chunked file (/big.bin), and one content under fifty
 * paths (/copies/c0..c49).
 */
async function repository(name: string) {
  const work = tempDir(name);
  const keys = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub', 'deep'), { recursive: true });
  mkdirSync(join(src, 'copies'));
  writeFileSync(join(src, 'top.txt'), 'top\n');
  writeFileSync(join(src, 'corrupt.txt'), 'soon corrupted\n');
  writeFileSync(join(src, 'big.bin'), randomBytes(700 * 1024));
  writeFileSync(join(src, 'sub', '.cvmfscatalog'), '');
  writeFileSync(join(src, 'sub', 'inner.txt'), 'inner\n');
  writeFileSync(join(src, 'sub', 'deep', 'x.txt'), 'deep x\n');
  for (let i = 0; i < 50; i++) writeFileSync(join(src, 'copies', `c${i}`), SHARED);
  const store = join(work, 'store');
  await cliOk(['init', FQRN, '--store', store, '--keys', keys]);
  await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '-q', '--no-cache', '--chunk-sizes', '65536,131072,262144']);
  return { work, store, keys, pub: join(keys, `${FQRN}.pub`), publicKeys: [readFileSync(join(keys, `${FQRN}.pub`), 'utf8')] };
}

type Repo = Awaited<ReturnType<typeof repository>>;

/** Whole-file data objects (no suffix) by the content they inflate to; chunks (P) apart. */
function objects(store: string): { byContent: Map<string, string>; chunks: string[] } {
  const byContent = new Map<string, string>();
  const chunks: string[] = [];
  for (const d of readdirSync(join(store, 'data'))) {
    for (const f of readdirSync(join(store, 'data', d))) {
      const key = `data/${d}/${f}`;
      if (f.endsWith('P')) chunks.push(key);
      else if (!/[A-Z]$/.test(f)) byContent.set(inflateSync(readFileSync(join(store, key))).toString('latin1'), key);
    }
  }
  return { byContent, chunks };
}

/** Rewrites the root catalog with one wrong self counter, stores it under its new hash and re-signs the manifest. */
async function wrongRootCounter(r: Repo): Promise<string> {
  const store = new FsStore(r.store);
  const signed = parseManifest((await store.get('.cvmfspublished'))!.body);
  const { db } = await fetchCatalog(store, signed.manifest.rootCatalog);
  const counters = db.readCounters();
  db.writeCounters({ ...counters.self, regular: counters.self.regular + 1 }, counters.subtree);
  const bytes = db.serialize();
  db.close();
  const stored = compressObject(bytes);
  const hash = ContentHash.of(signed.manifest.rootCatalog.algorithm, stored);
  await store.put(hash.objectKey('C'), stored);
  const keys = await loadKeys(r.keys, FQRN, { need: ['repository'] });
  await store.put('.cvmfspublished', signManifest({ ...signed.manifest, rootCatalog: hash, rootCatalogSize: bytes.length }, keys.repositoryKeyPem));
  return hash.objectKey('C');
}

interface Damage { expected: [string, string, string[]][]; manifest: Buffer }

/** The five kinds of damage the issue names; returns the problems a full check must list. */
async function damage(r: Repo): Promise<Damage> {
  const { byContent, chunks } = objects(r.store);
  const top = byContent.get('top\n')!;
  const corrupt = byContent.get('soon corrupted\n')!;
  rmSync(join(r.store, top));
  writeFileSync(join(r.store, corrupt), deflateSync('tampered\n'));
  const store = new FsStore(r.store);
  const { db } = await fetchCatalog(store, parseManifest((await store.get('.cvmfspublished'))!.body).manifest.rootCatalog);
  const nested = db.nestedCatalogs()[0]!.hash.objectKey('C');
  db.close();
  const file = join(r.store, nested);
  truncateSync(file, Math.floor(readFileSync(file).length / 2));
  const chunk = chunks.sort()[0]!;
  rmSync(join(r.store, chunk));
  const root = await wrongRootCounter(r);
  return {
    manifest: readFileSync(join(r.store, '.cvmfspublished')),
    expected: ([
      [top, 'missing-object', ['/top.txt']],
      [corrupt, 'corrupt-object', ['/corrupt.txt']],
      [nested, 'corrupt-object', ['/sub']],
      [chunk, 'missing-object', ['/big.bin']],
      [root, 'bad-catalog', ['/']],
    ] as [string, string, string[]][]).sort(),
  };
}

const checkArgs = (location: string, pub: string, ...extra: string[]) => ['check', location, '--fqrn', FQRN, '--pubkey', pub, ...extra];
const problemSet = (problems: { key: string; code: string; paths: string[] }[]) => problems.map((p) => [p.key, p.code, p.paths] as [string, string, string[]]).sort();

test('check passes on a clean repository with nested catalogs and a chunked file, listing and --full, on the local runtime', async () => {
  const r = await repository('clean');
  const manifest = readFileSync(join(r.store, '.cvmfspublished'));
  const listed = JSON.parse((await cliOk(checkArgs(r.store, r.pub, '--json'))).stdout);
  assert.equal(listed.ok, true);
  assert.deepEqual(listed.problems, []);
  assert.equal(listed.runtime, 'local');
  assert.equal(listed.catalogs, 2);
  assert.ok(listed.listed > listed.objects && listed.objects >= 8, `${listed.objects} objects, ${listed.listed} listed`);
  assert.ok(listed.peakMemoryMb > 0 && listed.peakMemoryMb < 128);
  const full = JSON.parse((await cliOk(checkArgs(r.store, r.pub, '--json', '--full', '--runtime', 'inline'))).stdout);
  assert.equal(full.ok, true);
  assert.equal(full.objects, listed.objects);
  assert.equal(full.listed, 0, 'a full check reads every object and needs no listing of data/');
  const text = await cliOk(checkArgs(r.store, r.pub));
  assert.match(text.stdout, /^OK check\.example\.org revision 2: 2 catalogs, \d+ entries, \d+ objects .* entries\/s/);
  assert.ok(readFileSync(join(r.store, '.cvmfspublished')).equals(manifest));
  const left = readdirSync(join(r.store, '.scvmfs', 'check', 'head'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
  assert.ok(left.includes('state.json') && left.every((f) => f === 'state.json' || f.startsWith('part-')), `the walk log is dropped at the end: ${left}`);
});

test('one check run finds and names a deleted object, a corrupted object, a truncated nested catalog, a wrong counter and a missing chunk', async () => {
  const r = await repository('damaged');
  const d = await damage(r);
  const res = await runCli(checkArgs(r.store, r.pub, '--full', '--json'));
  assert.equal(res.code, 3, res.stderr);
  const report = JSON.parse(res.stdout);
  assert.equal(report.ok, false);
  assert.deepEqual(problemSet(report.problems), d.expected);
  assert.match(report.problems.find((p: { code: string }) => p.code === 'bad-catalog').message, /statistics self_regular is \d+, expected \d+/);
  assert.match(res.stderr, /5 problems in check\.example\.org revision 2/);
  // Without --full the listing finds all but the corrupted bytes, still in one run.
  const listed = await runCli(checkArgs(r.store, r.pub, '--json'));
  assert.equal(listed.code, 3);
  assert.deepEqual(problemSet(JSON.parse(listed.stdout).problems), d.expected.filter(([, code, paths]) => !(code === 'corrupt-object' && paths[0] === '/corrupt.txt')));
  assert.ok(readFileSync(join(r.store, '.cvmfspublished')).equals(d.manifest));
});

test('a check killed at every checkpoint of every step, and delivered twice, reports the same problems', { timeout: 900_000 }, async () => {
  const r = await repository('kills');
  const d = await damage(r);
  const options: CheckRunOptions = { fqrn: FQRN, publicKeys: r.publicKeys, sliceCatalogs: 1, slicePages: 1, pageKeys: 5, timeoutMs: 30_000 };
  const records: InvocationRecord[] = [];
  const clean = await runCheck(r.store, { ...options, local: { onInvocation: (rec) => records.push(rec) } }).catch((e: CheckFailedError) => e.report);
  const expected = d.expected.filter(([, code, paths]) => !(code === 'corrupt-object' && paths[0] === '/corrupt.txt'));
  assert.deepEqual(problemSet(clean.problems), expected);
  assert.ok(clean.slices >= 6, `${clean.slices} slices: listing and walk both took several`);
  const plans = killPlansFrom(records);
  assert.ok(plans.length >= 20, `${plans.length} kill points`);
  for (const [i, plan] of plans.entries()) {
    const got = await runCheck(r.store, { ...options, local: { killAt: killAtPlan(plan), deliverTwice: i % 2 === 0 ? 'sequential' : 'concurrent' } })
      .catch((e: CheckFailedError) => e.report);
    assert.deepEqual(problemSet(got.problems), expected, `killed at ${JSON.stringify(plan)}`);
    assert.equal(got.catalogs, clean.catalogs);
    assert.equal(got.objects, clean.objects);
  }
  // --resume after a chain that stopped: kill the same step past its retries, then resume.
  const stopped = await runCheck(r.store, { ...options, local: { killAt: (fn, i) => (i >= 3 && i < 6 ? 'before-answer' : undefined) } }).catch((e: Error) => e);
  assert.match((stopped as Error).message, /--resume/);
  const resumed = await runCheck(r.store, { ...options, resume: true }).catch((e: CheckFailedError) => e.report);
  assert.deepEqual(problemSet(resumed.problems), expected);
  assert.ok(readFileSync(join(r.store, '.cvmfspublished')).equals(d.manifest));
});

/** Counts reads per key, as a metered store counts them per kind. */
class KeyCounter implements ObjectStore {
  readonly reads = new Map<string, number>();
  readonly description: string;
  constructor(private readonly inner: ObjectStore) {
    this.description = inner.description;
  }
  private count(key: string) {
    this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
  }
  get(key: string, range?: ByteRange) { this.count(key); return this.inner.get(key, range); }
  getStream(key: string, range?: ReadRange) { this.count(key); return this.inner.getStream(key, range); }
  head(key: string) { this.count(key); return this.inner.head(key); }
  put(...a: Parameters<ObjectStore['put']>) { return this.inner.put(...a); }
  list(...a: Parameters<ObjectStore['list']>) { return this.inner.list(...a); }
  delete(keys: string[]) { return this.inner.delete(keys); }
}

test('check --full reads an object referenced by 50 paths once, and its problem names 20 paths and 30 more', async () => {
  const r = await repository('dedup');
  const shared = objects(r.store).byContent.get(SHARED)!;
  writeFileSync(join(r.store, shared), deflateSync('not what fifty paths expect\n'));
  const source = new KeyCounter(new FsStore(r.store));
  const control = new FsStore(join(r.work, 'state'));
  const event: CheckEvent = { id: 'dedup', publicKeys: r.publicKeys, full: true, sliceCatalogs: 1 };
  const context: FunctionContext = { awsRequestId: 'x', functionName: 'check', memoryLimitInMB: 128, getRemainingTimeInMillis: () => 60_000 };
  let steps = 0;
  for (; ; steps++) {
    const answer = await handleCheckEvent(event, { fqrn: FQRN, source, control }, context);
    if (!answer.next) break;
  }
  assert.ok(steps >= 3, `${steps} steps`);
  assert.equal(source.reads.get(shared), 1, 'the shared object was read once');
  // Every object once; the root catalog also once before the walk, when the head is trusted.
  for (const [key, n] of source.reads) if (key.startsWith('data/')) assert.equal(n, key.endsWith('C') && n === 2 ? 2 : 1, `${key} read ${n} times`);
  assert.equal([...source.reads].filter(([k, n]) => k.endsWith('C') && n === 2).length, 1, 'only the root catalog is read twice');
  const report = (await readCheckReport(control, 'dedup'))!;
  assert.equal(report.problems.length, 1);
  const p = report.problems[0]!;
  assert.deepEqual([p.key, p.code, p.paths.length, p.morePaths], [shared, 'corrupt-object', 20, 30]);
  assert.ok(p.paths.every((x) => /^\/copies\/c\d+$/.test(x)));
});

test('check over http(s) runs inline with its state in --state-dir and lists a deleted object with its path', async () => {
  const r = await repository('http');
  const server = await serveStore(new FsStore(r.store), { host: '127.0.0.1', port: 0 });
  try {
    const state = join(r.work, 'state');
    const needs = await runCli(checkArgs(server.url, r.pub));
    assert.equal(needs.code, 3);
    assert.match(needs.stderr, /--state-dir/);
    const ok = JSON.parse((await cliOk(checkArgs(server.url, r.pub, '--state-dir', state, '--json'))).stdout);
    assert.equal(ok.ok, true);
    assert.equal(ok.runtime, 'inline');
    const top = objects(r.store).byContent.get('top\n')!;
    rmSync(join(r.store, top));
    const res = await runCli(checkArgs(server.url, r.pub, '--state-dir', state, '--json'));
    assert.equal(res.code, 3);
    assert.deepEqual(problemSet(JSON.parse(res.stdout).problems), [[top, 'missing-object', ['/top.txt']]]);
    assert.deepEqual(readdirSync(r.store).filter((f) => f === '.scvmfs' && readdirSync(join(r.store, f)).includes('check')), [], 'nothing written to the served store');
  } finally {
    await server.close();
  }
});

test('a walk reopened after it logged a segment logs every key it adds next (log sequence numbers are never reused)', () => {
  const file = join(tempDir('walk-log-seq'), 'walk.db');
  const first = CatalogWalk.open(file);
  first.mark(['a', 'b']);
  first.loggedUpTo(first.unloggedDelta().upTo);
  first.close();
  // A warm sandbox goes on from the same file: its next segment must hold all three new keys, or a
  // cold sandbox replaying the segments would miss some (check: objects "missing"; gc: live objects swept).
  const again = CatalogWalk.open(file);
  again.mark(['c', 'd', 'e']);
  assert.deepEqual(again.unloggedDelta().delta.marked, ['c', 'd', 'e']);
  again.close();
});

test('check --all-revisions also checks the revisions behind the head and names the object only an old one lost', async () => {
  const r = await repository('revisions');
  const src = join(r.work, 'src');
  writeFileSync(join(src, 'top.txt'), 'top, second version\n');
  await cliOk(['publish', FQRN, src, '--store', r.store, '--keys', r.keys, '-q', '--no-cache', '--chunk-sizes', '65536,131072,262144']);
  // The first version of /top.txt is referenced by revision 2 only.
  const old = objects(r.store).byContent.get('top\n')!;
  rmSync(join(r.store, old));
  const head = JSON.parse((await cliOk(checkArgs(r.store, r.pub, '--json', '--runtime', 'inline'))).stdout);
  assert.equal(head.revision, 3);
  assert.equal(head.roots, 1);
  const all = await runCli(checkArgs(r.store, r.pub, '--json', '--all-revisions', '--runtime', 'inline'));
  assert.equal(all.code, 3, all.stderr);
  const report = JSON.parse(all.stdout);
  assert.deepEqual(problemSet(report.problems), [[old, 'missing-object', ['/top.txt']]]);
  // Revisions 1, 2 and 3: their root catalogs, and the nested /sub catalog shared by 2 and 3 only once.
  assert.ok(report.catalogs >= 4 && report.catalogs < 2 * head.catalogs + 1, `${report.catalogs} catalogs`);
});
