// A lease belongs to one publisher and one token, and abort against commit ends in exactly one outcome.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readHead } from '../src/repo/repository.js';
import { loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import type { CommitEvent } from '../src/functions/commit.js';
import { handleAbortEvent } from '../src/functions/abort.js';
import { verifyRepository } from '../src/client/verify.js';
import { checkLeaseToken } from '../src/repo/leases.js';
import { invoker } from './chain-invoker.js';
import { FQRN, killedWriter, makeTree, setupRepo, stateOf } from './txn-helpers.js';

test("a changeset signed by bob does not commit under carol's lease, even with carol's token", async () => {
  const s = await setupRepo('bind-publisher', { bob: ['/shared'], carol: ['/shared'] });
  const carolLease = await s.acquire('carol', '/shared');
  const bob = await loadPublisherKey(s.keysDir, 'bob');
  const base = invoker(s.config);
  // Bob got hold of carol's lease id and token and offers them as his own.
  const borrowing = {
    invoke: (fn: string, event: unknown) => {
      if (fn === 'lease' && (event as { action: string }).action === 'acquire') return Promise.resolve({ status: 'ok', lease: carolLease, repeated: false, tookOver: [] });
      return base.invoke(fn, event);
    },
    runChain: (fn: string, event: unknown) => base.runChain(fn, event),
  };
  const before = (await readHead(s.store))!.bytes;
  await assert.rejects(
    publishThroughChain(s.store, makeTree(join(s.work, 'src'), 'bob', 3), { fqrn: FQRN, publisher: bob, path: '/shared', functions: borrowing }),
    (e: Error & { code?: string }) => e.code === 'wrong-publisher' && /held by publisher 'carol', not by 'bob'/.test(e.message));
  assert.ok((await readHead(s.store))!.bytes.equals(before), 'manifest unchanged');
  // Carol's own lease is still hers.
  assert.equal((await checkLeaseToken(s.store, carolLease.leaseId, carolLease.token)).publisher, 'carol');
});

test("abort refuses another lease's token and a wrong token; the transaction's own lease aborts it", async () => {
  const s = await setupRepo('bind-abort', { w1: ['/w1'], w2: ['/w2'] });
  const left = await killedWriter(s, 'w1', '/w1', 'doomed');
  const other = await s.acquire('w2', '/w2');
  const before = (await readHead(s.store))!.bytes;
  await assert.rejects(handleAbortEvent({ txnId: left.txnId, leaseId: other.leaseId, token: other.token }, s.store),
    (e: Error & { code?: string }) => e.code === 'wrong-lease');
  await assert.rejects(handleAbortEvent({ txnId: left.txnId, leaseId: left.leaseId, token: other.token }, s.store),
    (e: Error & { code?: string }) => e.code === 'wrong-token');
  assert.equal(await stateOf(s.store, left.txnId), 'applying', 'refused aborts changed nothing');
  assert.deepEqual(await handleAbortEvent(left, s.store), { status: 'aborted' });
  assert.equal(await stateOf(s.store, left.txnId), 'aborted');
  await assert.rejects(checkLeaseToken(s.store, left.leaseId, left.token), /does not exist/, 'its lease is released');
  assert.deepEqual(await handleAbortEvent(left, s.store), { status: 'aborted' }, 'aborting twice is fine');
  assert.ok((await readHead(s.store))!.bytes.equals(before));
  // The other writer's lease was not touched by the refused attempts.
  assert.equal((await checkLeaseToken(s.store, other.leaseId, other.token)).publisher, 'w2');
});

const HOOK = Symbol.for('scvmfs.runtime.checkpoint');
const COMMIT_CHECKPOINTS = ['verified', 'started', 'slice-catalogs-stored', 'slice-checkpointed', 'objects-stored', 'swap-pending', 'swapped', 'committed'];

test('abort racing the commit at every checkpoint ends in exactly one outcome: published or aborted, never both', { timeout: 120_000 }, async () => {
  const s = await setupRepo('bind-race', { w1: ['/w1'] });
  const publisher = await loadPublisherKey(s.keysDir, 'w1');
  const g = globalThis as Record<symbol, unknown>;
  try {
    for (const [i, at] of COMMIT_CHECKPOINTS.entries()) {
      const base = invoker({ ...s.config, maxOpsPerSlice: 3 });
      let event: CommitEvent | undefined;
      let abortAnswer: unknown;
      let fired = false;
      g[HOOK] = async (name: string) => {
        if (name !== at || fired || !event) return;
        fired = true;
        abortAnswer = await handleAbortEvent(event, s.store).catch((e: Error & { code?: string }) => ({ error: e.code }));
      };
      const functions = {
        invoke: (fn: string, e: unknown) => base.invoke(fn, e),
        runChain: (fn: string, e: unknown) => { event = e as CommitEvent; return base.runChain(fn, e); },
      };
      const before = (await readHead(s.store))!;
      const outcome = await publishThroughChain(s.store, makeTree(join(s.work, `src${i}`), `round ${i}`, 5), { fqrn: FQRN, publisher, path: '/w1', functions })
        .then((r) => `committed r${r.revision}`, (e: Error) => `failed: ${e.message}`);
      assert.ok(fired, `the abort ran at '${at}'`);
      const head = (await readHead(s.store))!;
      const published = head.manifest.revision === before.manifest.revision + 1;
      const state = await stateOf(s.store, event!.txnId);
      const where = `abort at '${at}': abort answered ${JSON.stringify(abortAnswer)}, publish ${outcome}, checkpoint ${state}`;
      if (published) {
        assert.equal(state, 'committed', where);
        assert.match(outcome, /^committed/, where);
        assert.notDeepEqual(abortAnswer, { status: 'aborted' }, where);
      } else {
        assert.ok(head.bytes.equals(before.bytes), `manifest unchanged: ${where}`);
        assert.equal(state, 'aborted', where);
        assert.deepEqual(abortAnswer, { status: 'aborted' }, where);
      }
      if (at === 'swap-pending') {
        assert.deepEqual(abortAnswer, { error: 'txn-swapping' }, `an abort at the swap loses and says why: ${where}`);
        assert.ok(published, where);
      }
      if (['verified', 'started', 'slice-checkpointed', 'objects-stored'].includes(at)) assert.ok(!published, `the abort wins before the swap: ${where}`);
    }
  } finally {
    delete g[HOOK];
  }
  const reader = await s.open();
  await verifyRepository(reader);
  reader.close();
});

test('abort and commit running at the same moment, 12 times at random offsets: each ends published or aborted, never both', { timeout: 180_000 }, async (t) => {
  const s = await setupRepo('bind-race-free', { w1: ['/w1'] });
  const publisher = await loadPublisherKey(s.keysDir, 'w1');
  const seen = new Map<string, number>();
  let chainMs = 1000;
  for (let i = 0; i < 12; i++) {
    const base = invoker({ ...s.config, maxOpsPerSlice: 2 });
    let aborting: Promise<unknown> | undefined;
    let event: CommitEvent | undefined;
    const functions = {
      invoke: (fn: string, e: unknown) => base.invoke(fn, e),
      runChain: (fn: string, e: unknown) => {
        event = e as CommitEvent;
        // Anywhere from the chain's start to a little past the length of the longest chain so far.
        const delay = Math.random() * chainMs * 1.2;
        aborting = new Promise((r) => setTimeout(r, delay)).then(() => handleAbortEvent(event!, s.store))
          .catch((err: Error & { code?: string }) => ({ error: err.code }));
        const started = Date.now();
        return base.runChain(fn, e).finally(() => { chainMs = Math.max(chainMs, Date.now() - started); });
      },
    };
    const before = (await readHead(s.store))!;
    await publishThroughChain(s.store, makeTree(join(s.work, `free${i}`), `free ${i}`, 4), { fqrn: FQRN, publisher, path: '/w1', functions }).catch(() => null);
    const abortAnswer = await aborting;
    const head = (await readHead(s.store))!;
    const published = head.manifest.revision === before.manifest.revision + 1;
    const state = await stateOf(s.store, event!.txnId);
    const where = `round ${i}: abort answered ${JSON.stringify(abortAnswer)}, checkpoint ${state}`;
    assert.equal(state, published ? 'committed' : 'aborted', where);
    if (!published) assert.ok(head.bytes.equals(before.bytes), where);
    if ((abortAnswer as { status?: string }).status === 'aborted') assert.ok(!published, where);
    const outcome = published ? 'published' : 'aborted';
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
  }
  const reader = await s.open();
  await verifyRepository(reader);
  reader.close();
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
});
