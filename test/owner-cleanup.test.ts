// What killed writers and publishes leave behind, and the owner's tools to clear it: the publish lock of
// a dead process, transactions stuck in 'applying' or 'swapping', held leases, a deleted store, and the
// quick start's server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { CLI, cliOk, runCli, tempDir, TEST_SOURCE_DIR } from './helpers.js';
import { FsStore, putContentAddressedSync } from '../src/store/fs-store.js';
import { StoreError } from '../src/store/object-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { LOCK_KEY, PublishLock, PublishLockedError } from '../src/repo/publish-lock.js';
import { loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { handleCommitEvent, type CommitEvent } from '../src/functions/commit.js';
import { verifyRepository } from '../src/client/verify.js';
import { abortStaleTransactions, listTransactions, staleTransactions } from '../src/repo/transactions.js';
import { ownerReleaseLease } from '../src/repo/leases.js';
import { invoker } from './chain-invoker.js';
import { FQRN, killedWriter, makeTree, setupRepo, stateOf, type Repo } from './txn-helpers.js';

/** The pid of a process that has just exited (so, on this host, a pid that is not running). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

function lockRecord(pid: number, host = hostname()): Buffer {
  const now = Date.now();
  return Buffer.from(JSON.stringify({
    holder: 'publish killed', host, pid, token: 'x', acquiredAt: new Date(now).toISOString(), expiresAt: new Date(now + 120_000).toISOString(),
  }));
}

test('the publish lock of a process that is no longer running on this host is taken over at once, and said so', async () => {
  const store = new FsStore(tempDir('lock-dead'));
  await store.put(LOCK_KEY, lockRecord(deadPid()));
  const said: string[] = [];
  const started = Date.now();
  const lock = await PublishLock.acquire(store, 'next publish', 120_000, (m) => said.push(m));
  assert.ok(Date.now() - started < 5000, 'no wait for the 120 s expiry');
  assert.match(said.join('\n'), /took over the publish lock of publish killed \(pid \d+ on this host, .*\), which is no longer running/);
  await lock.release();
  // A live holder here (this test's own pid), or any holder on another host, still blocks.
  for (const record of [lockRecord(process.pid), lockRecord(deadPid(), 'elsewhere.example.org')]) {
    await store.put(LOCK_KEY, record);
    await assert.rejects(PublishLock.acquire(store, 'next publish'), (e) => e instanceof PublishLockedError && e.remainingSeconds > 100);
    assert.ok((await store.get(LOCK_KEY))!.body.equals(record), 'the lock is left as it was');
  }
});

test('after kill -9 of a publish the next publish runs at once, says it took over the lock, and verify passes', { timeout: 120_000 }, async () => {
  const work = tempDir('lock-kill9');
  const store = join(work, 'store');
  const keys = join(work, 'keys');
  await cliOk(['init', 'kill.example.org', '--store', store, '--keys', keys]);
  const src = join(work, 'src');
  mkdirSync(src);
  for (let i = 0; i < 3000; i++) writeFileSync(join(src, `f${i}`), `file ${i}\n`.repeat(50));
  const before = readFileSync(join(store, '.cvmfspublished'));
  const child = spawn(process.execPath, [CLI, 'publish', 'kill.example.org', src, '--store', store, '--keys', keys, '-q', '--no-cache'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  for (let i = 0; i < 2000 && !existsSync(join(store, '.scvmfs', 'publish.lock')); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(existsSync(join(store, '.scvmfs', 'publish.lock')), 'the publish took the lock');
  child.kill('SIGKILL');
  await exited;
  assert.ok(existsSync(join(store, '.scvmfs', 'publish.lock')), 'kill -9 left the lock behind');
  assert.ok(readFileSync(join(store, '.cvmfspublished')).equals(before), 'the killed publish did not commit');
  const started = Date.now();
  const r = await cliOk(['publish', 'kill.example.org', src, '--store', store, '--keys', keys, '-q', '--no-cache']);
  assert.ok(Date.now() - started < 60_000);
  assert.match(r.stderr, /warning: took over the publish lock of publish kill\.example\.org\/ \(pid \d+ on this host.*no longer running/);
  assert.match(r.stdout, /published kill\.example\.org revision 2/);
  await cliOk(['verify', store, '--fqrn', 'kill.example.org', '--pubkey', join(keys, 'kill.example.org.pub'), '--no-cache']);
});

test('a put into a store whose directory was deleted fails with a store error and never recreates it', async () => {
  const work = tempDir('root-gone');
  const root = join(work, 'store');
  const keys = await generateRepositoryKeys('gone.example.org');
  const fresh = new FsStore(root);
  await initRepository(fresh, { fqrn: 'gone.example.org', keys });
  assert.ok(existsSync(join(root, '.cvmfspublished')), 'a store that did not exist yet is created by init');
  const store = new FsStore(root);
  const etag = (await store.head('.cvmfspublished'))!.etag;
  rmSync(root, { recursive: true });
  const gone = (e: unknown) => e instanceof StoreError && e.kind === 'store' && /store directory .* does not exist .*not recreated.*scvmfs init/.test(e.message);
  for (const put of [
    () => store.put('data/ab/cdef', Buffer.from('x')),
    () => store.put('data/ab/cdef', Buffer.from('x'), { ifNoneMatch: '*' }),
    () => store.put('.cvmfspublished', Buffer.from('x'), { ifMatch: etag }),
    () => store.put('.scvmfs/txn/abcdefgh/state.json', Buffer.from('x')),
    // The one that failed the same way for the store opened before init, once init had made the directory.
    () => fresh.put('data/ab/cdef', Buffer.from('x')),
  ]) {
    await assert.rejects(put(), gone);
    assert.ok(!existsSync(root), 'the store directory was not recreated');
  }
  assert.throws(() => putContentAddressedSync(root, 'data/ab/cdef', Buffer.from('x')), gone);
  assert.ok(!existsSync(root));
});

async function owner(s: Repo) {
  const base = ['--store', join(s.work, 'store'), '--keys', s.keysDir];
  return {
    list: () => cliOk(['lease', 'list', FQRN, ...base]),
    release: (which: string) => cliOk(['lease', 'release', FQRN, which, ...base]),
    abort: (...args: string[]) => cliOk(['abort', FQRN, ...args, ...base]),
  };
}

test('a killed writer: lease list shows its lease and applying transaction, lease release and abort --all-stale clear them, the path publishes again', { timeout: 120_000 }, async () => {
  const s = await setupRepo('cleanup-applying', { w1: ['/w1'], w2: ['/w2'] });
  const left = await killedWriter(s, 'w1', '/w1', 'doomed');
  const before = (await readHead(s.store))!.bytes;
  const o = await owner(s);
  let out = (await o.list()).stdout;
  assert.match(out, new RegExp(`lease ${left.leaseId}  w1  /w1  until \\S+ \\(\\d+ s left\\)`));
  assert.match(out, new RegExp(`  txn ${left.txnId}  applying w1 /w1`));
  assert.doesNotMatch(out, /token|[A-Za-z0-9_-]{43}/, 'no token is shown');
  assert.match((await o.abort('--all-stale')).stdout, /no stale transactions/, 'a held lease keeps its transaction');
  // Not the owner: a key directory with some other repository's keys.
  const stranger = join(s.work, 'stranger');
  await writeKeys(stranger, FQRN, await generateRepositoryKeys(FQRN));
  const refused = await runCli(['lease', 'release', FQRN, '/w1', '--store', join(s.work, 'store'), '--keys', stranger]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /not the ones this repository's whitelist trusts.*owner commands need/);
  // The master key alone is enough to be the owner.
  const masterOnly = join(s.work, 'master-only');
  mkdirSync(masterOnly);
  copyFileSync(join(s.keysDir, `${FQRN}.masterkey`), join(masterOnly, `${FQRN}.masterkey`));
  assert.match((await cliOk(['lease', 'list', FQRN, '--store', join(s.work, 'store'), '--keys', masterOnly])).stdout, /lease /);
  assert.match((await o.release('/w1')).stdout, new RegExp(`released lease ${left.leaseId} of 'w1' on /w1\\n1 unfinished transaction`));
  out = (await o.list()).stdout;
  assert.match(out, /no leases/);
  assert.match(out, new RegExp(`unfinished transactions without a lease[^\\n]*\\n  txn ${left.txnId}  applying`));
  assert.match((await o.abort('--all-stale')).stdout, new RegExp(`aborted ${left.txnId} \\(w1 /w1\\)`));
  assert.equal(await stateOf(s.store, left.txnId), 'aborted');
  assert.ok((await readHead(s.store))!.bytes.equals(before), 'manifest unchanged');
  assert.match((await o.list()).stdout, /1 finished transactions/);
  // A late step of the killed chain changes nothing.
  const ctx = { awsRequestId: 'x', functionName: 'commit', memoryLimitInMB: 128, getRemainingTimeInMillis: () => 60_000 };
  assert.equal((await handleCommitEvent(left, s.config, ctx)).result?.status, 'aborted');
  const publisher = await loadPublisherKey(s.keysDir, 'w1');
  const again = await publishThroughChain(s.store, makeTree(join(s.work, 'again'), 'again', 2), { fqrn: FQRN, publisher, path: '/w1', functions: invoker(s.config) });
  assert.equal(again.revision, 2);
  const reader = await s.open();
  await verifyRepository(reader);
  reader.close();
});

test('the owner aborts one transaction by id, which drops its lease too', { timeout: 60_000 }, async () => {
  const s = await setupRepo('cleanup-by-id', { w1: ['/w1'] });
  const left = await killedWriter(s, 'w1', '/w1', 'doomed');
  const o = await owner(s);
  assert.match((await o.abort(left.txnId)).stdout, new RegExp(`aborted ${left.txnId} \\(w1 /w1\\), released lease ${left.leaseId}`));
  assert.match((await o.abort(left.txnId)).stdout, /was already aborted/);
  assert.match((await o.list()).stdout, /no leases/);
  const usage = await runCli(['abort', FQRN, left.txnId, '--all-stale', '--store', join(s.work, 'store'), '--keys', s.keysDir]);
  assert.match(usage.stderr, /name one transaction id, or give --all-stale/);
});

/** A commit chain killed at checkpoint `at`: the step dies there and is never delivered again. */
async function killedAt(s: Repo, at: string, label: string): Promise<CommitEvent> {
  const g = globalThis as Record<symbol, unknown>;
  const HOOK = Symbol.for('scvmfs.runtime.checkpoint');
  const base = invoker(s.config);
  let event: CommitEvent | undefined;
  g[HOOK] = async (name: string) => { if (name === at) throw new Error(`killed at ${at}`); };
  try {
    const functions = {
      invoke: (fn: string, e: unknown) => (fn === 'abort' ? Promise.reject(new Error('dead')) : base.invoke(fn, e)),
      runChain: (fn: string, e: unknown) => { event = e as CommitEvent; return base.runChain(fn, e); },
    };
    const publisher = await loadPublisherKey(s.keysDir, 'w1');
    await assert.rejects(publishThroughChain(s.store, makeTree(join(s.work, label), label, 3), { fqrn: FQRN, publisher, path: '/w1', functions }), /killed at/);
  } finally {
    delete g[HOOK];
  }
  return event!;
}

test("a chain killed at 'swap-pending' is left until its swap cannot land; one killed after the swap is recorded committed, not aborted", { timeout: 60_000 }, async () => {
  const s = await setupRepo('cleanup-swapping', { w1: ['/w1'] });
  const before = (await readHead(s.store))!.bytes;
  const pending = await killedAt(s, 'swap-pending', 'pending');
  assert.equal(await stateOf(s.store, pending.txnId), 'swapping');
  assert.deepEqual(await staleTransactions(s.store, new Date()), [], 'its lease is live');
  await ownerReleaseLease(s.store, pending.leaseId, new Date());
  const [busy] = await abortStaleTransactions(s.store);
  assert.equal(busy!.outcome.status, 'busy', 'a fresh swapping checkpoint may still land: the abort keeps out');
  assert.equal(await stateOf(s.store, pending.txnId), 'swapping');
  const [done] = await abortStaleTransactions(s.store, { swapGraceMs: 0 });
  assert.deepEqual(done!.outcome, { status: 'aborted', already: false });
  assert.ok((await readHead(s.store))!.bytes.equals(before), 'manifest unchanged');

  const swapped = await killedAt(s, 'swapped', 'swapped');
  assert.equal(await stateOf(s.store, swapped.txnId), 'swapping');
  assert.equal((await readHead(s.store))!.manifest.revision, 2, 'its swap landed before the kill');
  await ownerReleaseLease(s.store, swapped.leaseId, new Date());
  const [kept] = await abortStaleTransactions(s.store, { swapGraceMs: 0 });
  assert.deepEqual(kept!.outcome, { status: 'committed', revision: 2 });
  assert.deepEqual((await listTransactions(s.store)).map((t) => t.status).sort(), ['aborted', 'committed']);
  const reader = await s.open();
  await verifyRepository(reader);
  reader.close();
});

/** Processes whose command line mentions `marker`. */
function processesWith(marker: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(marker)) found.push(`${pid}: ${cmd}`);
    } catch { /* gone meanwhile */ }
  }
  return found;
}

test('the quick start stops the server it started', { timeout: 180_000 }, async () => {
  const dir = join(tempDir('quickstart'), 'qs');
  const repoRoot = dirname(TEST_SOURCE_DIR);
  const r = spawnSync('bash', [join(repoRoot, 'scripts', 'quickstart.sh')], { env: { ...process.env, QUICKSTART_DIR: dir }, encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /serving at http:\/\/127\.0\.0\.1:\d+/);
  assert.match(r.stdout, /hello from CernVM-FS/);
  const url = /serving at (http:\S+)/.exec(r.stdout)![1]!;
  // serve exits on SIGTERM at once; give it a moment in case the machine is busy.
  let left = processesWith(join(dir, 'store'));
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await new Promise((res) => setTimeout(res, 100));
    left = processesWith(join(dir, 'store'));
  }
  for (const p of left) process.kill(Number(p.split(':')[0]), 'SIGTERM');
  assert.deepEqual(left, [], 'no serve process is left running');
  await assert.rejects(fetch(`${url}/.cvmfspublished`), 'nothing answers on its port');
});
