// Repositories with publishers, and writers killed mid-commit, for the lease and cleanup tests.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { handleCommitEvent, type CommitConfig, type CommitEvent } from '../src/functions/commit.js';
import { handleLeaseEvent } from '../src/functions/lease.js';
import { signLeaseRequest, type LeaseRecord } from '../src/format/lease.js';
import { RepositoryReader } from '../src/client/reader.js';
import { transactionStatus } from '../src/repo/transactions.js';
import { invoker } from './chain-invoker.js';

export const FQRN = 'binding.example.org';

export type Repo = Awaited<ReturnType<typeof setupRepo>>;

/** A repository in a directory store, its keys in a directory, each writer a publisher of its paths. */
export async function setupRepo(name: string, writers: Record<string, string[]>, fqrn = FQRN) {
  const work = tempDir(name);
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(fqrn);
  await writeKeys(keysDir, fqrn, keys);
  await initRepository(store, { fqrn, keys });
  for (const [w, paths] of Object.entries(writers)) await addPublisher(store, { keysDir, fqrn, name: w, paths });
  const config: CommitConfig = {
    store, fqrn, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const open = () => RepositoryReader.open(store, { fqrn, publicKeys: [keys.masterPublicKeyPem] });
  const acquire = async (writer: string, path: string): Promise<LeaseRecord> => {
    const publisher = await loadPublisherKey(keysDir, writer);
    const r = await handleLeaseEvent({ action: 'acquire', request: signLeaseRequest(publisher, { fqrn, path, ttlSeconds: 600 }) },
      { store, fqrn, masterPublicKeyPem: keys.masterPublicKeyPem }, new Date());
    assert.equal(r.status, 'ok');
    return (r as { lease: LeaseRecord }).lease;
  };
  return { work, store, keysDir, keys, config, open, acquire, fqrn };
}

export function makeTree(root: string, label: string, files: number): string {
  mkdirSync(join(root, 'lib'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'lib', `f${i}`), `${label} file ${i}\n`);
  writeFileSync(join(root, 'README'), `${label}\n`);
  return root;
}

export const stateOf = async (store: FsStore, txnId: string) => (await transactionStatus(store, txnId)).status;

/**
 * A writer killed after the first commit slice: its transaction stays 'applying' and its lease held
 * (the writer never gets to call abort). Returns the commit event it left behind.
 */
export async function killedWriter(s: Repo, writer: string, path: string, label: string): Promise<CommitEvent> {
  const publisher = await loadPublisherKey(s.keysDir, writer);
  const base = invoker({ ...s.config, maxOpsPerSlice: 1 });
  let left: CommitEvent | undefined;
  const dying = {
    invoke: async (fn: string, event: unknown) => {
      if (fn === 'abort') throw new Error('the writer is dead');
      return base.invoke(fn, event);
    },
    runChain: async (_fn: string, event: unknown) => {
      left = event as CommitEvent;
      const ctx = { awsRequestId: 'x', functionName: 'commit', memoryLimitInMB: 128, getRemainingTimeInMillis: () => 60_000 };
      const step = await handleCommitEvent(left, { ...s.config, maxOpsPerSlice: 1 }, ctx);
      assert.ok(step.next, 'the first slice hands over to a next step');
      throw new Error('killed after the first slice');
    },
  };
  await assert.rejects(publishThroughChain(s.store, makeTree(join(s.work, label), label, 4), { fqrn: FQRN, publisher, path, functions: dying }), /killed/);
  assert.equal(await stateOf(s.store, left!.txnId), 'applying');
  return left!;
}

