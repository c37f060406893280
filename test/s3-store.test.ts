// S3Store against a real S3 server (the local Ceph radosgw that `npm test` starts): the ObjectStore
// contract, conditional writes racing across processes, and what anonymous HTTP readers may see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freshBucket } from './s3-env.js';
import { raceProcesses, tempDir } from './helpers.js';
import { PreconditionFailedError, RangeNotSatisfiableError, StoreError, TransientStoreError } from '../src/store/object-store.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Store, unquoteEtag } from '../src/store/s3-store.js';
import { openStore, parseS3Url } from '../src/store/open-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import type { ObjectStore } from '../src/store/object-store.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const bucket = await freshBucket('s3-store');

async function listAll(store: ObjectStore, prefix: string, limit: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list(prefix, { after, limit });
    pages++;
    keys.push(...page.objects.map((o) => o.key));
    if (!page.next) return { keys, pages };
    after = page.next;
  }
}

test('put, get, head and delete round-trip an object under the prefix', async () => {
  const store = bucket.store('repo/a');
  const body = randomBytes(1000);
  const { etag } = await store.put('data/ab/cdef', body);
  assert.equal(etag, md5(body), 'a single-part etag is the MD5 of the content, unquoted');
  const got = await store.get('data/ab/cdef');
  assert.ok(got);
  assert.ok(got.body.equals(body));
  assert.equal(got.etag, etag);
  assert.equal(got.size, 1000);
  assert.equal(got.totalSize, 1000);
  assert.equal(got.contentType, 'application/octet-stream');
  assert.equal(got.cacheControl, 'max-age=259200');
  const info = await store.head('data/ab/cdef');
  assert.equal(info?.etag, etag);
  assert.equal(info?.size, 1000);
  // The bucket holds it at <prefix>/<key>, exactly the served path.
  const root = bucket.store('');
  assert.ok((await root.get('repo/a/data/ab/cdef'))?.body.equals(body));
  assert.equal(await store.get('data/ab/none'), null);
  assert.equal(await store.head('data/ab/none'), null);
  await store.delete(['data/ab/cdef', 'data/ab/never-existed']);
  assert.equal(await store.get('data/ab/cdef'), null);
  assert.equal(await store.head('data/ab/cdef'), null);
});

test('an empty object round-trips', async () => {
  const store = bucket.store('repo/empty');
  await store.put('.cvmfs_master_replica', new Uint8Array());
  const got = await store.get('.cvmfs_master_replica');
  assert.equal(got?.body.length, 0);
  assert.equal(got?.contentType, 'application/x-cvmfs');
  assert.equal(got?.cacheControl, 'max-age=61');
});

test('range reads return the inclusive slice and the total size; a range past the end is 416', async () => {
  const store = bucket.store('repo/range');
  const body = Buffer.from('0123456789');
  await store.put('data/00/range', body);
  const mid = await store.get('data/00/range', { start: 2, end: 4 });
  assert.equal(mid?.body.toString(), '234');
  assert.equal(mid?.totalSize, 10);
  assert.equal(mid?.etag, md5(body));
  assert.equal((await store.get('data/00/range', { start: 7 }))?.body.toString(), '789');
  assert.equal((await store.get('data/00/range', { start: 8, end: 100 }))?.body.toString(), '89');
  await assert.rejects(store.get('data/00/range', { start: 10 }), (err: unknown) =>
    err instanceof RangeNotSatisfiableError && err.size === 10);
  assert.equal(await store.get('data/00/missing', { start: 10 }), null);
  await assert.rejects(store.get('data/00/range', { start: 5, end: 2 }), /invalid byte range/);
});

test('ifNoneMatch creates a new key but refuses an existing one, leaving it unchanged', async () => {
  const store = bucket.store('repo/create');
  await store.put('.cvmfspublished', Buffer.from('first'), { ifNoneMatch: '*' });
  await assert.rejects(store.put('.cvmfspublished', Buffer.from('second'), { ifNoneMatch: '*' }), PreconditionFailedError);
  assert.equal((await store.get('.cvmfspublished'))?.body.toString(), 'first');
});

test('ifMatch swaps on the current etag and refuses a stale etag or a missing key', async () => {
  const store = bucket.store('repo/cas');
  const { etag: e1 } = await store.put('.scvmfs/head', Buffer.from('v1'));
  const { etag: e2 } = await store.put('.scvmfs/head', Buffer.from('v2'), { ifMatch: e1 });
  assert.notEqual(e2, e1);
  await assert.rejects(store.put('.scvmfs/head', Buffer.from('v3'), { ifMatch: e1 }), PreconditionFailedError);
  assert.equal((await store.get('.scvmfs/head'))?.body.toString(), 'v2');
  await assert.rejects(store.put('.scvmfs/nothing', Buffer.from('x'), { ifMatch: e2 }), PreconditionFailedError);
  assert.equal(await store.head('.scvmfs/nothing'), null);
  await assert.rejects(store.put('.scvmfs/head', Buffer.from('x'), { ifMatch: e2, ifNoneMatch: '*' }), /cannot be combined/);
});

test('list pages with after and limit cover every key exactly once, relative to the prefix', async () => {
  const store = bucket.store('repo/list');
  const keys = Array.from({ length: 37 }, (_, i) => `data/${(i % 4).toString(16).padStart(2, '0')}/obj${String(i).padStart(3, '0')}`);
  await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
  await store.put('.cvmfspublished', Buffer.from('m'));
  // A sibling prefix that shares the string start must not leak in.
  await bucket.store('repo/list2').put('data/00/other', Buffer.from('x'));
  const sorted = [...keys].sort();
  for (const limit of [1, 5, 36, 37, 1000]) {
    const { keys: got, pages } = await listAll(store, 'data/', limit);
    assert.deepEqual(got, sorted, `limit ${limit}`);
    assert.equal(pages, Math.max(1, Math.ceil(37 / limit)), `pages at limit ${limit}`);
  }
  const all = await store.list('');
  assert.deepEqual(all.objects.map((o) => o.key), ['.cvmfspublished', ...sorted]);
  const first = all.objects.find((o) => o.key === sorted[0])!;
  assert.equal(first.etag, md5(Buffer.from(sorted[0]!)));
  assert.equal(first.size, sorted[0]!.length);
  assert.deepEqual((await store.list('data/01')).objects.map((o) => o.key), sorted.filter((k) => k.startsWith('data/01')));
  assert.deepEqual((await store.list('data/', { after: sorted[35] })).objects.map((o) => o.key), [sorted[36]]);
  assert.deepEqual((await store.list('nothing/')).objects, []);
});

test('delete removes more than one batch of 1000 keys', { timeout: 120_000 }, async () => {
  const store = bucket.store('repo/many');
  const keys = Array.from({ length: 1003 }, (_, i) => `data/ff/k${String(i).padStart(5, '0')}`);
  await Promise.all(keys.map((k) => store.put(k, Buffer.from('x'))));
  assert.equal((await listAll(store, 'data/', 1000)).keys.length, 1003);
  await store.delete(keys);
  assert.deepEqual((await store.list('data/')).objects, []);
});

test('a body above the multipart threshold goes up in parts and reads back whole', { timeout: 60_000 }, async () => {
  const store = bucket.store('repo/multi', { multipartThreshold: 6 << 20, partSize: 5 << 20 });
  const body = randomBytes(13 << 20);
  const { etag } = await store.put('data/12/big', body, { ifNoneMatch: '*' });
  assert.match(etag, /-3$/, 'a multipart etag names its 3 parts');
  const got = await store.get('data/12/big');
  assert.ok(got?.body.equals(body));
  assert.equal(got?.etag, etag);
  // The create-only condition still holds for multipart uploads.
  await assert.rejects(store.put('data/12/big', body, { ifNoneMatch: '*' }), PreconditionFailedError);
  const { etag: next } = await store.put('data/12/big', body.subarray(0, 7 << 20), { ifMatch: etag });
  await assert.rejects(store.put('data/12/big', body, { ifMatch: etag }), PreconditionFailedError);
  assert.equal((await store.head('data/12/big'))?.etag, next);
});

test('public keys are readable anonymously with the stock headers; the control part is not', async () => {
  const store = bucket.store('pub/repo');
  await store.put('.cvmfspublished', Buffer.from('manifest'));
  await store.put('data/aa/' + 'b'.repeat(38) + 'C', Buffer.from('catalog'));
  await store.put('.scvmfs/x', Buffer.from('lease'));
  const base = bucket.publicUrl('pub/repo');
  const manifest = await fetch(`${base}/.cvmfspublished`);
  assert.equal(manifest.status, 200);
  assert.equal(await manifest.text(), 'manifest');
  assert.equal(manifest.headers.get('cache-control'), 'max-age=61');
  assert.equal(manifest.headers.get('content-type'), 'application/x-cvmfs');
  const catalog = await fetch(`${base}/data/aa/${'b'.repeat(38)}C`);
  assert.equal(catalog.status, 200);
  assert.equal(catalog.headers.get('cache-control'), 'max-age=259200');
  assert.equal(catalog.headers.get('content-type'), 'application/octet-stream');
  await catalog.arrayBuffer();
  const control = await fetch(`${base}/.scvmfs/x`);
  assert.equal(control.status, 403, 'the control part is private');
  await control.arrayBuffer();
  // ...but the owner reads it.
  assert.equal((await store.get('.scvmfs/x'))?.body.toString(), 'lease');
});

test('new data objects go up by a signed PUT, not the SDK, with the same headers, ACL, 412 and refusal of wrong keys', async () => {
  const sdkPuts: string[] = [];
  const count = async (store: S3Store) => (await store.sdk()).client.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'PutObjectCommand') sdkPuts.push((args.input as { Key: string }).Key);
    return next(args);
  }, { step: 'initialize' });
  const lean = bucket.store('signed/lean');
  const plain = bucket.store('signed/sdk', { signedPuts: false });
  await count(lean);
  await count(plain);
  const key = `data/5e/${'a'.repeat(38)}`;
  const body = randomBytes(3000);
  for (const store of [lean, plain]) {
    assert.equal((await store.put(key, body, { ifNoneMatch: '*' })).etag, md5(body));
    await assert.rejects(store.put(key, Buffer.from('other'), { ifNoneMatch: '*' }), PreconditionFailedError);
    assert.ok((await store.get(key))!.body.equals(body), 'a refused put left the object as it was');
  }
  assert.deepEqual(sdkPuts, [`signed/sdk/${key}`, `signed/sdk/${key}`], 'only the store without signed PUTs used the SDK');
  const seen = [];
  for (const prefix of ['signed/lean', 'signed/sdk']) {
    const res = await fetch(`${bucket.publicUrl(prefix)}/${key}`);
    assert.equal(res.status, 200, 'public-read, readable anonymously');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
    seen.push([res.headers.get('content-type'), res.headers.get('cache-control'), res.headers.get('etag')]);
  }
  assert.deepEqual(seen[0], seen[1]);
  assert.deepEqual(seen[0]!.slice(0, 2), ['application/octet-stream', 'max-age=259200']);
  // Mutable keys and non-data keys still go through the SDK.
  await lean.put('.cvmfspublished', Buffer.from('m'));
  assert.equal(sdkPuts.length, 3);

  const wrong = bucket.store('signed/lean', { credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID!, secretAccessKey: 'not-the-secret' } });
  await assert.rejects(wrong.put(`data/5e/${'b'.repeat(38)}`, body, { ifNoneMatch: '*' }), (err: unknown) =>
    err instanceof StoreError && !(err instanceof TransientStoreError) && /403/.test(err.message) && /data\/5e\//.test(err.message));
  assert.equal(await lean.head(`data/5e/${'b'.repeat(38)}`), null, 'a refused request wrote nothing');
});

test('a signed PUT maps server answers as the SDK path does: 5xx and 429 transient, 403 and 409 not, one request each', async () => {
  const answers = [
    { status: 503, code: 'SlowDown' }, { status: 500, code: 'InternalError' }, { status: 429, code: 'TooManyRequests' },
    { status: 403, code: 'AccessDenied' }, { status: 409, code: 'ConditionalRequestConflict' }, { status: 412, code: 'PreconditionFailed' },
  ];
  let next = 0;
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      const a = answers[next++]!;
      res.writeHead(a.status, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0"?><Error><Code>${a.code}</Code><Message>said ${a.code}</Message></Error>`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const store = new S3Store({ bucket: 'fake-bucket', endpoint, credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' } });
  try {
    const put = () => store.put(`data/00/${'c'.repeat(38)}`, Buffer.from('x'), { ifNoneMatch: '*' });
    for (const status of [503, 500, 429]) {
      await assert.rejects(put(), (err: unknown) => err instanceof TransientStoreError && err.message.includes(String(status)));
    }
    await assert.rejects(put(), (err: unknown) => err instanceof StoreError && !(err instanceof TransientStoreError) && /AccessDenied 403: said AccessDenied/.test(err.message));
    await assert.rejects(put(), PreconditionFailedError);
    await assert.rejects(put(), PreconditionFailedError);
    assert.equal(requests, answers.length, 'one request per put, no retries inside the store');
  } finally {
    store.close();
    server.close();
  }
});

test('a store on a bucket that does not exist fails with a StoreError naming the key', async () => {
  const store = bucket.store('', { bucket: `${bucket.bucket}-absent` });
  await assert.rejects(store.get('.cvmfspublished'), (err: unknown) =>
    err instanceof StoreError && /\.cvmfspublished/.test(err.message) && /NoSuchBucket|404/.test(err.message));
});

test('s3:// URLs parse to bucket, prefix, endpoint, region and path style; malformed ones are refused', () => {
  const env = { S3_ENDPOINT: 'http://127.0.0.1:9', AWS_REGION: 'eu-west-1' };
  assert.deepEqual(parseS3Url('s3://my-bucket/some/prefix', env),
    { bucket: 'my-bucket', prefix: 'some/prefix', endpoint: 'http://127.0.0.1:9', region: 'eu-west-1', forcePathStyle: true, objectAcls: true });
  assert.deepEqual(parseS3Url('s3://my-bucket?region=us-west-2&path-style=false&acl=none', {}),
    { bucket: 'my-bucket', prefix: '', endpoint: undefined, region: 'us-west-2', forcePathStyle: false, objectAcls: false });
  assert.equal(parseS3Url('s3://b-1/p/', {}).prefix, 'p');
  assert.equal(parseS3Url('s3://b-1/p?endpoint=https://s3.example.org', {}).forcePathStyle, true);
  assert.equal(parseS3Url('s3://b-1/p', {}).forcePathStyle, false, 'AWS itself: virtual-hosted style');
  for (const [spec, why] of [
    ['s3://', /no bucket/],
    ['s3://UPPER/x', /invalid bucket name/],
    ['s3://ab/x', /invalid bucket name/],
    ['s3://bucket/a//b', /empty path segment/],
    ['s3://bucket/a%5Cb', /backslash/],
    ['s3://bucket/x?endpoint=ftp://h', /not an http\(s\) URL/],
    ['s3://bucket/x?path-style=yes', /path-style must be true or false/],
    ['s3://bucket/x?colour=red', /unknown parameter 'colour'/],
    ['s3://key:secret@bucket/x', /credentials do not belong in the URL/],
    ['s3://bucket:9000/x', /port belongs in \?endpoint=/],
  ] as const) {
    assert.throws(() => parseS3Url(spec, {}), why, spec);
  }
  assert.throws(() => openStore('gs://bucket/x'), /unsupported store/);
  assert.ok(openStore('s3://bucket-x/p?endpoint=http://127.0.0.1:9') instanceof RetryingStore);
  assert.equal(unquoteEtag('"abc"'), 'abc');
  assert.equal(unquoteEtag('W/"abc"'), 'abc');
  assert.equal(unquoteEtag('abc'), 'abc');
});

// ---- Several processes against one bucket ---------------------------------------------------------

const WORKER = `
const [moduleUrl, url, mode, key, arg] = process.argv.slice(2);
const { openStore } = await import(moduleUrl);
const store = openStore(url);
const isLoss = (err) => err && err.name === 'PreconditionFailedError';
const etag = mode === 'cas' ? (await store.head(key)).etag : undefined;
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
try {
  if (mode === 'cas') await store.put(key, Buffer.from(arg), { ifMatch: etag });
  if (mode === 'create') await store.put(key, Buffer.from(arg), { ifNoneMatch: '*' });
  if (mode === 'count') {
    for (let i = 0; i < Number(arg); i++) {
      for (;;) {
        const current = await store.get(key);
        // Unique bytes per write: settling an unanswered CAS by content needs writers to differ.
        const next = Buffer.from((Number(current.body.toString().split(' ')[0]) + 1) + ' by ' + process.pid + '/' + i);
        try { await store.put(key, next, { ifMatch: current.etag }); break; } catch (err) { if (!isLoss(err)) throw err; }
      }
    }
  }
  process.stdout.write('won\\n');
} catch (err) {
  process.stdout.write(isLoss(err) ? 'lost\\n' : 'error ' + err.stack + '\\n');
}
process.exit(0);
`;

/** Starts the workers, lets them all get ready, then releases them at once; resolves their verdicts. */
function race(url: string, args: string[][]): Promise<string[]> {
  const moduleUrl = new URL('../src/store/open-store.js', import.meta.url).href;
  return raceProcesses(join(tempDir('s3-race'), 'worker.mjs'), WORKER, args.map((a) => [moduleUrl, url, ...a]));
}

test('of 8 processes racing ifMatch on the same etag exactly one wins', { timeout: 60_000 }, async () => {
  const store = bucket.store('race/cas');
  await store.put('.scvmfs/head', Buffer.from('start'));
  const verdicts = await race(bucket.url('race/cas'), Array.from({ length: 8 }, (_, i) => ['cas', '.scvmfs/head', `writer-${i}`]));
  assert.equal(verdicts.filter((v) => v === 'won').length, 1, verdicts.join(', '));
  assert.equal(verdicts.filter((v) => v === 'lost').length, 7, verdicts.join(', '));
  assert.equal((await store.get('.scvmfs/head'))?.body.toString(), `writer-${verdicts.indexOf('won')}`);
});

test('of 8 processes racing ifNoneMatch to create the same key exactly one wins', { timeout: 60_000 }, async () => {
  const store = bucket.store('race/create');
  const verdicts = await race(bucket.url('race/create'), Array.from({ length: 8 }, (_, i) => ['create', '.cvmfspublished', `writer-${i}`]));
  assert.equal(verdicts.filter((v) => v === 'won').length, 1, verdicts.join(', '));
  assert.equal(verdicts.filter((v) => v === 'lost').length, 7, verdicts.join(', '));
  assert.equal((await store.get('.cvmfspublished'))?.body.toString(), `writer-${verdicts.indexOf('won')}`);
});

test('4 processes doing 15 read-CAS-retry increments each lose no update', { timeout: 120_000 }, async () => {
  const store = bucket.store('race/count');
  await store.put('.scvmfs/counter', Buffer.from('0'));
  const verdicts = await race(bucket.url('race/count'), Array.from({ length: 4 }, () => ['count', '.scvmfs/counter', '15']));
  assert.deepEqual(verdicts, ['won', 'won', 'won', 'won']);
  assert.equal((await store.get('.scvmfs/counter'))?.body.toString().split(' ')[0], '60');
});

test('S3Store refuses bad construction parameters clearly', () => {
  assert.throws(() => new S3Store({ bucket: 'ok-bucket', prefix: '/lead' }), /no leading or trailing/);
  assert.throws(() => new S3Store({ bucket: 'ok-bucket', partSize: 1024 }), /at least 5 MiB/);
  assert.throws(() => new S3Store({ bucket: 'ok-bucket', maxInFlight: 0 }), /positive integer/);
});
