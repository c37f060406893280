// Serverless publishing end to end: publisher keys, leases, changesets and the commit chain, with
// several writers at once, tiny slices, events delivered twice and steps killed at every store write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { MeteredStore } from '../src/store/metered-store.js';
import type { ObjectStore, PutOptions } from '../src/store/object-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain, LeaseBusyError } from '../src/publish/publish-changeset.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { invoker, StepDied } from './chain-invoker.js';
import { handleLeaseEvent } from '../src/functions/lease.js';
import { awsInvoker, localInvoker } from '../src/runtime/invokers.js';
import { killAtPlan, killPlansFrom, type InvocationRecord } from '../src/runtime/local.js';

const FQRN = 'serverless.example.org';

async function setup(name: string, writers: string[]) {
  const work = tempDir(name);
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  for (const w of writers) await addPublisher(store, { keysDir, fqrn: FQRN, name: w, paths: [`/${w}`] });
  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const open = () => RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  return { work, store, keysDir, keys, config, open };
}

/** A store whose `n`th write (counted over the whole chain) fails, as if the step had been killed there. */
function dyingStore(inner: ObjectStore, n: number): ObjectStore {
  let writes = 0;
  return {
    description: inner.description,
    get: (k, r) => inner.get(k, r),
    getStream: (k, r) => inner.getStream(k, r),
    head: (k) => inner.head(k),
    list: (p, op) => inner.list(p, op),
    delete: (keys) => inner.delete(keys),
    put: async (k: string, body: Uint8Array, opts?: PutOptions) => {
      if (++writes === n) throw new StepDied(`killed before write ${writes} (${k})`);
      return inner.put(k, body, opts);
    },
  };
}

function makeTree(root: string, label: string, files: number): void {
  mkdirSync(join(root, 'lib'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'lib', `f${i}`), `${label} file ${i}\n`);
  writeFileSync(join(root, 'README'), `${label}\n`);
}

test('a writer with a publisher key publishes its sub-path through the commit chain, in many small slices', async () => {
  const { work, store, keysDir, config, open } = await setup('chain-one', ['w1']);
  const src = join(work, 'src');
  makeTree(src, 'one', 40);
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const fns = invoker(config, { commitBudgetMs: 1 });
  const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: fns });
  assert.equal(s.revision, 2);
  assert.ok(s.slices > 10, `tiny budgets make many slices (${s.slices})`);
  const reader = await open();
  assert.equal((await reader.readFile('/w1/lib/f39')).toString(), 'one file 39\n');
  await verifyRepository(reader);
  reader.close();

  const again = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: fns });
  assert.equal(again.changed, false);
  assert.equal((await readHead(store))!.manifest.revision, 2);
});

test('writers outside their scope, or on a busy path, are refused and change nothing', async () => {
  const { work, store, keysDir, config } = await setup('chain-refuse', ['w1', 'w2']);
  const src = join(work, 'src');
  makeTree(src, 'x', 2);
  const w1 = await loadPublisherKey(keysDir, 'w1');
  const fns = invoker(config);
  const before = (await readHead(store))!.bytes;
  await assert.rejects(publishThroughChain(store, src, { fqrn: FQRN, publisher: w1, path: '/w2', functions: fns }), /may not write \/w2/);
  const held = await handleLeaseEvent({ action: 'acquire', request: signLeaseRequest(w1, { fqrn: FQRN, path: '/w1', ttlSeconds: 60 }) },
    { store, fqrn: FQRN, masterPublicKeyPem: config.keys.masterPublicKeyPem }, new Date());
  assert.equal(held.status, 'ok');
  await assert.rejects(publishThroughChain(store, src, { fqrn: FQRN, publisher: w1, path: '/w1/sub', functions: fns }),
    (err: Error) => err instanceof LeaseBusyError && /w1/.test(err.message) && /\d+ s/.test(err.message));
  assert.ok((await readHead(store))!.bytes.equals(before));
});

test('a writer that died holding a lease blocks nobody once the lease expires', async () => {
  const { work, store, keysDir, config } = await setup('chain-expired', ['w1']);
  const src = join(work, 'src');
  makeTree(src, 'late', 3);
  const w1 = await loadPublisherKey(keysDir, 'w1');
  await handleLeaseEvent({ action: 'acquire', request: signLeaseRequest(w1, { fqrn: FQRN, path: '/w1', ttlSeconds: 1 }) },
    { store, fqrn: FQRN, masterPublicKeyPem: config.keys.masterPublicKeyPem }, new Date());
  await new Promise((r) => setTimeout(r, 1100));
  const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher: w1, path: '/w1', functions: invoker(config) });
  assert.equal(s.revision, 2);
});

test('several writers on disjoint paths publish at once: every change lands, revisions strictly increase', async () => {
  const writers = ['w1', 'w2', 'w3', 'w4'];
  const { work, store, keysDir, config, open } = await setup('chain-race', writers);
  const rounds = 3;
  const revisions: number[] = [];
  await Promise.all(writers.map(async (w) => {
    const publisher = await loadPublisherKey(keysDir, w);
    for (let r = 0; r < rounds; r++) {
      const src = join(work, `${w}-${r}`);
      makeTree(src, `${w} round ${r}`, 5);
      const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: `/${w}`, functions: invoker(config, { commitBudgetMs: 5 }) });
      revisions.push(s.revision);
    }
  }));
  assert.equal(new Set(revisions).size, writers.length * rounds, `distinct revisions ${revisions.join(',')}`);
  assert.equal((await readHead(store))!.manifest.revision, 1 + writers.length * rounds);
  const reader = await open();
  for (const w of writers) assert.equal((await reader.readFile(`/${w}/README`)).toString(), `${w} round ${rounds - 1}\n`);
  await verifyRepository(reader);
  reader.close();
});

test('every commit step killed at every store write, and every event delivered twice, converges to one revision', async () => {
  const { work, store, keysDir, config, open } = await setup('chain-kill', ['w1']);
  const publisher = await loadPublisherKey(keysDir, 'w1');
  let expected = 1;
  let checks = 0;
  for (let n = 1; n <= 200; n++) {
    const src = join(work, `src-${n}`);
    makeTree(src, `kill ${n}`, 4);
    // The chain's nth store write kills its step; the retried delivery carries on.
    const dying = dyingStore(store, n);
    // Between any two steps, dead or alive, the repository is complete, signed and at most one revision on.
    const between = async () => {
      const r = await open();
      assert.ok(r.manifest.revision === expected || r.manifest.revision === expected + 1);
      await verifyRepository(r);
      r.close();
      checks++;
    };
    const fns = invoker(config, { commitBudgetMs: 3, deliverTwice: n % 2 === 0, maxRetries: 1, commitStore: () => dying, afterStep: between });
    const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: fns });
    expected++;
    assert.equal(s.revision, expected, `kill at write ${n}: exactly one new revision`);
    assert.equal((await readHead(store))!.manifest.revision, expected);
    const reader = await open();
    assert.equal((await reader.readFile('/w1/README')).toString(), `kill ${n}\n`);
    await verifyRepository(reader);
    reader.close();
    if (fns.deaths === 0) break; // the chain made fewer than n writes: every point has been covered
  }
  assert.ok(expected > 5, 'the chain was killed at several points');
  assert.ok(checks > expected * 2, `the repository verified between steps (${checks} times)`);
});

test('under the local runtime, every function killed at every checkpoint still lands exactly one revision', async () => {
  const { work, store, keysDir, open } = await setup('chain-runtime-kill', ['w1']);
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const env = { SCVMFS_STORE: store.root, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir, SCVMFS_SLICE_OPS: '4', SCVMFS_AUTOCATALOGS: 'off' };
  const publishOnce = async (label: string, runtime: Parameters<typeof localInvoker>[0]) => {
    const src = join(work, label);
    makeTree(src, label, 10);
    const fns = localInvoker(runtime);
    try {
      return await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: fns });
    } finally {
      await fns.close();
    }
  };
  const records: InvocationRecord[] = [];
  const first = await publishOnce('plain', { env, onInvocation: (r) => records.push(r) });
  assert.equal(first.revision, 2);
  const plans = killPlansFrom(records);
  assert.ok(plans.filter((p) => p.fn === 'commit').length >= 10, `kill points: ${plans.length}`);
  let revision = 2;
  for (const [i, plan] of plans.entries()) {
    let killed = 0;
    const s = await publishOnce(`kill-${i}`, {
      env, killAt: killAtPlan(plan), deliverTwice: i % 3 === 0 ? 'sequential' : false,
      onInvocation: (r) => { if (r.outcome === 'killed') killed++; },
    });
    revision++;
    assert.equal(killed, 1, `plan ${JSON.stringify(plan)} killed once`);
    assert.equal(s.revision, revision, `plan ${JSON.stringify(plan)}: exactly one new revision`);
    const reader = await open();
    assert.equal((await reader.readFile('/w1/README')).toString(), `kill-${i}\n`);
    await verifyRepository(reader);
    reader.close();
  }
});

test("uploadVia 'grants' on a directory store: the grants carry no URL, so the writer puts the missing objects itself", async () => {
  const { work, store, keysDir, config, open } = await setup('chain-grants-fs', ['w1']);
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const src = join(work, 'src');
  makeTree(src, 'grants', 6);
  writeFileSync(join(src, 'lib', 'copy'), 'grants file 0\n');
  const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: invoker(config), uploadVia: 'grants' });
  assert.equal(s.revision, 2);
  assert.equal(s.objectsUploaded, 7, 'six distinct files and the README, the duplicate once');
  // The same contents again (new mtimes, so every file is compressed again) plus one new file.
  const again = join(work, 'again');
  makeTree(again, 'grants', 6);
  writeFileSync(join(again, 'lib', 'extra'), 'new content\n');
  const fns = invoker(config);
  const grants: string[][] = [];
  const counting = { ...fns, invoke: (fn: string, event: unknown) => {
    if (fn === 'upload-grant') grants.push((event as { keys: string[] }).keys);
    return fns.invoke(fn, event);
  } };
  const meter = new MeteredStore(store);
  const t = await publishThroughChain(meter, again, { fqrn: FQRN, publisher, path: '/w1', functions: counting, uploadVia: 'grants' });
  assert.equal(t.objectsUploaded, 1, 'only the new content');
  assert.equal(t.objectsAlreadyPresent, 7);
  assert.equal(grants.flat().length, 8, 'every object was asked about');
  assert.equal(meter.snapshot().conditionalPut, 1, 'objects reported present were not sent');
  const reader = await open();
  assert.equal((await reader.readFile('/w1/lib/extra')).toString(), 'new content\n');
  assert.equal((await reader.readFile('/w1/lib/copy').catch(() => null)), null, 'removed');
  await verifyRepository(reader);
  reader.close();
});

test('a writer whose commit fails aborts: the transaction is dropped, its lease released, and commit answers "aborted"', async () => {
  const { work, store, keysDir, config } = await setup('chain-abort', ['w1']);
  const src = join(work, 'src');
  makeTree(src, 'doomed', 3);
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const before = (await readHead(store))!.bytes;
  const base = invoker(config);
  let seen: { txnId: string; leaseId: string; token: string } | undefined;
  const failing = {
    ...base,
    runChain: async (_fn: string, event: unknown) => {
      seen = event as typeof seen;
      throw new Error('the commit chain is unreachable');
    },
  };
  await assert.rejects(publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: failing }), /unreachable/);
  assert.ok(seen);
  assert.ok((await readHead(store))!.bytes.equals(before), 'nothing committed');
  const state = JSON.parse((await store.get(`.scvmfs/txn/${seen.txnId}/state.json`))!.body.toString()) as { status: string };
  assert.equal(state.status, 'aborted');
  const left = await store.list(`.scvmfs/txn/${seen.txnId}/`);
  assert.deepEqual(left.objects.map((o) => o.key), [`.scvmfs/txn/${seen.txnId}/state.json`], 'parts and header removed');
  const late = await base.runChain('commit', seen) as { status: string };
  assert.equal(late.status, 'aborted', 'a late delivery of the commit changes nothing');
  assert.ok((await readHead(store))!.bytes.equals(before));
  // The lease is gone: the same writer publishes right away.
  const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: base });
  assert.equal(s.revision, 2);
});

test('on Lambda (a recording client at the cloud edge) the writer calls functions by name and watches the chain', async () => {
  const { work, store, keysDir, config } = await setup('chain-aws', ['w1']);
  const src = join(work, 'src');
  makeTree(src, 'lambda', 5);
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const local = invoker(config, { commitBudgetMs: 2 });
  const calls: string[] = [];
  const background: Promise<unknown>[] = [];
  const client = {
    async send(command: { input: { FunctionName?: string; InvocationType?: string; Payload?: Uint8Array } }) {
      const { FunctionName, InvocationType, Payload } = command.input;
      calls.push(`${InvocationType} ${FunctionName}`);
      const event = JSON.parse(Buffer.from(Payload!).toString('utf8'));
      const fn = FunctionName!.replace(/^scvmfs-/, '');
      if (InvocationType === 'Event') {
        background.push(local.runChain(fn, event));
        return { StatusCode: 202 };
      }
      const result = await local.invoke(fn, event);
      return { StatusCode: 200, Payload: Buffer.from(JSON.stringify(result)) };
    },
  };
  const names = { lease: 'scvmfs-lease', 'upload-grant': 'scvmfs-upload-grant', commit: 'scvmfs-commit', abort: 'scvmfs-abort', resign: 'scvmfs-resign', gc: 'scvmfs-gc', check: 'scvmfs-check', replicate: 'scvmfs-replicate' };
  const functions = awsInvoker({ functionNames: names, store, client: client as never, pollMs: 20 });
  const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions });
  await Promise.all(background);
  assert.equal(s.revision, 2);
  assert.ok(calls.includes('RequestResponse scvmfs-lease'));
  assert.deepEqual(calls.filter((c) => c.startsWith('Event')), ['Event scvmfs-commit'], 'the chain is started once, asynchronously');
  assert.ok(local.steps > 1, 'the chain ran in several steps');
});

test('a large changeset lands while other writers keep committing: its lost races are settled by graft, not by starting over', async () => {
  const { work, store, keysDir, config, open } = await setup('chain-starve', ['big', 's1', 's2']);
  const bigSrc = join(work, 'big');
  makeTree(bigSrc, 'big', 600);
  const sliced = { ...config, maxOpsPerSlice: 25 };
  const big = publishThroughChain(store, bigSrc, {
    fqrn: FQRN, publisher: await loadPublisherKey(keysDir, 'big'), path: '/big', functions: invoker(sliced),
  });
  let done = false;
  const result = big.finally(() => { done = true; });
  const small = ['s1', 's2'].map(async (w) => {
    const publisher = await loadPublisherKey(keysDir, w);
    let n = 0;
    while (!done && n < 60) {
      const src = join(work, `${w}-${n}`);
      makeTree(src, `${w} ${n}`, 1);
      await publishThroughChain(store, src, { fqrn: FQRN, publisher, path: `/${w}`, functions: invoker(config) });
      n++;
    }
    return n;
  });
  const s = await result;
  const commits = await Promise.all(small);
  console.log(`# large changeset: ${s.slices} slices, ${s.rebases} rebases (${s.grafts} grafts) while others made ${commits.join(' + ')} commits`);
  assert.ok(commits[0]! + commits[1]! > 3, `the others committed meanwhile (${commits.join(', ')})`);
  assert.ok(s.rebases > 0, 'the large changeset lost races');
  assert.equal(s.grafts, s.rebases, 'every lost race was settled by grafting its catalog');
  assert.ok(s.slices < 603 / 25 + 2 * s.rebases + 4, `${s.slices} slices for 603 operations and ${s.rebases} rebases: no starting over`);
  const reader = await open();
  assert.equal((await reader.readFile('/big/lib/f599')).toString(), 'big file 599\n');
  await verifyRepository(reader);
  reader.close();
});
