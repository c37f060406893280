// What the object-poisoning tests share: the victim's tree, the keys it will hash to, and the attacker.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { EMPTY_OBJECT } from '../src/format/zlib-object.js';
import { ContentHash } from '../src/format/hash.js';
import { initRepository } from '../src/repo/repository.js';
import { loadPublisherKey } from '../src/repo/publishers.js';
import { handleLeaseEvent } from '../src/functions/lease.js';
import { handleUploadGrant } from '../src/functions/upload-grant.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { publishDirectory } from '../src/publish/publish-directory.js';

export const CHUNKING = { minSize: 64 << 10, avgSize: 128 << 10, maxSize: 256 << 10 };
const EMPTY_KEY = ContentHash.of('sha1', EMPTY_OBJECT).objectKey('');

/** B's tree: a small file, a chunked one, and an empty one. */
export function victimTree(root: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'small.txt': Buffer.from('the victim\'s small file\n'),
    'lib/big.bin': Buffer.from(Array.from({ length: 900 << 10 }, (_, i) => (i * 7919) % 251)),
    'empty': Buffer.alloc(0),
  };
  for (const [rel, bytes] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), bytes);
  }
  return files;
}

/** The data objects a tree's files make: published once into a scratch repository, which is then listed. */
export async function objectKeysOf(source: string, fqrn: string): Promise<string[]> {
  const store = new FsStore(join(tempDir('poison-scratch'), 'store'));
  const keys = await generateRepositoryKeys(fqrn);
  await initRepository(store, { fqrn, keys });
  await publishDirectory(store, source, { fqrn, keys, path: '/b', chunking: CHUNKING, xattrs: null });
  const keysFound: string[] = [];
  for (let after: string | undefined; ;) {
    const page = await store.list('data/', { after });
    keysFound.push(...page.objects.map((o) => o.key).filter((k) => /^data\/[0-9a-f/]+P?$/.test(k) && k !== EMPTY_KEY));
    if (!page.next) break;
    after = page.next;
  }
  return keysFound;
}

export const garbage = (key: string) => Buffer.from(`not the bytes of ${key}\n`);

/**
 * Writer A (lease on /a) creates the keys with garbage, with its own store access or through upload
 * grants: a pre-signed PUT where the store signs them, else a write the grant allows.
 */
export async function poison(store: ObjectStore, config: CommitConfig, keysDir: string, objectKeys: string[], via: 'direct' | 'grant'): Promise<void> {
  if (via === 'direct') {
    for (const k of objectKeys) await store.put(k, garbage(k), { ifNoneMatch: '*' });
    return;
  }
  const a = await loadPublisherKey(keysDir, 'a');
  const answer = await handleLeaseEvent({ action: 'acquire', request: signLeaseRequest(a, { fqrn: config.fqrn, path: '/a', ttlSeconds: 120 }) },
    { store, fqrn: config.fqrn, masterPublicKeyPem: config.keys.masterPublicKeyPem }, new Date());
  assert.ok(answer.status === 'ok' && 'lease' in answer);
  const l = answer.lease;
  const granted = await handleUploadGrant({ leaseId: l.leaseId, token: l.token, path: '/a', keys: objectKeys }, store);
  assert.deepEqual(granted.upload.map((g) => g.key).sort(), [...objectKeys].sort());
  for (const g of granted.upload) {
    if (g.url === undefined) {
      // A directory store signs no URLs: the grant tells A to write the key itself.
      await store.put(g.key, garbage(g.key), { ifNoneMatch: '*' });
    } else {
      const res = await fetch(g.url, { method: 'PUT', body: garbage(g.key), headers: g.headers });
      assert.equal(res.status, 200, await res.text());
    }
  }
  await handleLeaseEvent({ action: 'release', leaseId: l.leaseId, token: l.token },
    { store, fqrn: config.fqrn, masterPublicKeyPem: config.keys.masterPublicKeyPem }, new Date());
}

export async function badObjectReports(store: ObjectStore): Promise<{ key: string; uploader: string; paths: string[]; action: string }[]> {
  const page = await store.list('.scvmfs/bad-objects/');
  return Promise.all(page.objects.map(async (o) => JSON.parse((await store.get(o.key))!.body.toString('utf8'))));
}

