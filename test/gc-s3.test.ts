// Garbage collection on Ceph (S3): the six-publish run of gc.test.ts in a bucket, deleting through
// DeleteObjects from a listing, and gc of a replica.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, tempDir } from './helpers.js';
import { freshBucket } from './s3-env.js';
import { GC_FQRN, orphan, sixPublishes } from './gc-helpers.js';
import { MeteredStore } from '../src/store/metered-store.js';
import { listAll } from '../src/store/object-store.js';
import { runGcInline } from '../src/runtime/run-gc.js';
import { verifyAt } from '../src/client/verify.js';
import { serveStore } from '../src/serve/http-server.js';

const bucket = await freshBucket('gc');

async function keysIn(prefix: string): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const o of listAll(bucket.store(prefix), 'data/')) out.add(o.key);
  return out;
}

test('s3: gc --keep-revisions 2 with a tag on revision 3 deletes exactly what only the dropped revisions and an orphan held, in one DeleteObjects per 1,000 keys', async () => {
  const prefix = 'repo';
  const store = bucket.store(prefix);
  const work = tempDir('gc-s3');
  const repo = await sixPublishes(store, { work });
  const stray = await orphan(store, null, 'an upload nothing references', 0);
  const { refs } = repo;
  const kept = new Set([...refs.get(3)!, ...refs.get(6)!, ...refs.get(7)!]);
  const onlyDropped = [1, 2, 4, 5].flatMap((r) => [...refs.get(r)!]).filter((k) => !kept.has(k));
  const metered = new MeteredStore(store);
  // The objects were all just written: a grace of 0 lets gc take every unreferenced one.
  const run = await runGcInline({ store: metered, fqrn: GC_FQRN, keys: repo.keys }, { keepRevisions: 2, graceMs: 0, fenceWaitMs: 0 });
  assert.deepEqual(run.result.revisionsDropped.sort(), [1, 2, 4, 5]);
  const left = await keysIn(prefix);
  for (const k of new Set(onlyDropped)) assert.ok(!left.has(k), `${k} only dropped revisions referenced: deleted`);
  for (const k of kept) assert.ok(left.has(k), `${k} is kept`);
  assert.ok(!left.has(stray), 'the orphan is deleted');
  const counts = metered.snapshot();
  // One DeleteObjects for the data objects, and one each for the publish lock, the walk log and the
  // candidate runs: never one per object.
  assert.ok(run.result.deleted.objects > 10 && counts.delete <= 4, `deletes go in batches (${counts.delete} delete requests for ${run.result.deleted.objects} objects)`);
  // The listing says what exists: no HEAD per object (the one HEAD is the gc revision's publish).
  assert.ok(counts.head <= 1, `no HEAD per object (${counts.head} HEADs for ${run.result.listed} objects listed)`);

  const pub = readFileSync(join(repo.keysDir, `${GC_FQRN}.pub`), 'utf8');
  const server = await serveStore(store);
  try {
    for (const at of [undefined, { revision: 6 }, { tag: 'release' }]) {
      await verifyAt(bucket.url(prefix), { fqrn: GC_FQRN, publicKeys: [pub], at });
      await verifyAt(server.url, { fqrn: GC_FQRN, publicKeys: [pub], at });
    }
  } finally {
    await server.close();
  }
});

test('s3: a replica is collected with --replica: nothing is signed, and it still verifies', async () => {
  const source = bucket.store('source');
  const work = tempDir('gc-s3-replica');
  const repo = await sixPublishes(source, { work });
  const pub = join(repo.keysDir, `${GC_FQRN}.pub`);
  const served = await serveStore(source);
  try {
    await cliOk(['replicate', served.url, '--fqrn', GC_FQRN, '--pubkey', pub, '--store', bucket.url('replica'), '--all-revisions', '--no-ledger']);
  } finally {
    await served.close();
  }
  const before = await bucket.store('replica').get('.cvmfspublished');
  const out = JSON.parse((await cliOk(['gc', GC_FQRN, '--store', bucket.url('replica'), '--replica', '--keep-revisions', '1', '--grace', '0s', '--runtime', 'inline', '--json'])).stdout);
  assert.equal(out.gcRevision, null, 'a replica gets no revision of its own');
  assert.ok(out.deleted.objects > 0, 'earlier revisions copied with --all-revisions are collected');
  const after = await bucket.store('replica').get('.cvmfspublished');
  assert.deepEqual(after!.body, before!.body, 'the manifest is the source\'s, unchanged');
  await verifyAt(bucket.url('replica'), { fqrn: GC_FQRN, publicKeys: [readFileSync(pub, 'utf8')] });
});
