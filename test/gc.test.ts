// Garbage collection: what goes and what stays after six publishes, on a directory store; a gc chain
// killed at every checkpoint and delivered twice; the CLI's dry run and its refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, cliRepo, runCli, tempDir } from './helpers.js';
import { abortedTransaction, ageObjects, GC_FQRN, HOUR, orphan, referencedKeys, sixPublishes } from './gc-helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { readHead } from '../src/repo/repository.js';
import { readTags } from '../src/repo/revisions.js';
import { readReflog } from '../src/format/reflog.js';
import { runGcInline } from '../src/runtime/run-gc.js';
import type { GcConfig } from '../src/functions/gc.js';
import { verifyAt } from '../src/client/verify.js';
import { serveStore } from '../src/serve/http-server.js';
import { LocalRuntime, killAtPlan, killPlansFrom } from '../src/runtime/local.js';

async function fixture() {
  const work = tempDir('gc');
  const storeDir = join(work, 'store');
  const store = new FsStore(storeDir);
  const repo = await sixPublishes(store, { work });
  ageObjects(storeDir, 10 * 24 * HOUR);
  const oldOrphan = await orphan(store, storeDir, 'uploaded by an aborted publish long ago', 48 * HOUR);
  const youngOrphan = await orphan(store, storeDir, 'uploaded a moment ago by a running publish', 0);
  const txnFiles = abortedTransaction(storeDir, 'aborted-txn-0001', 48 * HOUR);
  const config: GcConfig = { store, fqrn: GC_FQRN, keys: repo.keys };
  return { work, storeDir, store, repo, oldOrphan, youngOrphan, txnFiles, config };
}

const present = (dir: string, key: string) => existsSync(join(dir, key));

test('gc --keep-revisions 2 with a tag on revision 3: deletes exactly what only revisions 1, 2, 4 and 5 and an aborted upload held; keeps 3, 6 and 7, which verify over HTTP and on the store', async () => {
  const f = await fixture();
  const { refs } = f.repo;
  assert.deepEqual([...refs.keys()].sort(), [1, 2, 3, 4, 5, 6, 7]);
  const kept = new Set([...refs.get(3)!, ...refs.get(6)!, ...refs.get(7)!]);
  const onlyDropped = new Set([1, 2, 4, 5].flatMap((r) => [...refs.get(r)!]).filter((k) => !kept.has(k)));
  assert.ok(onlyDropped.size >= 8, `the fixture must leave objects to collect (${onlyDropped.size})`);

  const run = await runGcInline(f.config, { keepRevisions: 2, graceMs: 24 * HOUR, fenceWaitMs: 0 }, { stepMs: 60_000 });
  const r = run.result;
  assert.deepEqual(r.revisionsDropped.sort(), [1, 2, 4, 5]);
  assert.deepEqual(r.revisionsKept.sort(), [3, 6, 7]);
  assert.equal(r.gcRevision, 8, 'gc publishes a revision whose history and reflog forget the dropped ones');
  for (const k of onlyDropped) assert.equal(present(f.storeDir, k), false, `${k} only dropped revisions referenced: deleted`);
  for (const k of kept) assert.equal(present(f.storeDir, k), true, `${k} a kept revision references: kept`);
  assert.equal(present(f.storeDir, f.oldOrphan), false, 'an old object nothing references is deleted');
  assert.equal(present(f.storeDir, f.youngOrphan), true, 'an object younger than the grace period stays');
  for (const k of f.txnFiles) assert.equal(present(f.storeDir, k), false, `the aborted transaction's ${k} is removed`);
  assert.equal(r.deleted.objects, onlyDropped.size + 1);

  const head = (await readHead(f.store))!;
  assert.equal(head.manifest.revision, 8);
  // The mark: every key revisions 3, 6, 7 and gc's own revision 8 reference, counted by plain recursion.
  const marked = new Set([...kept, ...await referencedKeys(f.store, head.manifest.rootCatalog)]);
  assert.ok(r.marked > 0);
  assert.equal(r.marked, marked.size, 'the result counts the keys the kept revisions reference');
  assert.equal(head.manifest.garbageCollectable, true, 'G=yes: old revisions may now be missing');
  const tags = await readTags(f.store, head.manifest);
  assert.ok(tags.some((t) => t.name === 'release' && t.revision === 3), 'the named tag stays');
  for (const t of tags.filter((t) => t.name.startsWith('generic-'))) assert.ok([6, 7, 8].includes(t.revision), `automatic tag ${t.name} of revision ${t.revision} follows the policy`);
  const reflog = readReflog(readFileSync(join(f.storeDir, '.cvmfsreflog'))).refs.filter((x) => x.type === 'catalog').map((x) => x.hash.toHex());
  for (const rev of f.repo.revisions.filter((x) => [1, 2, 4, 5].includes(x.revision))) assert.ok(!reflog.includes(rev.hash.toHex()), `reflog forgets revision ${rev.revision}`);

  const pub = readFileSync(join(f.repo.keysDir, `${GC_FQRN}.pub`), 'utf8');
  const server = await serveStore(f.store);
  try {
    for (const at of [undefined, { revision: 7 }, { revision: 6 }, { tag: 'release' }]) {
      await verifyAt(f.storeDir, { fqrn: GC_FQRN, publicKeys: [pub], at });
      await verifyAt(server.url, { fqrn: GC_FQRN, publicKeys: [pub], at });
    }
  } finally {
    await server.close();
  }
  await assert.rejects(verifyAt(f.storeDir, { fqrn: GC_FQRN, publicKeys: [pub], at: { revision: 4 } }), /revision 4|missing/, 'a dropped revision is gone');

  const again = await runGcInline(f.config, { keepRevisions: 2, graceMs: 24 * HOUR, fenceWaitMs: 0 });
  assert.equal(again.result.deleted.objects, 0, 'a second gc with the same policy finds nothing more to delete');
});

test('gc --dry-run lists what would go and changes nothing; bad options are refused with status 2 or 3', async () => {
  const f = await fixture();
  const manifest = readFileSync(join(f.storeDir, '.cvmfspublished'));
  const dry = await cliOk(['gc', GC_FQRN, '--store', f.storeDir, '--keys', f.repo.keysDir, '--keep-revisions', '2', '--dry-run', '--fence-wait', '0s', '--json', '--runtime', 'inline']);
  const r = JSON.parse(dry.stdout);
  assert.equal(r.dryRun, true);
  assert.equal(r.marked, new Set([3, 6, 7].flatMap((rev) => [...f.repo.refs.get(rev)!])).size, 'the JSON carries the mark count');
  assert.ok(r.candidates > 0 && r.wouldDelete.includes(f.oldOrphan));
  assert.ok(!r.wouldDelete.includes(f.youngOrphan));
  assert.deepEqual(readFileSync(join(f.storeDir, '.cvmfspublished')), manifest, 'a dry run publishes nothing');
  for (const k of r.wouldDelete) assert.ok(present(f.storeDir, k), `${k} is still there`);

  const noPolicy = await runCli(['gc', GC_FQRN, '--store', f.storeDir, '--keys', f.repo.keysDir, '--runtime', 'inline']);
  assert.equal(noPolicy.code, 3);
  assert.match(noPolicy.stderr, /--keep-revisions|--keep-since/);
  const zero = await runCli(['gc', GC_FQRN, '--store', f.storeDir, '--keep-revisions', '0']);
  assert.equal(zero.code, 2);
  const noKeys = await runCli(['gc', GC_FQRN, '--store', f.storeDir, '--keep-revisions', '2', '--runtime', 'inline']);
  assert.equal(noKeys.code, 3);
  assert.match(noKeys.stderr, /keys/);
  assert.deepEqual(readFileSync(join(f.storeDir, '.cvmfspublished')), manifest);
});

test('scvmfs gc in function sandboxes of 128 MB prints what it deleted and the requests it made', async () => {
  const f = await fixture();
  const out = await cliOk(['gc', GC_FQRN, '--store', f.storeDir, '--keys', f.repo.keysDir, '--keep-revisions', '3', '--fence-wait', '0s', '--fn-memory', '128']);
  assert.match(out.stdout, /revisions kept: .*dropped: 1, 2, 4/);
  assert.match(out.stdout, /deleted: \d+ objects/);
  assert.match(out.stdout, /marked \(referenced by the kept revisions\): [1-9]\d*;/);
  assert.match(out.stdout, /requests|GET|PUT|LIST/i);
  const pub = readFileSync(join(f.repo.keysDir, `${GC_FQRN}.pub`), 'utf8');
  await verifyAt(f.storeDir, { fqrn: GC_FQRN, publicKeys: [pub] });
});

test('a gc chain killed at every checkpoint, and delivered twice, converges on the same store and never deletes a live object', async () => {
  const f = await fixture();
  const pristine = join(f.work, 'pristine');
  cpSync(f.storeDir, pristine, { recursive: true, preserveTimestamps: true });
  const env = (dir: string) => ({ SCVMFS_STORE: dir, SCVMFS_FQRN: GC_FQRN, SCVMFS_KEYS: f.repo.keysDir });
  const options = { keepRevisions: 2, graceMs: 24 * HOUR, fenceWaitMs: 0 };
  const clean = new LocalRuntime({ env: env(f.storeDir), limits: { memoryMb: 128, timeoutMs: 30_000 } });
  const cleanRun = await clean.runChain('gc', { gcId: 'gc-clean-run', options }, { maxSteps: 1000 });
  await clean.close();
  const expected = dataKeys(f.storeDir);
  const live = new Set([...f.repo.refs.get(3)!, ...f.repo.refs.get(6)!, ...f.repo.refs.get(7)!]);
  const plans = killPlansFrom(cleanRun.records);
  assert.ok(plans.length >= 10, `the chain has checkpoints to kill at (${plans.length})`);
  const pub = readFileSync(join(f.repo.keysDir, `${GC_FQRN}.pub`), 'utf8');
  for (const [i, plan] of plans.entries()) {
    const dir = join(f.work, `kill-${i}`);
    cpSync(pristine, dir, { recursive: true, preserveTimestamps: true });
    const rt = new LocalRuntime({ env: env(dir), limits: { memoryMb: 128, timeoutMs: 30_000 }, killAt: killAtPlan(plan), deliverTwice: i % 2 === 1 ? 'sequential' : false });
    try {
      const out = await rt.runChain('gc', { gcId: `gc-kill-${i}`, options }, { maxSteps: 1000, retries: 3 });
      assert.equal((out.result as { status: string }).status, 'done');
    } finally {
      await rt.close();
    }
    const left = dataKeys(dir);
    for (const k of live) assert.ok(left.has(k), `plan ${i} (${JSON.stringify(plan)}): live ${k} kept`);
    // Catalog keys differ only by gc's own revision (a kill before its checkpoint publishes it again).
    // Catalogs and histories differ only by gc's own revision (published at another second, or again).
    const strip = (s: Set<string>) => [...s].filter((k) => !/[CH]$/.test(k)).sort();
    const extra = strip(left).filter((k) => !expected.has(k));
    const missing = strip(expected).filter((k) => !left.has(k));
    assert.deepEqual({ extra, missing }, { extra: [], missing: [] }, `plan ${i} (${JSON.stringify(plan)}) deletes what the clean run deleted`);
    await verifyAt(dir, { fqrn: GC_FQRN, publicKeys: [pub] });
    rmSync(dir, { recursive: true, force: true });
  }
});

function dataKeys(dir: string): Set<string> {
  const out = new Set<string>();
  for (const shard of readdirSync(join(dir, 'data'))) for (const n of readdirSync(join(dir, 'data', shard))) out.add(`data/${shard}/${n}`);
  return out;
}

test("gc ends with its bill, and the ledger's storage equals the bytes under data/ after publishes and a gc", async () => {
  const { store: storeDir, keys: keysDir, src } = await cliRepo('gc-ledger', GC_FQRN);
  for (let i = 0; i < 4; i++) {
    writeFileSync(join(src, 'changing.txt'), `round ${i}\n`.repeat(100 * (i + 1)));
    await cliOk(['publish', GC_FQRN, src, '--store', storeDir, '--keys', keysDir, '--no-cache', '-q']);
  }
  ageObjects(storeDir, 10 * 24 * HOUR);
  const out = await cliOk(['gc', GC_FQRN, '--store', storeDir, '--keys', keysDir, '--keep-revisions', '1', '--fence-wait', '0s', '--grace', '1h']);
  assert.match(out.stdout, /this gc cost \$[0-9.]+ on aws-us-east-1/);
  const r = JSON.parse((await cliOk(['gc', GC_FQRN, '--store', storeDir, '--keys', keysDir, '--keep-revisions', '1', '--fence-wait', '0s', '--grace', '1h', '--json'])).stdout);
  assert.ok(r.bill && r.bill.ledger.recorded, 'the JSON carries the bill');
  const held = JSON.parse((await cliOk(['cost', storeDir, '--json'])).stdout).storage;
  let bytes = 0;
  let objects = 0;
  for (const k of dataKeys(storeDir)) {
    bytes += statSync(join(storeDir, k)).size;
    objects++;
  }
  assert.deepEqual({ bytes: held.bytesNow, objects: held.objectsNow }, { bytes, objects }, 'no drift after gc');
});
