// The product's home: serverless publishing into S3 (Ceph radosgw on 127.0.0.1), with eight writers
// racing, the manifest swap contested by two processes, and publishes under injected store faults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir, TEST_SOURCE_DIR } from './helpers.js';
import { freshBucket } from './s3-env.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { localInvoker } from '../src/runtime/invokers.js';
import { RepositoryReader } from '../src/client/reader.js';
import { HttpSource } from '../src/client/sources.js';
import { verifyRepository } from '../src/client/verify.js';
import { FaultStore, type FaultOptions } from '../src/store/fault-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import { openStore } from '../src/store/open-store.js';

const FQRN = 's3chain.example.org';
const run = promisify(execFile);

function makeTree(root: string, label: string, files: number): void {
  mkdirSync(join(root, 'lib'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'lib', `f${i}`), `${label} file ${i}\n`);
  writeFileSync(join(root, 'README'), `${label}\n`);
}

function awsEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'S3_ENDPOINT']) if (process.env[k]) out[k] = process.env[k]!;
  return out;
}

/** A repository under `<bucket>/<fqrn>`, with its keys written to a keys directory. */
async function newRepository(bucket: Awaited<ReturnType<typeof freshBucket>>, label: string) {
  const url = bucket.url(FQRN);
  const store = openStore(url);
  const work = tempDir(label);
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  return { url, store, work, keysDir, keys };
}

test('eight writers with keys for /w1 … /w8 publish ten times each, all at once, into Ceph S3', async () => {
  const bucket = await freshBucket('eight-writers');
  const { url, store, work, keysDir, keys } = await newRepository(bucket, 's3-writers');
  const writers = Array.from({ length: 8 }, (_, i) => `w${i + 1}`);
  for (const w of writers) await addPublisher(store, { keysDir, fqrn: FQRN, name: w, paths: [`/${w}`] });
  const env = { SCVMFS_STORE: url, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir, ...awsEnv() };
  const rounds = 10;
  const landed: { writer: string; round: number; revision: number }[] = [];
  let rebases = 0;
  let grafts = 0;
  await Promise.all(writers.map(async (w) => {
    const publisher = await loadPublisherKey(keysDir, w);
    const fns = localInvoker({ env, limits: { timeoutMs: 20_000, memoryMb: 256 } });
    try {
      for (let r = 0; r < rounds; r++) {
        const src = join(work, `${w}-${r}`);
        makeTree(src, `${w} round ${r}`, 3);
        const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: `/${w}`, functions: fns });
        landed.push({ writer: w, round: r, revision: s.revision });
        rebases += s.rebases;
        grafts += s.grafts;
      }
    } finally {
      await fns.close();
    }
  }));
  assert.equal(landed.length, 80);
  assert.equal(new Set(landed.map((l) => l.revision)).size, 80, 'every change landed in its own revision');
  for (const w of writers) {
    const mine = landed.filter((l) => l.writer === w).map((l) => l.revision);
    assert.deepEqual(mine, [...mine].sort((a, b) => a - b), `${w}'s revisions strictly increase`);
  }
  const head = (await readHead(store))!;
  assert.equal(head.manifest.revision, 81);
  const reader = await RepositoryReader.open(new HttpSource(bucket.publicUrl(FQRN)), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  for (const w of writers) assert.equal((await reader.readFile(`/${w}/README`)).toString(), `${w} round ${rounds - 1}\n`);
  await verifyRepository(reader);
  reader.close();
  console.log(`# 80 publishes by 8 writers: ${rebases} rebases, ${grafts} of them by grafting the writer's catalog`);
  // After its first publish each writer's path is its own nested catalog, so lost races cost one reference.
  assert.ok(grafts > 0 && grafts >= rebases / 2, `${grafts} grafts of ${rebases} rebases`);
});

test('two processes race to swap the manifest on Ceph: exactly one wins, the other reports the conflict', async () => {
  const bucket = await freshBucket('manifest-race');
  const { url, store, keysDir, keys } = await newRepository(bucket, 's3-race');
  const script = join(TEST_SOURCE_DIR, '..', 'dist', 'test', 'fixtures', 'swap-manifest.js');
  const go = Date.now() + 1500;
  const outcomes = await Promise.all(['a', 'b'].map((label) =>
    run(process.execPath, [script, url, keysDir, FQRN, label, String(go)], { env: process.env })
      .then((r) => r.stdout.trim(), (e: { stdout?: string; stderr?: string }) => `failed: ${e.stdout ?? ''} ${e.stderr ?? ''}`)));
  assert.deepEqual(outcomes.map((o) => o.split(' ')[0]).sort(), ['conflict', 'won'], outcomes.join(' | '));
  const loser = outcomes.find((o) => o.startsWith('conflict'))!;
  assert.match(loser, /another publish committed/);
  const head = (await readHead(store))!;
  assert.equal(head.manifest.revision, 2);
  const reader = await RepositoryReader.open(new HttpSource(bucket.publicUrl(FQRN)), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  const winner = outcomes.find((o) => o.startsWith('won'))!.split(' ')[1];
  assert.equal((await reader.readFile(`/${winner}`)).toString(), winner);
  assert.equal(await reader.stat(`/${winner === 'a' ? 'b' : 'a'}`), null, 'the loser left nothing behind');
  await verifyRepository(reader);
  reader.close();
});

const FAULTS: [string, FaultOptions][] = [
  ['every 7th request fails', { failEvery: 7 }],
  ['a burst of 503 SlowDown', { burst: { from: 5, count: 4 }, status: 503 }],
  ['a timeout mid-upload', { timeout: { nth: [12], delayMs: 50 } }],
  ['500 after a successful manifest swap', { failAfterConditionalPut: { key: '.cvmfspublished' } }],
];

for (const [name, faults] of FAULTS) {
  test(`publishing into S3 with ${name} completes or fails clearly, and the repository verifies`, async () => {
    const bucket = await freshBucket(`fault-${name.slice(0, 12)}`);
    const raw = bucket.store(FQRN);
    const keys = await generateRepositoryKeys(FQRN);
    await initRepository(raw, { fqrn: FQRN, keys });
    const faulty = new RetryingStore(new FaultStore(raw, faults), { attempts: 4, baseDelayMs: 5 });
    const src = join(tempDir('s3-fault'), 'src');
    makeTree(src, name, 30);
    let outcome: string;
    try {
      const s = await publishDirectory(faulty, src, { fqrn: FQRN, keys, xattrs: null });
      outcome = `published revision ${s.revision}`;
    } catch (err) {
      outcome = (err as Error).message;
      assert.match(outcome, /store|failed|precondition|another publish/i, 'a clear message');
    }
    const reader = await RepositoryReader.open(new HttpSource(bucket.publicUrl(FQRN)), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
    const revision = reader.manifest.revision;
    assert.ok(revision === 1 || revision === 2, `revision ${revision} (${outcome})`);
    if (outcome.startsWith('published')) {
      assert.equal(revision, 2);
      assert.equal((await reader.readFile('/README')).toString(), `${name}\n`);
    }
    await verifyRepository(reader);
    reader.close();
  });
}
