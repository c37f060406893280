// Replication into a directory: a stock-made repository and one of ours, incremental runs, refusals, and
// a chain killed at every checkpoint with every event delivered twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, cliRepo, extractVector, runCli, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { MeteredStore } from '../src/store/metered-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { verifyAt } from '../src/client/verify.js';
import { RepositoryReader } from '../src/client/reader.js';
import { runReplication, REPLICATE_STATE_KEY, type ReplicateEvent } from '../src/functions/replicate.js';
import { LocalRuntime, killAtPlan, killPlansFrom } from '../src/runtime/local.js';
import { listAll, type ObjectReader, type ObjectStore } from '../src/store/object-store.js';
import { readReflog } from '../src/format/reflog.js';

const FQRN = 'replica.example.org';

/** A source that counts the keys it is asked for. */
class CountingSource implements ObjectReader {
  readonly gets: string[] = [];
  constructor(private readonly inner: ObjectReader) {}
  get description() { return this.inner.description; }
  get(key: string) {
    this.gets.push(key);
    return this.inner.get(key);
  }
}

/** A replica that records the keys written. */
class RecordingPuts extends MeteredStore {
  readonly puts: string[] = [];
  override put(key: string, body: Uint8Array, options?: Parameters<ObjectStore['put']>[2]) {
    this.puts.push(key);
    return super.put(key, body, options);
  }
}

async function dataKeys(dir: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const o of listAll(new FsStore(dir), 'data/')) keys.add(o.key);
  return keys;
}

/** One repository of ours: a few directories, one of them its own nested catalog. */
async function ourRepository(label: string) {
  const { work, store: storeDir, keys: keysDir, src, pubkey } = await cliRepo(label, FQRN);
  for (const d of ['a', 'b', 'b/deep']) mkdirSync(join(src, d), { recursive: true });
  for (let i = 0; i < 12; i++) writeFileSync(join(src, i % 2 ? 'a' : 'b/deep', `f${i}`), `content ${i}\n`.repeat(i + 1));
  writeFileSync(join(src, 'b', '.cvmfscatalog'), '');
  writeFileSync(join(src, 'b', 'deep', '.cvmfscatalog'), '');
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  const publish = async (files: Record<string, string>) => {
    for (const [p, c] of Object.entries(files)) writeFileSync(join(src, p), c);
    await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  };
  return { work, storeDir, keysDir, src, pubkey, publish, publicKeys: [readFileSync(pubkey, 'utf8')] };
}

function readManifestHistory(file: string): string {
  const h = /^H([0-9a-f]+)$/m.exec(readFileSync(file, 'latin1'))![1]!;
  return `data/${h.slice(0, 2)}/${h.slice(2)}H`;
}

async function verifyOverHttp(dir: string, fqrn: string, pubkey: string, extra: string[] = []) {
  const server = await serveStore(new FsStore(dir));
  try {
    const out = await cliOk(['verify', server.url, '--fqrn', fqrn, '--pubkey', pubkey, '--json', ...extra]);
    return JSON.parse(out.stdout) as { ok: boolean; revision: number; tags: string[] };
  } finally {
    await server.close();
  }
}

test('the stock-made legacy_aufs repository replicates into a directory, with its tags and stratum 1 markers, and verifies over HTTP', async () => {
  const v = extractVector();
  const pubkey = join(v.keys, `${v.fqrn}.pub`);
  const replica = join(tempDir('rep-vector'), 'replica');
  const source = await serveStore(new FsStore(v.repo));
  try {
    const out = await cliOk(['replicate', source.url, '--fqrn', v.fqrn, '--pubkey', pubkey, '--store', replica, '--allow-expired-whitelist', '--all-revisions', '--json']);
    const result = JSON.parse(out.stdout);
    assert.equal(result.status, 'replicated');
    assert.ok(result.copied > 0);
  } finally {
    await source.close();
  }
  assert.ok(readFileSync(join(replica, '.cvmfspublished')).equals(readFileSync(join(v.repo, '.cvmfspublished'))), 'manifest copied byte for byte');
  assert.ok(readFileSync(join(replica, '.cvmfswhitelist')).equals(readFileSync(join(v.repo, '.cvmfswhitelist'))));
  assert.match(readFileSync(join(replica, '.cvmfs_last_snapshot'), 'utf8'), /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d UTC \d{4}\n$/);
  assert.ok(!existsSync(join(replica, '.cvmfs_is_snapshotting')), 'the in-progress marker is gone');
  assert.ok(JSON.parse(readFileSync(join(replica, '.cvmfs_status.json'), 'utf8')).last_snapshot);
  assert.ok(readReflog(readFileSync(join(replica, '.cvmfsreflog'))).refs.some((r) => r.type === 'certificate'));
  // Every object of the stock repository that its revisions reference is now in the replica.
  // (Earlier history databases, which no manifest names any more, are not copied: stock pull skips them too.)
  const missing = [...await dataKeys(v.repo)].filter((k) => !existsSync(join(replica, k)) && !k.endsWith('H'));
  assert.deepEqual(missing, [], 'the replica holds every object of the source');
  const report = await verifyOverHttp(replica, v.fqrn, pubkey, ['--allow-expired-whitelist']);
  assert.equal(report.ok, true);
  // Each tagged revision reads from the replica too.
  const reader = await RepositoryReader.open(new FsStore(replica), { fqrn: v.fqrn, publicKeys: [readFileSync(pubkey, 'utf8')], allowExpiredWhitelist: true });
  const tags = await reader.tags();
  reader.close();
  assert.ok(tags.length > 0);
  for (const t of tags) {
    const r = await verifyAt(replica, { fqrn: v.fqrn, publicKeys: [readFileSync(pubkey, 'utf8')], allowExpiredWhitelist: true, at: { tag: t.name } });
    assert.equal(r.revision, t.revision, t.name);
  }
});

test('a second run after a publish on the source copies only the new objects and stops at catalogs already replicated', async () => {
  const s = await ourRepository('rep-incr');
  const replicaDir = join(s.work, 'replica');
  const event: ReplicateEvent = { source: s.storeDir, fqrn: FQRN, publicKeys: s.publicKeys };
  const first = await runReplication(event, { replica: new FsStore(replicaDir), source: new FsStore(s.storeDir) });
  assert.equal(first.status, 'replicated');
  assert.equal((await verifyOverHttp(replicaDir, FQRN, s.pubkey)).ok, true);

  // Nothing new: the manifests are equal, so the run ends at once.
  const idle = new CountingSource(new FsStore(s.storeDir));
  const again = await runReplication(event, { replica: new FsStore(replicaDir), source: idle });
  assert.equal(again.status, 'up-to-date');
  assert.ok(idle.gets.every((k) => !k.startsWith('data/') || k.endsWith('X') || k.endsWith('H')), `only the ensemble is read: ${idle.gets.join(' ')}`);

  const before = await dataKeys(replicaDir);
  await s.publish({ 'a/new-file': 'a file that is new in revision 3\n' });
  // New in the source: the new revision's objects (and the history database it replaced, named by no manifest).
  const fresh = [...await dataKeys(s.storeDir)].filter((k) => !before.has(k));
  const history = readManifestHistory(join(s.storeDir, '.cvmfspublished'));
  const wanted = fresh.filter((k) => !k.endsWith('H') || k === history).sort();
  assert.ok(fresh.length >= 3, 'a data object, catalogs, history');
  const source = new CountingSource(new FsStore(s.storeDir));
  const replica = new RecordingPuts(new FsStore(replicaDir));
  const second = await runReplication(event, { replica, source });
  assert.equal(second.status, 'replicated');
  assert.equal(second.revision, 3);
  const putData = replica.puts.filter((k) => k.startsWith('data/')).sort();
  assert.deepEqual(putData, wanted, 'exactly the new objects were written');
  assert.equal(second.copied, wanted.length);
  const readUnchanged = source.gets.filter((k) => k.startsWith('data/') && before.has(k) && !k.endsWith('X'));
  assert.deepEqual(readUnchanged, [], 'no object the replica had was fetched (the unchanged nested catalog /b was not descended)');
  const report = await verifyOverHttp(replicaDir, FQRN, s.pubkey);
  assert.equal(report.revision, 3);
});

test('a forged manifest, a corrupted object and a source behind the replica are refused; the replica keeps serving its revision unchanged', async () => {
  const s = await ourRepository('rep-refuse');
  const replicaDir = join(s.work, 'replica');
  const behind = join(s.work, 'behind');
  cpSync(s.storeDir, behind, { recursive: true });
  await s.publish({ 'a/second': 'second\n' });
  await cliOk(['replicate', s.storeDir, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir]);
  const manifest = readFileSync(join(replicaDir, '.cvmfspublished'));
  const unchanged = async () => {
    assert.ok(readFileSync(join(replicaDir, '.cvmfspublished')).equals(manifest), 'manifest bytes unchanged');
    assert.equal((await verifyOverHttp(replicaDir, FQRN, s.pubkey)).revision, 3);
  };

  const low = await runCli(['replicate', behind, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir]);
  assert.notEqual(low.code, 0);
  assert.match(low.stderr, /revision 2, the replica already serves revision 3/);
  await unchanged();

  // A forged manifest: a higher revision, with the old signature.
  const forged = join(s.work, 'forged');
  cpSync(s.storeDir, forged, { recursive: true });
  const text = readFileSync(join(forged, '.cvmfspublished'), 'latin1');
  writeFileSync(join(forged, '.cvmfspublished'), Buffer.from(text.replace(/^S\d+$/m, 'S9'), 'latin1'));
  const bad = await runCli(['replicate', forged, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /signature does not verify/);
  await unchanged();

  // A corrupted object in a newer revision of the source.
  const corrupt = join(s.work, 'corrupt');
  cpSync(s.storeDir, corrupt, { recursive: true });
  const before = await dataKeys(corrupt);
  await cliOk(['publish', FQRN, s.src, '--store', corrupt, '--keys', s.keysDir, '-q', '--no-cache']);
  writeFileSync(join(s.src, 'a', 'third'), 'third file\n');
  await cliOk(['publish', FQRN, s.src, '--store', corrupt, '--keys', s.keysDir, '-q', '--no-cache']);
  const added = [...await dataKeys(corrupt)].filter((k) => !before.has(k) && !k.endsWith('C') && !k.endsWith('H'));
  assert.ok(added.length > 0);
  for (const k of added) writeFileSync(join(corrupt, k), 'not what the hash says');
  const broken = await runCli(['replicate', corrupt, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir]);
  assert.notEqual(broken.code, 0);
  assert.match(broken.stderr, /does not match its hash/);
  await unchanged();
  assert.equal(JSON.parse(readFileSync(join(replicaDir, REPLICATE_STATE_KEY), 'utf8')).status, 'failed', 'the refused run is over');

  // The healthy source still replicates afterwards: the failed run does not hold the replica back.
  await s.publish({ 'a/fourth': 'fourth\n' });
  await cliOk(['replicate', s.storeDir, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir]);
  assert.equal((await verifyOverHttp(replicaDir, FQRN, s.pubkey)).revision, 4);
});

test('a replication killed at every checkpoint, every event delivered twice, still ends in a verifying replica', async () => {
  const s = await ourRepository('rep-kill');
  await s.publish({ 'a/two': 'two\n' });
  const event: ReplicateEvent = { source: s.storeDir, fqrn: FQRN, publicKeys: s.publicKeys };
  const runtimeFor = (replicaDir: string, killAt?: ReturnType<typeof killAtPlan>) => new LocalRuntime({
    env: { SCVMFS_STORE: replicaDir, SCVMFS_REPLICATE_SLICE: '1', SCVMFS_REPLICATE_CONCURRENCY: '4' },
    limits: { timeoutMs: 20_000, memoryMb: 256 }, deliverTwice: 'sequential', killAt,
  });
  const cleanDir = join(s.work, 'clean');
  const clean = runtimeFor(cleanDir);
  const out = await clean.runChain('replicate', event, { maxSteps: 50 });
  await clean.close();
  assert.equal((out.result as { status: string }).status, 'replicated');
  assert.equal((await verifyAt(cleanDir, { fqrn: FQRN, publicKeys: s.publicKeys })).revision, 3);
  // Start, at least one walk step, the catalogs, the finish. How many walk steps depends on how many
  // revisions the history still names: publishes within one second share their generic tag.
  assert.ok(out.path.length >= 4, `several steps (${out.path.length})`);
  const plans = killPlansFrom(out.records);
  assert.ok(plans.length > 10);
  for (const [i, plan] of plans.entries()) {
    const dir = join(s.work, `kill-${i}`);
    const rt = runtimeFor(dir, killAtPlan(plan));
    try {
      const what = `kill ${plan.fn}#${plan.index} at ${JSON.stringify(plan.at)}`;
      const run = await rt.runChain('replicate', event, { maxSteps: 60 });
      assert.match((run.result as { status: string }).status, /replicated|superseded|up-to-date/, what);
      // A superseded answer means the other delivery finished the run; the replica must verify either way.
      const report = await verifyAt(dir, { fqrn: FQRN, publicKeys: s.publicKeys });
      assert.equal(report.revision, 3, what);
      assert.ok(readFileSync(join(dir, '.cvmfspublished')).equals(readFileSync(join(s.storeDir, '.cvmfspublished'))), what);
    } finally {
      await rt.close();
    }
  }
});

test('a whitelist re-signed at the source reaches an up-to-date replica', async () => {
  const s = await ourRepository('rep-resign');
  const replicaDir = join(s.work, 'replica');
  await cliOk(['replicate', s.storeDir, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir]);
  const manifest = readFileSync(join(replicaDir, '.cvmfspublished'));
  await new Promise((r) => setTimeout(r, 1100));
  await cliOk(['resign', FQRN, '--store', s.storeDir, '--keys', s.keysDir, '--days', '20']);
  const out = JSON.parse((await cliOk(['replicate', s.storeDir, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir, '--json'])).stdout);
  assert.equal(out.status, 'up-to-date');
  assert.ok(readFileSync(join(replicaDir, '.cvmfswhitelist')).equals(readFileSync(join(s.storeDir, '.cvmfswhitelist'))), 'the new whitelist');
  assert.ok(readFileSync(join(replicaDir, '.cvmfspublished')).equals(manifest));
  assert.equal((await verifyOverHttp(replicaDir, FQRN, s.pubkey)).ok, true);
});

test('a replication racing a publish on the source ends with the whole revision it started from, and the next run takes the new one', async () => {
  const s = await ourRepository('rep-race');
  const replicaDir = join(s.work, 'replica');
  const startManifest = readFileSync(join(s.storeDir, '.cvmfspublished'));
  let published: Promise<void> | undefined;
  // The publish starts as the replication copies its first data object, and is finished before it goes on.
  const racing: ObjectReader = {
    description: 'racing source',
    async get(key) {
      if (!published && /^data\/.*[0-9a-f]$/.test(key)) {
        published = s.publish({ 'a/raced': 'published during the replication\n', 'b/deep/f0': 'changed during the replication\n' });
        await published;
      }
      return new FsStore(s.storeDir).get(key);
    },
  };
  const event: ReplicateEvent = { source: s.storeDir, fqrn: FQRN, publicKeys: s.publicKeys };
  const first = await runReplication(event, { replica: new FsStore(replicaDir), source: racing, concurrency: 1 });
  assert.ok(published, 'the publish ran during the replication');
  assert.equal(first.revision, 2);
  assert.ok(readFileSync(join(replicaDir, '.cvmfspublished')).equals(startManifest), 'the revision fetched at the start, whole');
  assert.equal((await verifyAt(replicaDir, { fqrn: FQRN, publicKeys: s.publicKeys })).revision, 2);
  const second = await runReplication(event, { replica: new FsStore(replicaDir), source: new FsStore(s.storeDir) });
  assert.equal(second.revision, 3);
  assert.equal((await verifyAt(replicaDir, { fqrn: FQRN, publicKeys: s.publicKeys })).revision, 3);
});

test('replicate --watch keeps a replica current', async () => {
  const s = await ourRepository('rep-watch');
  const replicaDir = join(s.work, 'replica');
  const { spawn } = await import('node:child_process');
  const { CLI } = await import('./helpers.js');
  const child = spawn(process.execPath, [CLI, 'replicate', s.storeDir, '--fqrn', FQRN, '--pubkey', s.pubkey, '--store', replicaDir, '--watch', '1s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const revisionOf = () => (existsSync(join(replicaDir, '.cvmfspublished')) ? Number(/^S(\d+)$/m.exec(readFileSync(join(replicaDir, '.cvmfspublished'), 'latin1'))![1]) : 0);
  const until = async (what: () => boolean, label: string) => {
    for (let i = 0; i < 300 && !what(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(what(), `${label}; output: ${out}`);
  };
  try {
    await until(() => revisionOf() === 2, 'first run');
    await s.publish({ 'a/watched': 'watched\n' });
    await until(() => revisionOf() === 3, 'a later run took the new revision');
    await until(() => /up to date at revision 3/.test(out), 'and then found nothing new');
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal((await verifyAt(replicaDir, { fqrn: FQRN, publicKeys: s.publicKeys })).revision, 3);
});
