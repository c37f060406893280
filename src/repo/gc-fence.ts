// The fence between garbage collection and publishing (docs/gc.md, "Concurrent with publishing").
//
// GC deletes only while its fence record says `deleting`, and only after it has waited `wait` since
// writing that record; every commit reads the record just before its manifest write, which lands within
// `wait` of that read (a commit step's time limit bounds it). Then any commit that swaps after gc read
// the head for its last mark saw the fence, and one of two things holds for it: its transaction is in
// the fence's `protectedTxns` (gc marked the objects of its changeset and work catalogs before deleting),
// or it waits until the deletions end and checks its objects again. A commit never builds on an object
// check made while deletions it was not protected from could still run.
import { BusyError } from '../errors.js';
import { PreconditionFailedError, type ObjectStore } from '../store/object-store.js';

export const FENCE_KEY = '.scvmfs/gc/fence.json';

/** Allowance for clocks that disagree between the gc's sandbox and a writer's. */
export const CLOCK_SKEW_MS = 30_000;

export interface FenceRecord {
  /** Raised each time a gc starts deleting. */
  epoch: number;
  phase: 'idle' | 'deleting';
  /** While deleting: when the record was written (ms since the epoch). */
  since?: number;
  /** While deleting: the gc issues no delete after this time (ms); a record past it counts as idle. */
  deadline?: number;
  /** Transactions whose objects the gc marked before deleting; null until it has read them. */
  protectedTxns?: string[] | null;
  /** The gc run holding the fence. */
  gcId?: string;
}

export interface FenceView extends FenceRecord {
  /** ETag of the record, null when none exists (a repository never collected). */
  etag: string | null;
}

export async function readFence(store: ObjectStore): Promise<FenceView> {
  const got = await store.get(FENCE_KEY);
  if (!got) return { epoch: 0, phase: 'idle', etag: null };
  const r = JSON.parse(got.body.toString('utf8')) as FenceRecord;
  return { ...r, etag: got.etag };
}

/** Whether a fence says deletions may be running at `now`. */
export function deleting(f: FenceRecord, now: number): boolean {
  return f.phase === 'deleting' && now <= (f.deadline ?? 0) + CLOCK_SKEW_MS;
}

/**
 * Whether object checks made under fence `checkedUnder` still hold with the fence `current`, read just
 * before the manifest write: 'yes'; 'wait' while deletions the transaction is not protected from run;
 * 'recheck' when deletions may have run since the check (check the objects again under `current`).
 */
export function checksHold(checkedUnder: FenceRecord, current: FenceRecord, txnId: string | undefined, now: number): 'yes' | 'wait' | 'recheck' {
  if (deleting(current, now)) {
    if (txnId !== undefined && current.protectedTxns?.includes(txnId)) return 'yes';
    return 'wait';
  }
  if (checkedUnder.epoch !== current.epoch) return 'recheck';
  // Checked while a deletion of this epoch could run, and not protected: the deletions may have passed it.
  if (checkedUnder.phase === 'deleting' && !(txnId !== undefined && checkedUnder.protectedTxns?.includes(txnId))) {
    return 'recheck';
  }
  return 'yes';
}

async function writeFence(store: ObjectStore, record: FenceRecord, etag: string | null): Promise<FenceView> {
  try {
    const put = await store.put(FENCE_KEY, Buffer.from(JSON.stringify(record)), etag === null ? { ifNoneMatch: '*' } : { ifMatch: etag });
    return { ...record, etag: put.etag };
  } catch (err) {
    if (err instanceof PreconditionFailedError) throw new BusyError('gc-fence-moved', 'another garbage collection moved the gc fence; only one gc runs at a time');
    throw err;
  }
}

/** Starts a deleting epoch; refuses while another gc's deletions may run. */
export async function beginDeleting(store: ObjectStore, gcId: string, now: number, deadline: number): Promise<FenceView> {
  const f = await readFence(store);
  if (deleting(f, now) && f.gcId !== gcId) {
    throw new BusyError('gc-running', `garbage collection ${f.gcId} is deleting until ${new Date(f.deadline ?? 0).toISOString()}; one gc runs at a time`);
  }
  return writeFence(store, { epoch: f.epoch + 1, phase: 'deleting', since: now, deadline, protectedTxns: null, gcId }, f.etag);
}

/** Records the transactions gc marked; only the holder of `view` may. */
export async function protectTransactions(store: ObjectStore, view: FenceView, txns: string[]): Promise<FenceView> {
  const { etag, ...record } = view;
  return writeFence(store, { ...record, protectedTxns: txns }, etag);
}

/** Ends the deleting epoch (idempotent for its holder). */
export async function endDeleting(store: ObjectStore, gcId: string): Promise<void> {
  const f = await readFence(store);
  if (f.phase !== 'deleting' || f.gcId !== gcId) return;
  await writeFence(store, { epoch: f.epoch, phase: 'idle', gcId }, f.etag);
}

/**
 * For a writer about to swap the manifest: resolves 'yes' or 'recheck' once the fence allows, waiting
 * (polling every `pollMs`) while deletions it is not protected from run, at most until `giveUpAt`; then
 * a BusyError says a gc holds the fence (the chain's next step tries again).
 */
export async function awaitFence(store: ObjectStore, checkedUnder: FenceRecord, txnId: string | undefined,
  o: { now?: () => number; giveUpAt: number; pollMs?: number }): Promise<{ verdict: 'yes' | 'recheck'; fence: FenceView }> {
  const now = o.now ?? Date.now;
  for (;;) {
    const current = await readFence(store);
    const verdict = checksHold(checkedUnder, current, txnId, now());
    if (verdict !== 'wait') return { verdict, fence: current };
    if (now() >= o.giveUpAt) {
      throw new BusyError('gc-deleting', `garbage collection ${current.gcId} is deleting objects until ${new Date(current.deadline ?? 0).toISOString()}; the publish goes on after it`);
    }
    await new Promise((r) => setTimeout(r, Math.min(o.pollMs ?? 1000, Math.max(1, o.giveUpAt - now()))));
  }
}
