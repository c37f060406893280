// The abort function: a writer drops its own transaction that has not committed, and its lease.
// Only the holder of the transaction's lease may: the event's lease must be the one the changeset names,
// and its token must be that lease's. Idempotent: aborting twice, or a transaction that never wrote a
// checkpoint, is fine; a committed one cannot be aborted, and one whose manifest swap is under way
// answers busy (see repo/transactions.ts for how abort and commit settle on exactly one outcome).
import { RefusedError } from '../errors.js';
import { checkLeaseToken, LeaseError, releaseLease } from '../repo/leases.js';
import { abortTransaction, transactionHeader, transactionStatus } from '../repo/transactions.js';
import type { ObjectStore } from '../store/object-store.js';
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
  if (event === null || typeof event !== 'object' || typeof event.txnId !== 'string') {
    throw new LeaseError('bad-request', 'abort event needs txnId, leaseId and token');
  }
  let lease;
  try {
    lease = await checkLeaseToken(store, event.leaseId, event.token);
  } catch (err) {
    // A finished transaction's lease is gone (the commit released it): its outcome is no secret.
    const done = err instanceof LeaseError && err.code === 'not-found' ? await transactionStatus(store, event.txnId) : null;
    if (done?.status === 'committed') return { status: 'committed', revision: done.revision };
    if (done?.status === 'aborted') return { status: 'aborted' };
    throw err;
  }
  const header = await transactionHeader(store, event.txnId);
  if (header && (header.leaseId !== lease.leaseId || header.publisher !== lease.publisher)) {
    throw new RefusedError('wrong-lease', `transaction ${event.txnId} belongs to lease ${header.leaseId} of publisher ` +
      `'${header.publisher}', not to lease ${lease.leaseId} of '${lease.publisher}'; only its own writer (or the owner) may abort it`);
  }
  const outcome = await abortTransaction(store, event.txnId, { now });
  await releaseLease(store, event.leaseId, event.token, now).catch(() => false);
  return outcome.status === 'committed' ? { status: 'committed', revision: outcome.revision } : { status: 'aborted' };
}

export const handler: Handler<AbortEvent, AbortResult> = async (event) => {
  return { result: await handleAbortEvent(event, storeFromEnv('abort')) };
};
