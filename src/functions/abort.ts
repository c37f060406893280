// The abort function: drops a transaction that has not committed, and its lease. Idempotent: aborting
// twice, or a transaction that never wrote a checkpoint, is fine; a committed one cannot be aborted.
import { txnKeys } from '../format/changeset.js';
import { releaseLease } from '../repo/leases.js';
import { PreconditionFailedError, type ObjectStore } from '../store/object-store.js';
import type { CommitState } from './commit.js';
import { storeFromEnv } from './env.js';
import type { Handler } from './types.js';

export interface AbortEvent {
  txnId: string;
  leaseId: string;
  token: string;
}

export interface AbortResult {
  status: 'aborted' | 'committed';
  revision?: number;
}

export async function handleAbortEvent(event: AbortEvent, store: ObjectStore, now = new Date()): Promise<AbortResult> {
  const keys = txnKeys(event.txnId);
  for (let attempt = 0; ; attempt++) {
    const got = await store.get(keys.state);
    const state = got ? (JSON.parse(got.body.toString('utf8')) as CommitState) : null;
    if (state?.status === 'committed') return { status: 'committed', revision: state.revision ?? undefined };
    if (state?.status !== 'aborted') {
      const aborted: CommitState = {
        txnId: event.txnId, status: 'aborted', baseRevision: state?.baseRevision ?? 0,
        part: 0, op: 0, workRoot: null, baseSubtree: null, pending: null, revision: null, slices: state?.slices ?? 0, rebases: state?.rebases ?? 0,
      };
      try {
        // A checkpoint in 'swapping' may still land: the CAS makes that step lose, or us re-read.
        await store.put(keys.state, Buffer.from(JSON.stringify(aborted)), got ? { ifMatch: got.etag } : { ifNoneMatch: '*' });
      } catch (err) {
        if (err instanceof PreconditionFailedError && attempt < 5) continue;
        throw err;
      }
    }
    break;
  }
  // The parts are no longer needed; the checkpoint stays as the record that this transaction is dead.
  const listed = await store.list(keys.prefix);
  await store.delete(listed.objects.map((o) => o.key).filter((k) => k !== keys.state));
  await releaseLease(store, event.leaseId, event.token, now).catch(() => false);
  return { status: 'aborted' };
}

export const handler: Handler<AbortEvent, AbortResult> = async (event) => {
  return { result: await handleAbortEvent(event, storeFromEnv('abort')) };
};
