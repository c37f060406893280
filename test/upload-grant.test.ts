// Upload grants against Ceph radosgw: which keys exist, pre-signed PUTs that land with the public headers
// and ACL, URLs that cannot be bent to another key or outlive their lease, and a serverless publish whose
// writer sends every data object through grants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freshBucket } from './s3-env.js';
import { tempDir } from './helpers.js';
import { invoker } from './chain-invoker.js';
import { MeteredStore } from '../src/store/metered-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import { presigningStore, type ObjectStore } from '../src/store/object-store.js';
import { FsStore } from '../src/store/fs-store.js';
import { prepareObject } from '../src/format/zlib-object.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { initRepository } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { handleLeaseEvent } from '../src/functions/lease.js';
import { handleUploadGrant } from '../src/functions/upload-grant.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { RepositoryReader } from '../src/client/reader.js';
import { HttpSource } from '../src/client/sources.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'grants.example.org';

/** A repository in a fresh bucket; the functions see it through retries and a meter, as openStore stacks them. */
async function setup(label: string) {
  const bucket = await freshBucket(label);
  const backend = bucket.store(FQRN);
  const store: ObjectStore = new RetryingStore(new MeteredStore(backend));
  const work = tempDir(label);
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  await addPublisher(store, { keysDir, fqrn: FQRN, name: 'w1', paths: ['/w1'] });
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const lease = async (ttlSeconds = 120) => {
    const answer = await handleLeaseEvent({ action: 'acquire', request: signLeaseRequest(publisher, { fqrn: FQRN, path: '/w1', ttlSeconds }) },
      { store, fqrn: FQRN, masterPublicKeyPem: keys.masterPublicKeyPem }, new Date());
    assert.ok(answer.status === 'ok' && 'lease' in answer, JSON.stringify(answer));
    return answer.lease;
  };
  return { bucket, backend, store, work, keys, publisher, config, lease };
}

const object = (text: string) => prepareObject('sha1', Buffer.from(text), '');

test('a grant says which keys exist and signs a create-only PUT for each missing one, through the store wrappers', async () => {
  const { backend, store, lease } = await setup('grant-mix');
  assert.equal(presigningStore(store), backend, 'found under RetryingStore and MeteredStore');
  assert.equal(presigningStore(new FsStore(tempDir('grant-fs'))), undefined);
  const there = object('already there');
  await store.put(there.key, there.stored, { ifNoneMatch: '*' });
  const a = object('missing a');
  const b = object('missing b');
  const l = await lease();
  const answer = await handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/w1', keys: [a.key, there.key, b.key, a.key] }, store);
  assert.deepEqual(answer.present, [there.key]);
  assert.deepEqual(answer.upload.map((g) => g.key), [a.key, b.key]);
  assert.equal(answer.expiresInSeconds, 900);
  for (const g of answer.upload) {
    assert.match(g.url!, /^http:\/\/127\.0\.0\.1:\d+\/t-grant-mix-[0-9a-f]+\/grants\.example\.org\/data\//);
    assert.match(g.url!, /X-Amz-SignedHeaders=[^&]*x-amz-acl/, 'the ACL is a signed header, not a query parameter');
    assert.doesNotMatch(g.url!, /x-amz-checksum/, 'no checksum of an empty body is signed into the URL');
    assert.deepEqual(g.headers, {
      'content-type': 'application/octet-stream', 'cache-control': 'max-age=259200', 'x-amz-acl': 'public-read', 'if-none-match': '*',
    });
  }
  await assert.rejects(handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/w1', keys: ['.cvmfspublished'] }, store),
    /'.cvmfspublished' is not a data object key/);
  await assert.rejects(handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/w1', keys: Array(1001).fill(a.key) }, store),
    /at most 1000/);
});

test('a pre-signed PUT by plain fetch lands public-read with the stock headers, once; the signed headers cannot be dropped', async () => {
  const { bucket, store, lease } = await setup('grant-put');
  const o = object('uploaded through a grant\n');
  const l = await lease();
  const [g] = (await handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/w1', keys: [o.key] }, store)).upload;
  const { 'cache-control': _dropped, ...withoutCaching } = g!.headers!;
  const unsigned = await fetch(g!.url!, { method: 'PUT', body: new Uint8Array(o.stored), headers: withoutCaching });
  assert.equal(unsigned.status, 403, 'a PUT without the signed Cache-Control is refused');
  const noAcl = { ...g!.headers! };
  delete noAcl['x-amz-acl'];
  assert.equal((await fetch(g!.url!, { method: 'PUT', body: new Uint8Array(o.stored), headers: noAcl })).status, 403, 'nor can the ACL be left out');
  assert.equal(await store.head(o.key), null);

  const put = await fetch(g!.url!, { method: 'PUT', body: new Uint8Array(o.stored), headers: g!.headers });
  assert.equal(put.status, 200, await put.text());
  const anonymous = await fetch(`${bucket.publicUrl(FQRN)}/${o.key}`);
  assert.equal(anonymous.status, 200, 'anonymously readable');
  assert.equal(anonymous.headers.get('content-type'), 'application/octet-stream');
  assert.equal(anonymous.headers.get('cache-control'), 'max-age=259200');
  assert.deepEqual(Buffer.from(await anonymous.arrayBuffer()), o.stored);

  const again = await fetch(g!.url!, { method: 'PUT', body: Buffer.from('other bytes'), headers: g!.headers });
  assert.equal(again.status, 412, 'create-only: an existing object is not overwritten');
  assert.deepEqual((await store.get(o.key))!.body, o.stored);
});

test('a URL for one key cannot write another, and an expired URL writes nothing', async () => {
  const { backend, store, lease } = await setup('grant-scope');
  const granted = object('granted');
  const other = object('not granted');
  const l = await lease();
  const [g] = (await handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/w1', keys: [granted.key] }, store)).upload;
  const bent = g!.url!.replace(granted.key, other.key);
  assert.notEqual(bent, g!.url);
  const res = await fetch(bent, { method: 'PUT', body: new Uint8Array(other.stored), headers: g!.headers });
  assert.equal(res.status, 403);
  assert.match(await res.text(), /SignatureDoesNotMatch/);
  assert.equal(await store.head(other.key), null);

  const short = await backend.presignPut(other.key, 1);
  await new Promise((r) => setTimeout(r, 2100));
  const late = await fetch(short, { method: 'PUT', body: new Uint8Array(other.stored), headers: backend.presignedPutHeaders(other.key) });
  assert.equal(late.status, 403, 'expired');
  assert.equal(await store.head(other.key), null);
  await assert.rejects(backend.presignPut(other.key, 0), /1 s to 7 days/);
  await assert.rejects(backend.presignPut('../x', 60), /invalid store key/);
});

test('no grant without a live lease: wrong token, unknown lease, expired lease, or a path outside it', async () => {
  const { store, lease } = await setup('grant-lease');
  const o = object('for nobody');
  const l = await lease(5);
  const ask = (e: Partial<{ leaseId: string; token: string; path: string }>, now = new Date()) =>
    handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/w1', keys: [o.key], ...e }, store, now);
  await assert.rejects(ask({ token: 'x'.repeat(l.token.length) }), /wrong token/);
  await assert.rejects(ask({ leaseId: 'no-such-lease' }), /does not exist/);
  await assert.rejects(ask({}, new Date(Date.now() + 60_000)), /expired/);
  await assert.rejects(ask({ path: '/w2' }), /outside lease/);
  assert.equal((await ask({ path: '/w1/sub' })).upload.length, 1, 'a path within the lease is fine');
});

test("publishThroughChain with uploadVia 'grants' into S3: every data object goes through a grant, none as the writer's own PUT", async () => {
  const { bucket, backend, keys, publisher, config } = await setup('grant-chain');
  const src = join(tempDir('grant-chain-src'), 'tree');
  mkdirSync(join(src, 'lib'), { recursive: true });
  for (let i = 0; i < 50; i++) writeFileSync(join(src, 'lib', `f${i}`), `grant file ${i}\n`);
  writeFileSync(join(src, 'empty'), '');
  writeFileSync(join(src, 'big'), Buffer.alloc(3 << 20, 'scvmfs '));
  const writerMeter = new MeteredStore(backend);
  const writer = new RetryingStore(writerMeter);
  const fns = invoker(config);
  let grantCalls = 0;
  const counting = { ...fns, invoke: (fn: string, event: unknown) => { if (fn === 'upload-grant') grantCalls++; return fns.invoke(fn, event); } };
  const s = await publishThroughChain(writer, src, { fqrn: FQRN, publisher, path: '/w1', functions: counting, uploadVia: 'grants' });
  assert.equal(s.revision, 2);
  // The empty object came with the repository; it is reported present.
  assert.deepEqual([s.objectsUploaded, s.objectsAlreadyPresent], [51, 1], '50 small files and the big one uploaded');
  assert.ok(grantCalls >= 1 && grantCalls <= 52, `grant calls: ${grantCalls}`);
  const m = writerMeter.snapshot();
  assert.equal(m.conditionalPut, 0, 'no data object was put with the writer\'s own credentials');
  assert.equal(m.put, s.parts + 1, 'the writer put only its changeset parts and header');

  const reader = await RepositoryReader.open(new HttpSource(bucket.publicUrl(FQRN)), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  assert.equal((await reader.readFile('/w1/lib/f49')).toString(), 'grant file 49\n');
  assert.equal((await reader.readFile('/w1/empty')).length, 0);
  await verifyRepository(reader);
  reader.close();
  const { objects } = await backend.list('data/');
  assert.ok(objects.length >= 52);
  for (const o of objects.slice(0, 10)) {
    const res = await fetch(`${bucket.publicUrl(FQRN)}/${o.key}`, { method: 'HEAD' });
    assert.equal(res.status, 200, `${o.key} is public`);
    assert.equal(res.headers.get('cache-control'), 'max-age=259200');
  }
});
