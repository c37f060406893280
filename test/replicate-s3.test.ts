// Replication into Ceph (S3): the stock-made vector and a repository of ours become stratum 1s in a
// bucket, verified from the bucket's own URL and through `scvmfs serve`; a later run copies only what
// a publish on the source added.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, extractVector, runCli, tempDir } from './helpers.js';
import { freshBucket } from './s3-env.js';
import { FsStore } from '../src/store/fs-store.js';
import { openStore } from '../src/store/open-store.js';
import { serveStore } from '../src/serve/http-server.js';

const FQRN = 'replica-s3.example.org';
const bucket = await freshBucket('replicate');

async function verifyBoth(prefix: string, fqrn: string, pubkey: string, extra: string[] = []): Promise<number> {
  const direct = JSON.parse((await cliOk(['verify', bucket.publicUrl(prefix), '--fqrn', fqrn, '--pubkey', pubkey, '--json', ...extra])).stdout);
  const server = await serveStore(openStore(bucket.url(prefix)));
  try {
    const served = JSON.parse((await cliOk(['verify', server.url, '--fqrn', fqrn, '--pubkey', pubkey, '--json', ...extra])).stdout);
    assert.equal(served.revision, direct.revision);
  } finally {
    await server.close();
  }
  return direct.revision as number;
}

test('s3: the stock-made legacy_aufs repository replicates into a bucket and verifies from the bucket URL and through serve', async () => {
  const v = extractVector();
  const pubkey = join(v.keys, `${v.fqrn}.pub`);
  const prefix = `vector/${v.fqrn}`;
  const source = await serveStore(new FsStore(v.repo));
  try {
    const out = JSON.parse((await cliOk(['replicate', source.url, '--fqrn', v.fqrn, '--pubkey', pubkey, '--store', bucket.url(prefix), '--allow-expired-whitelist', '--json'])).stdout);
    assert.equal(out.status, 'replicated');
  } finally {
    await source.close();
  }
  const manifest = await bucket.store(prefix).get('.cvmfspublished');
  assert.ok(manifest!.body.equals(readFileSync(join(v.repo, '.cvmfspublished'))));
  assert.ok(await bucket.store(prefix).head('.cvmfs_last_snapshot'));
  await verifyBoth(prefix, v.fqrn, pubkey, ['--allow-expired-whitelist']);
});

test('s3: a repository of ours replicates into a bucket; after a publish only the new objects are copied, and a lower source is refused', async () => {
  const work = tempDir('rep-s3');
  const storeDir = join(work, 'store');
  const keysDir = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 10; i++) writeFileSync(join(src, 'sub', `f${i}`), `s3 file ${i}\n`.repeat(i + 1));
  writeFileSync(join(src, 'sub', '.cvmfscatalog'), '');
  await cliOk(['init', FQRN, '--store', storeDir, '--keys', keysDir]);
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  const pubkey = join(keysDir, `${FQRN}.pub`);
  const prefix = `ours/${FQRN}`;
  const replicate = async (from: string) => JSON.parse((await cliOk(['replicate', from, '--fqrn', FQRN, '--pubkey', pubkey, '--store', bucket.url(prefix), '--json'])).stdout);
  const first = await replicate(storeDir);
  assert.equal(first.status, 'replicated');
  assert.equal(await verifyBoth(prefix, FQRN, pubkey), 2);

  const old = join(work, 'old');
  cpSync(storeDir, old, { recursive: true });
  writeFileSync(join(src, 'new-top-file'), 'new in the next revision\n');
  const before = (await bucket.store(prefix).list('data/', { limit: 1000 })).objects.length;
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  const second = await replicate(storeDir);
  assert.equal(second.status, 'replicated');
  const after = (await bucket.store(prefix).list('data/', { limit: 1000 })).objects.length;
  assert.equal(second.copied, after - before, 'every object copied was new to the replica');
  assert.ok(second.copied <= 4, `only the new file, the changed root catalog and the history (${second.copied})`);
  // Only catalogs and manifest objects are looked up; the files below the unchanged nested catalog are not.
  assert.ok(second.present <= 5 && second.present < before / 2, `the unchanged nested catalog was not descended (${second.present} of ${before} objects looked up)`);
  const revision = await verifyBoth(prefix, FQRN, pubkey);

  // The first source copy, now behind the replica, is refused and the bucket keeps its manifest.
  const manifest = (await bucket.store(prefix).get('.cvmfspublished'))!.body;
  const behind = await runCli(['replicate', old, '--fqrn', FQRN, '--pubkey', pubkey, '--store', bucket.url(prefix)]);
  assert.notEqual(behind.code, 0);
  assert.match(behind.stderr, /the replica already serves revision 3/);
  assert.ok((await bucket.store(prefix).get('.cvmfspublished'))!.body.equals(manifest));
  assert.equal(await verifyBoth(prefix, FQRN, pubkey), revision);
});
