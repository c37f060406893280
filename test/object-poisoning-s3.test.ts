// Object poisoning against Ceph radosgw: writer A plants garbage under the keys writer B's files will
// hash to, through a pre-signed create-only PUT from its upload grant or with its own credentials. B's
// publish through grants lands with the right bytes, read anonymously over HTTP; so does the owner's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freshBucket } from './s3-env.js';
import { tempDir } from './helpers.js';
import { invoker } from './chain-invoker.js';
import { badObjectReports, CHUNKING, objectKeysOf, poison, victimTree } from './poisoning-helpers.js';
import { MeteredStore } from '../src/store/metered-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { initRepository } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { RepositoryReader } from '../src/client/reader.js';
import { HttpSource } from '../src/client/sources.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'poison-s3.example.org';

async function setup(label: string) {
  const bucket = await freshBucket(label);
  const backend = bucket.store(FQRN);
  const store: ObjectStore = new RetryingStore(new MeteredStore(backend));
  const work = tempDir(label);
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  for (const w of ['a', 'b']) await addPublisher(store, { keysDir, fqrn: FQRN, name: w, paths: [`/${w}`] });
  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const readBack = async (files: Record<string, Buffer>) => {
    const reader = await RepositoryReader.open(new HttpSource(bucket.publicUrl(FQRN)), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
    try {
      for (const [rel, bytes] of Object.entries(files)) assert.deepEqual(await reader.readFile(`/b/${rel}`), bytes, `/b/${rel}`);
      await verifyRepository(reader);
    } finally {
      reader.close();
    }
  };
  return { store, work, keysDir, keys, config, readBack };
}

for (const attack of ['grant', 'direct'] as const) {
  test(`Ceph: keys poisoned ${attack === 'grant' ? 'through pre-signed PUTs of an upload grant' : 'with direct credentials'}; B publishes through grants and lands with the right bytes`, async () => {
    const { store, work, keysDir, config, readBack } = await setup(`poison-s3-${attack}`);
    const src = join(work, 'b-src');
    const files = victimTree(src);
    const objectKeys = await objectKeysOf(src, FQRN);
    await poison(store, config, keysDir, objectKeys, attack);
    const b = await loadPublisherKey(keysDir, 'b');
    const s = await publishThroughChain(store, src, {
      fqrn: FQRN, publisher: b, path: '/b', functions: invoker(config), uploadVia: 'grants', chunking: CHUNKING, xattrs: null,
    });
    assert.equal(s.revision, 2);
    await readBack(files);
    const reports = await badObjectReports(store);
    assert.deepEqual(reports.map((r) => r.key).sort(), [...objectKeys].sort());
    for (const r of reports) assert.match(r.uploader, attack === 'grant' ? /publisher 'a' .*pre-signed URL/ : /unknown uploader/);
  });
}

test('Ceph: the owner publish overwrites objects a writer poisoned through its grant', async () => {
  const { store, work, keysDir, keys, config, readBack } = await setup('poison-s3-owner');
  const src = join(work, 'owner-src');
  const files = victimTree(src);
  const objectKeys = await objectKeysOf(src, FQRN);
  await poison(store, config, keysDir, objectKeys, 'grant');
  const warnings: string[] = [];
  const s = await publishDirectory(store, src, { fqrn: FQRN, keys, path: '/b', chunking: CHUNKING, xattrs: null, onWarning: (w) => warnings.push(w) });
  assert.equal(s.objectsReplaced, objectKeys.length);
  await readBack(files);
  assert.ok(warnings.some((w) => /publisher 'a'/.test(w)), warnings.join('\n'));
});
