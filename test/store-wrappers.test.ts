// Wrappers around a real store: retries over injected faults (on the S3 server and on a directory),
// settling unanswered conditional writes, and exact request metering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { freshBucket } from './s3-env.js';
import { tempDir } from './helpers.js';
import { FsStore, directFsRoot } from '../src/store/fs-store.js';
import { createBucketFor, openMeteredStore } from '../src/store/open-store.js';
import { FaultStore } from '../src/store/fault-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import { MeteredStore, meterSummary } from '../src/store/metered-store.js';
import { PreconditionFailedError, TransientStoreError, type ObjectStore } from '../src/store/object-store.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const bucket = await freshBucket('wrappers');
let n = 0;

const backends: Record<string, () => ObjectStore> = {
  s3: () => bucket.store(`w${++n}`),
  fs: () => new FsStore(join(tempDir('wrappers'), 'store')),
};

for (const [name, fresh] of Object.entries(backends)) {
  test(`${name}: a burst of 503s is ridden out by retries and the meter counts every attempt`, async () => {
    const fault = new FaultStore(fresh(), { burst: { from: 2, count: 3 } });
    const meter = new MeteredStore(fault);
    const retries: number[] = [];
    const store = new RetryingStore(meter, { attempts: 5, baseDelayMs: 1, onRetry: (r) => retries.push(r.error.status) });
    await store.put('data/00/a', Buffer.from('alpha'));                        // request 1
    assert.equal((await store.get('data/00/a'))?.body.toString(), 'alpha');   // requests 2-4 fail, 5 succeeds
    assert.deepEqual(retries, [503, 503, 503]);
    assert.equal(fault.injected, 3);
    assert.deepEqual(meter.snapshot(), { get: 4, head: 0, put: 1, conditionalPut: 0, list: 0, delete: 0, preconditionFailed: 0, failed: 3, bytesIn: 5, bytesOut: 5, objectsCreated: 0, bytesCreated: 0 });
  });

  test(`${name}: more consecutive failures than attempts surface the transient error`, async () => {
    const fault = new FaultStore(fresh(), { burst: { from: 1, count: 10 }, status: 500 });
    const store = new RetryingStore(fault, { attempts: 3, baseDelayMs: 1 });
    await assert.rejects(store.head('data/00/x'), (err: unknown) => err instanceof TransientStoreError && err.status === 500);
    assert.equal(fault.requests, 3);
  });

  test(`${name}: a conditional write answered 500 after it happened counts as our success`, async () => {
    const inner = fresh();
    const fault = new FaultStore(inner, { failAfterConditionalPut: { key: '.cvmfspublished', times: 2 } });
    const store = new RetryingStore(fault, { attempts: 3, baseDelayMs: 1 });
    const v1 = Buffer.from('revision 1');
    assert.deepEqual(await store.put('.cvmfspublished', v1, { ifNoneMatch: '*' }), { etag: md5(v1) });
    const v2 = Buffer.from('revision 2');
    assert.deepEqual(await store.put('.cvmfspublished', v2, { ifMatch: md5(v1) }), { etag: md5(v2) });
    assert.equal(fault.injected, 2);
    assert.equal((await inner.get('.cvmfspublished'))?.body.toString(), 'revision 2');
    // A later create of the same key really lost, and says so.
    await assert.rejects(store.put('.cvmfspublished', Buffer.from('other'), { ifNoneMatch: '*' }), PreconditionFailedError);
  });

  test(`${name}: an unanswered conditional write that did not happen is retried, or reports who won`, async () => {
    const inner = fresh();
    // Request 1 (the create) fails before reaching the store: settling finds nothing and retries.
    const first = new RetryingStore(new FaultStore(inner, { failNth: [1] }), { attempts: 3, baseDelayMs: 1 });
    await first.put('.scvmfs/lock', Buffer.from('mine'), { ifNoneMatch: '*' });
    assert.equal((await inner.get('.scvmfs/lock'))?.body.toString(), 'mine');
    // Someone else's bytes are there: an unanswered create is a lost race, not a success.
    const second = new RetryingStore(new FaultStore(inner, { failNth: [1] }), { attempts: 3, baseDelayMs: 1 });
    await assert.rejects(second.put('.scvmfs/lock', Buffer.from('theirs'), { ifNoneMatch: '*' }), PreconditionFailedError);
    // An unanswered swap on a stale etag is a lost race too; on the current etag it is retried.
    const third = new RetryingStore(new FaultStore(inner, { failNth: [1, 3] }), { attempts: 3, baseDelayMs: 1 });
    await assert.rejects(third.put('.scvmfs/lock', Buffer.from('late'), { ifMatch: md5(Buffer.from('stale')) }), PreconditionFailedError);
    const { etag } = await third.put('.scvmfs/lock', Buffer.from('swapped'), { ifMatch: md5(Buffer.from('mine')) });
    assert.equal(etag, md5(Buffer.from('swapped')));
    assert.equal((await inner.get('.scvmfs/lock'))?.body.toString(), 'swapped');
  });

  test(`${name}: with every 7th request failing, 60 operations all succeed`, async () => {
    const fault = new FaultStore(fresh(), { failEvery: 7 });
    const meter = new MeteredStore(fault);
    const store = new RetryingStore(meter, { attempts: 3, baseDelayMs: 1 });
    for (let i = 0; i < 20; i++) {
      const key = `data/07/k${String(i).padStart(2, '0')}`;
      await store.put(key, Buffer.from(key), { ifNoneMatch: '*' });
      assert.equal((await store.get(key))?.body.toString(), key);
      assert.equal((await store.head(key))?.size, key.length);
    }
    const listed = await store.list('data/07/');
    assert.equal(listed.objects.length, 20);
    const s = meter.snapshot();
    const total = s.get + s.head + s.put + s.conditionalPut + s.list + s.delete;
    assert.equal(total, fault.requests);
    assert.equal(s.failed, fault.injected);
    assert.equal(fault.injected, Math.floor(fault.requests / 7));
    assert.ok(fault.injected >= 8, `only ${fault.injected} faults injected`);
  });

  test(`${name}: a timeout is retried after its delay`, async () => {
    const fault = new FaultStore(fresh(), { timeout: { nth: [2], delayMs: 100 } });
    const store = new RetryingStore(fault, { attempts: 2, baseDelayMs: 1 });
    await store.put('data/00/t', Buffer.from('t'));
    const started = Date.now();
    assert.equal((await store.get('data/00/t'))?.body.toString(), 't');
    assert.ok(Date.now() - started >= 95);
    assert.equal(fault.injected, 1);
    assert.equal(fault.requests, 3);
  });

  test(`${name}: the meter counts kinds, conditional puts, precondition failures and bytes exactly`, async () => {
    const meter = new MeteredStore(fresh());
    await meter.put('data/00/one', Buffer.alloc(100));
    await meter.put('data/00/two', Buffer.alloc(50), { ifNoneMatch: '*' });
    await assert.rejects(meter.put('data/00/two', Buffer.alloc(50), { ifNoneMatch: '*' }), PreconditionFailedError);
    await meter.get('data/00/one');
    await meter.get('data/00/one', { start: 10, end: 19 });
    assert.equal(await meter.get('data/00/none'), null);
    await meter.head('data/00/two');
    await meter.list('data/');
    await meter.delete(['data/00/one', 'data/00/two']);
    await assert.rejects(meter.get('../escape'), /invalid store key/);
    const s = meter.snapshot();
    assert.deepEqual(s, { get: 4, head: 1, put: 1, conditionalPut: 2, list: 1, delete: 1, preconditionFailed: 1, failed: 1, bytesIn: 110, bytesOut: 150, objectsCreated: 1, bytesCreated: 50 });
    assert.equal(meterSummary(s), 'store requests: 10 (get 4, head 1, put 1, conditional put 2, list 1, delete 1); 1 precondition failed, 1 failed; 150 B out, 110 B in');
    meter.reset();
    assert.equal(meter.snapshot().get, 0);
  });
}

test('FaultStore refuses a nonsensical schedule', () => {
  assert.throws(() => new FaultStore(backends.fs!(), { failEvery: 0 }), /failEvery must be a positive integer/);
  assert.throws(() => new RetryingStore(backends.fs!(), { attempts: 0 }), /attempts must be a positive integer/);
});

test('openMeteredStore meters inside the retries on S3 and keeps the direct worker path on a directory', async () => {
  const dir = join(tempDir('metered'), 'store');
  const local = openMeteredStore(dir);
  assert.equal(directFsRoot(local.store), dir, 'compression workers may still write the directory directly');
  const { store, meter } = openMeteredStore(bucket.url('metered'));
  assert.ok(store instanceof RetryingStore);
  assert.equal(directFsRoot(store), undefined);
  await store.put('.cvmfspublished', Buffer.from('m'), { ifNoneMatch: '*' });
  assert.equal(await store.get('.cvmfsnothing'), null);
  assert.deepEqual(meter.snapshot(), { get: 1, head: 0, put: 0, conditionalPut: 1, list: 0, delete: 0, preconditionFailed: 0, failed: 0, bytesIn: 0, bytesOut: 1, objectsCreated: 0, bytesCreated: 0 });
  await assert.rejects(createBucketFor(dir), /--create-bucket needs an s3:\/\/ store/);
  await createBucketFor(bucket.url('x')); // already ours: fine
});
