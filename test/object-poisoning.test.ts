// Object poisoning (design invariant 6): a writer with a lease on /a creates the keys that writer B's
// files under /b will hash to, with garbage, either with its own store access or through an upload
// grant. B's publish must land with the right bytes (or fail naming the object, the path and the
// uploader), and no revision may ever reference the garbage. The same for the owner's publish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { tempDir } from './helpers.js';
import { badObjectReports, CHUNKING, garbage, objectKeysOf, poison, victimTree } from './poisoning-helpers.js';
import { invoker } from './chain-invoker.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { ContentHash } from '../src/format/hash.js';
import { initRepository, MANIFEST_KEY, readHead } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { checkStoredObject, grantsOf, newVerificationStats } from '../src/repo/object-verification.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { ingestTarball } from '../src/publish/ingest-tarball.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { prepareObject } from '../src/format/zlib-object.js';
import { localInvoker } from '../src/runtime/invokers.js';

const FQRN = 'poison.example.org';

async function setup(name: string) {
  const work = tempDir(name);
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  for (const w of ['a', 'b']) await addPublisher(store, { keysDir, fqrn: FQRN, name: w, paths: [`/${w}`] });
  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const open = () => RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  return { work, store, keysDir, keys, config, open };
}

async function assertVictimReadsBack(open: () => Promise<RepositoryReader>, files: Record<string, Buffer>, prefix: string): Promise<void> {
  const reader = await open();
  try {
    for (const [rel, bytes] of Object.entries(files)) {
      assert.deepEqual(await reader.readFile(`${prefix}/${rel}`), bytes, `${prefix}/${rel} reads back byte-identical`);
    }
    await verifyRepository(reader);
  } finally {
    reader.close();
  }
}

for (const attack of ['direct', 'grant'] as const) {
  for (const victim of ['direct', 'grants'] as const) {
    test(`keys poisoned by another writer (${attack === 'direct' ? 'direct store access' : 'an upload grant'}): B's publish (uploads ${victim}) lands with the right bytes and the uploader is reported`, async () => {
      const { work, store, keysDir, config, open } = await setup(`poison-${attack}-${victim}`);
      const src = join(work, 'b-src');
      const files = victimTree(src);
      const objectKeys = await objectKeysOf(src, FQRN);
      assert.ok(objectKeys.length >= 4, `the small file and several chunks: ${objectKeys.length}`);
      await poison(store, config, keysDir, objectKeys, attack);
      if (attack === 'grant') assert.equal((await grantsOf(store, objectKeys[0]!))[0]?.publisher, 'a', 'the grant is recorded');

      const messages: string[] = [];
      const b = await loadPublisherKey(keysDir, 'b');
      const s = await publishThroughChain(store, src, {
        fqrn: FQRN, publisher: b, path: '/b', functions: invoker(config), uploadVia: victim, chunking: CHUNKING, xattrs: null,
        onProgress: (m) => messages.push(m),
      });
      assert.equal(s.revision, 2, 'one revision: A committed nothing, B committed once');
      await assertVictimReadsBack(open, files, '/b');
      for (const k of objectKeys) {
        const c = await checkStoredObject(store, k, ContentHash.fromObjectName(k.slice(5).replace('/', '')).hash);
        assert.equal(c.status, 'ok', `${k} holds its own bytes now`);
      }
      const reports = await badObjectReports(store);
      assert.deepEqual(reports.map((r) => r.key).sort(), [...objectKeys].sort(), 'every bad object is reported once');
      for (const r of reports) {
        assert.equal(r.action, 'removed');
        if (attack === 'grant') assert.match(r.uploader, /publisher 'a' \(lease [^ ]+ on \/a/);
        else assert.match(r.uploader, /unknown uploader .*direct store access/);
        assert.ok(r.paths.every((p) => p.startsWith('/b/')), r.paths.join());
      }
      assert.ok(messages.some((m) => /held other bytes .* uploading it again/.test(m)), messages.join('\n'));
      assert.equal((await store.list('.scvmfs/grants/')).objects.length, 0, 'grant records of checked objects are dropped');
    });
  }
}

test('an uploader that poisons the key again after every removal: the publish fails naming the key, the path and the uploader; the manifest is unchanged', async () => {
  const { work, store, keysDir, config, open } = await setup('poison-persistent');
  const src = join(work, 'b-src');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'target.txt'), 'wanted content\n');
  const [key] = await objectKeysOf(src, FQRN);
  await poison(store, config, keysDir, [key!], 'grant');
  const before = readFileSync(join(work, 'store', MANIFEST_KEY));
  const b = await loadPublisherKey(keysDir, 'b');
  const err = await publishThroughChain(store, src, {
    fqrn: FQRN, publisher: b, path: '/b', functions: invoker(config), uploadVia: 'grants', xattrs: null,
    // A is faster than B every time: as soon as the commit removed the object, A creates it again.
    onProgress: (m) => { if (m.includes('uploading it again')) writeFileSync(join(work, 'store', key!), garbage(key!)); },
  }).then(() => null, (e: unknown) => e as { code?: string; message: string; data?: { objects: { key: string; paths: string[]; uploader: string }[] } });
  assert.ok(err, 'the publish failed');
  assert.equal(err.code, 'poisoned-object');
  // The first bad copy came through A's grant; the copies after it, written straight into the store, have no grant.
  assert.ok(err.message.includes(key!) && err.message.includes('/b/target.txt') && /uploaded by an unknown uploader .*direct store access/.test(err.message), err.message);
  const reports = await badObjectReports(store);
  assert.equal(reports.length, 4, 'the first removal and the three after each upload again');
  assert.equal(reports.filter((r) => /publisher 'a'/.test(r.uploader)).length, 1, 'the first names A, whose grant it was');
  assert.deepEqual(err.data?.objects.map((o) => [o.key, o.paths]), [[key, ['/b/target.txt']]]);
  assert.deepEqual(readFileSync(join(work, 'store', MANIFEST_KEY)), before, 'no revision was made');
  const reader = await open();
  await verifyRepository(reader);
  reader.close();
  const head = await readHead(store);
  assert.equal(head!.manifest.revision, 1);
});

/** A store that hides the directory behind it (objects are then streamed by GETs) and counts data reads. */
function countingStore(inner: ObjectStore) {
  const reads: { key: string; how: 'get' | 'stream'; bytes: number }[] = [];
  const isData = (k: string) => /^data\/.*[0-9a-f]P?$/.test(k);
  const store: ObjectStore = {
    description: inner.description,
    get: async (k, r) => {
      const got = await inner.get(k, r);
      if (isData(k)) reads.push({ key: k, how: 'get', bytes: got?.body.length ?? 0 });
      return got;
    },
    getStream: async (k, r) => {
      const got = await inner.getStream(k, r);
      if (!got || !isData(k)) return got;
      const read = { key: k, how: 'stream' as const, bytes: 0 };
      reads.push(read);
      const counted = new Transform({ transform(chunk: Buffer, _enc, done) { read.bytes += chunk.length; done(null, chunk); } });
      return { ...got, body: got.body.pipe(counted) };
    },
    head: (k) => inner.head(k),
    put: (k, b, o) => inner.put(k, b, o),
    list: (p, o) => inner.list(p, o),
    delete: (k) => inner.delete(k),
  };
  return { store, reads };
}

test('the commit reads each new object once as a stream, and skips the object of an entry it replaces with the same content', async () => {
  const { work, store, keysDir, config, open } = await setup('poison-cost');
  const src = join(work, 'b-src');
  mkdirSync(src, { recursive: true });
  const big = randomBytes(5 << 20);
  writeFileSync(join(src, 'big.bin'), big);
  writeFileSync(join(src, 'small.txt'), 'small\n');
  const counting = countingStore(store);
  const b = await loadPublisherKey(keysDir, 'b');
  const publish = () => publishThroughChain(store, src, {
    fqrn: FQRN, publisher: b, path: '/b', functions: invoker({ ...config, store: counting.store }), chunking: false, xattrs: null,
  });
  await publish();
  const bigKey = (await objectKeysOfUnchunked(src, 'big.bin'));
  const bigReads = counting.reads.filter((r) => r.key === bigKey);
  assert.deepEqual(bigReads.map((r) => r.how), ['stream'], 'the big object is streamed by one GET, never fetched whole');
  const stored = (await store.head(bigKey))!.size;
  assert.equal(bigReads[0]!.bytes, stored, 'its stored bytes are read once');

  // Same content, new mtime: the upsert replaces an entry naming the same objects, which are not read again.
  counting.reads.length = 0;
  utimesSync(join(src, 'big.bin'), new Date(), new Date(Date.now() - 60_000));
  utimesSync(join(src, 'small.txt'), new Date(), new Date(Date.now() - 60_000));
  const s = await publish();
  assert.equal(s.revision, 3);
  assert.ok(s.operations >= 2);
  assert.deepEqual(counting.reads.map((r) => r.key), [], 'no data object was read');
  const reader = await open();
  assert.deepEqual(await reader.readFile('/b/big.bin'), big);
  await verifyRepository(reader);
  reader.close();
});

async function objectKeysOfUnchunked(src: string, rel: string): Promise<string> {
  return prepareObject('sha1', readFileSync(join(src, rel)), '').key;
}

for (const attack of ['direct', 'grant'] as const) {
  for (const storeKind of ['directory workers', 'uploader'] as const) {
    test(`the owner's publish replaces objects poisoned by a writer (${attack === 'direct' ? 'direct store access' : 'an upload grant'}; ${storeKind}) and reports the uploader`, async () => {
      const { work, store, keysDir, keys, config, open } = await setup(`poison-owner-${attack}-${storeKind.replace(' ', '-')}`);
      const src = join(work, 'owner-src');
      const files = victimTree(src);
      const objectKeys = await objectKeysOf(src, FQRN);
      await poison(store, config, keysDir, objectKeys, attack);
      const warnings: string[] = [];
      // Through a wrapper that hides the directory, the objects go through the Uploader (as on S3).
      const target = storeKind === 'uploader' ? countingStore(store).store : store;
      const s = await publishDirectory(target, src, {
        fqrn: FQRN, keys, path: '/b', chunking: CHUNKING, xattrs: null, onWarning: (w) => warnings.push(w),
      });
      assert.equal(s.revision, 2);
      assert.equal(s.objectsReplaced, objectKeys.length);
      await assertVictimReadsBack(open, files, '/b');
      const reports = await badObjectReports(store);
      assert.deepEqual(reports.map((r) => r.key).sort(), [...objectKeys].sort());
      for (const r of reports) {
        assert.equal(r.action, 'replaced');
        assert.match(r.uploader, attack === 'grant' ? /publisher 'a'/ : /unknown uploader/);
      }
      assert.equal(warnings.filter((w) => /do not match its name/.test(w)).length, objectKeys.length, warnings.join('\n'));
    });
  }
}

test('checkStoredObject: a streamed GET agrees with the directory file; a missing key and a zero-byte object', async () => {
  const { store } = await setup('poison-check');
  const o = prepareObject('sha1', Buffer.alloc(3 << 20, 'x'), '');
  await store.put(o.key, o.stored);
  const hidden = countingStore(store).store;
  const stats = newVerificationStats();
  assert.deepEqual(await checkStoredObject(hidden, o.key, o.hash, stats), { status: 'ok', size: o.stored.length });
  assert.equal(stats.requests, 1);
  assert.equal(stats.bytesRead, o.stored.length);
  assert.equal((await checkStoredObject(store, o.key, o.hash)).status, 'ok');
  const other = prepareObject('sha1', Buffer.from('other'), '');
  assert.deepEqual(await checkStoredObject(hidden, other.key, other.hash), { status: 'missing' });
  await store.put(other.key, Buffer.alloc(0));
  const zero = await checkStoredObject(hidden, other.key, other.hash);
  assert.equal(zero.status, 'corrupt');
  assert.equal((await checkStoredObject(store, other.key, other.hash)).status, 'corrupt');
});

test('under the local runtime, in slices of two operations: the poisoned objects of a later slice are removed and the publish resumes from its checkpoint', async () => {
  const { work, store, keysDir, config, open } = await setup('poison-runtime');
  const src = join(work, 'b-src');
  const files = victimTree(src);
  for (let i = 0; i < 12; i++) {
    files[`many/f${i}`] = Buffer.from(`file ${i} of many\n`);
    mkdirSync(join(src, 'many'), { recursive: true });
    writeFileSync(join(src, 'many', `f${i}`), files[`many/f${i}`]!);
  }
  const objectKeys = await objectKeysOf(src, FQRN);
  // Only the objects of the last files in the walk's order: their check comes in a later slice.
  const late = objectKeys.filter((k) => [10, 11].some((i) => k === prepareObject('sha1', files[`many/f${i}`]!, '').key));
  assert.equal(late.length, 2);
  await poison(store, config, keysDir, late, 'grant');
  const env = { SCVMFS_STORE: store.root, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir, SCVMFS_SLICE_OPS: '2', SCVMFS_AUTOCATALOGS: 'off' };
  const fns = localInvoker({ env });
  try {
    const b = await loadPublisherKey(keysDir, 'b');
    const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher: b, path: '/b', functions: fns, uploadVia: 'grants', chunking: CHUNKING, xattrs: null });
    assert.equal(s.revision, 2);
    assert.ok(s.slices > 3, `several slices: ${s.slices}`);
  } finally {
    await fns.close();
  }
  await assertVictimReadsBack(open, files, '/b');
  assert.deepEqual((await badObjectReports(store)).map((r) => r.key).sort(), [...late].sort());
});

test("the owner's tarball ingest replaces objects a writer poisoned through its grant", async () => {
  const { work, store, keysDir, keys, config, open } = await setup('poison-ingest');
  const src = join(work, 'tar-src');
  const files = victimTree(src);
  const objectKeys = await objectKeysOf(src, FQRN);
  await poison(store, config, keysDir, objectKeys, 'grant');
  const tarball = execFileSync('tar', ['--format=posix', '-C', src, '-cf', '-', '.']);
  const warnings: string[] = [];
  const s = await ingestTarball(store, Readable.from([tarball]), { fqrn: FQRN, keys, path: '/b', chunking: CHUNKING, onWarning: (w) => warnings.push(w) });
  assert.equal(s.objectsReplaced, objectKeys.length);
  await assertVictimReadsBack(open, files, '/b');
  assert.equal(warnings.filter((w) => /publisher 'a'/.test(w)).length, objectKeys.length, warnings.join('\n'));
});
