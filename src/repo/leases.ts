// The lease table in the control part of a store, changed only by compare-and-swap.
//
// Why one table object and not one object per lease: the overlap rule relates leases on *different*
// paths (/a against /a/b and /), and a conditional write guards only its own key. Two acquirers writing
// `lease-/a` and `lease-/a/b` would both succeed. With every lease in one object, each acquire reads the
// whole state, decides, and writes back with If-Match on what it read: of two racing acquires only one
// write lands, the other re-reads, sees the winner and is refused. Leases are few (one per active writer)
// and expired ones are pruned on every write, so the object stays small; the price is that concurrent
// lease operations on one repository serialise, which at publish rates is no price at all.
import {
  decideAcquire, decideOwnerRelease, decideRelease, decideRenew, emptyLeaseTable, findHeldLease, findLeaseByToken, isLive, LeaseError, leaseInfo, parseLeaseTable,
  pruneLeaseTable, serializeLeaseTable, type LeaseInfo, type LeaseRecord, type LeaseRequest, type LeaseTable,
} from '../format/lease.js';
import { CONTROL_PREFIX, PreconditionFailedError, type ObjectStore } from '../store/object-store.js';

export const LEASES_KEY = `${CONTROL_PREFIX}leases.json`;

const CAS_ATTEMPTS = 30;

interface Read {
  table: LeaseTable;
  etag: string | null;
}

async function readTable(store: ObjectStore): Promise<Read> {
  const got = await store.get(LEASES_KEY);
  if (!got) return { table: emptyLeaseTable(), etag: null };
  try {
    return { table: parseLeaseTable(got.body), etag: got.etag };
  } catch (e) {
    throw new Error(`${LEASES_KEY} in ${store.description}: ${(e as Error).message}`);
  }
}

/**
 * Runs `decide` on the current table and writes what it returns conditionally on the version it read,
 * retrying from a fresh read when another writer got in between. `decide` returns null for "no write".
 */
async function casUpdate<R>(store: ObjectStore, decide: (table: LeaseTable) => { table: LeaseTable | null; result: R }): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    const { table, etag } = await readTable(store);
    const { table: next, result } = decide(table);
    if (next === null) return result;
    try {
      await store.put(LEASES_KEY, serializeLeaseTable(next), etag === null ? { ifNoneMatch: '*' } : { ifMatch: etag });
      return result;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      if (attempt >= CAS_ATTEMPTS) throw new Error(`the lease table in ${store.description} kept changing under ${CAS_ATTEMPTS} attempts; try again`);
      // Jitter so that racers do not collide again in lockstep.
      await new Promise((r) => setTimeout(r, Math.random() * 10 * Math.min(attempt, 5)));
    }
  }
}

export type AcquireOutcome =
  | { status: 'ok'; lease: LeaseRecord; repeated: boolean; tookOver: LeaseInfo[] }
  | { status: 'busy'; message: string; holder: LeaseInfo };

/** Records a lease for an already verified and authorized request, or says who holds the path. */
export async function acquireLease(store: ObjectStore, request: LeaseRequest, now: Date): Promise<AcquireOutcome> {
  return casUpdate<AcquireOutcome>(store, (table) => {
    const d = decideAcquire(table, request, now);
    if (d.kind === 'repeated') return { table: null, result: { status: 'ok', lease: d.lease, repeated: true, tookOver: [] } };
    if (d.kind === 'busy') return { table: null, result: { status: 'busy', message: d.message, holder: leaseInfo(d.holder, now) } };
    return { table: d.table, result: { status: 'ok', lease: d.lease, repeated: false, tookOver: d.tookOver.map((l) => leaseInfo(l, now)) } };
  });
}

/** Extends a live lease to now + ttlSeconds (default: its original ttl). An expired lease cannot be renewed. */
export async function renewLease(store: ObjectStore, leaseId: string, token: string, now: Date, ttlSeconds?: number): Promise<LeaseRecord> {
  return casUpdate(store, (table) => {
    const { table: next, lease } = decideRenew(table, leaseId, token, ttlSeconds, now);
    return { table: next, result: lease };
  });
}

/** Ends a lease. Releasing one that is already gone returns false; a wrong token throws. */
export async function releaseLease(store: ObjectStore, leaseId: string, token: string, now: Date): Promise<boolean> {
  return casUpdate(store, (table) => {
    const next = decideRelease(table, leaseId, token, now);
    return { table: next, result: next !== null };
  });
}

/**
 * The owner ends a lease without its token (a writer that was killed, or must be stopped), by lease id or
 * by the exact path it holds. Returns the lease it dropped, or null when none matched.
 */
export async function ownerReleaseLease(store: ObjectStore, leaseIdOrPath: string, now: Date): Promise<LeaseInfo | null> {
  return casUpdate(store, (table) => {
    const d = decideOwnerRelease(table, leaseIdOrPath, now);
    return d ? { table: d.table, result: leaseInfo(d.lease, now) } : { table: null, result: null };
  });
}

/** Live leases, without their tokens; with `includeExpired`, also those expired but not yet pruned. */
export async function listLeases(store: ObjectStore, now: Date, options: { includeExpired?: boolean } = {}): Promise<LeaseInfo[]> {
  const { table } = await readTable(store);
  const leases = options.includeExpired ? table.leases : pruneLeaseTable(table, now).table.leases;
  return leases.map((l) => leaseInfo(l, now));
}

/**
 * For the commit function: the live lease `leaseId`, if `token` is its token, `path` lies within its
 * path and `publisher` (the changeset's signer) is its holder. Throws LeaseError with code 'not-found' |
 * 'wrong-token' | 'expired' | 'wrong-publisher' | 'path-outside'.
 */
export async function checkLease(store: ObjectStore, leaseId: string, token: string, path: string, now: Date, publisher?: string): Promise<LeaseRecord> {
  const { table } = await readTable(store);
  return findHeldLease(table, leaseId, token, path, now, publisher);
}

/** For abort: the lease `leaseId` if `token` is its token, even when it has run out (but not been pruned). */
export async function checkLeaseToken(store: ObjectStore, leaseId: string, token: string): Promise<LeaseRecord> {
  const { table } = await readTable(store);
  return findLeaseByToken(table, leaseId, token);
}

/** Whether lease `leaseId` exists and is live. */
export async function leaseIsLive(store: ObjectStore, leaseId: string, now: Date): Promise<boolean> {
  const { table } = await readTable(store);
  const lease = table.leases.find((l) => l.leaseId === leaseId);
  return lease !== undefined && isLive(lease, now);
}

export { LeaseError };
