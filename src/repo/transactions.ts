// Transactions in the control area (`.scvmfs/txn/<id>/`): what a writer uploaded (changeset header and
// parts) and the commit chain's checkpoint `state.json`. Here they are listed, and aborted.
//
// Abort against commit is decided by one compare-and-swap on the checkpoint. The commit writes status
// 'swapping' (with CAS) just before it swaps the manifest; an abort writes 'aborted' (with CAS). Whichever
// lands first wins, and the loser sees it: a commit whose checkpoint write fails re-reads, finds
// 'aborted' and stops without swapping; an abort that finds 'swapping' does not touch the checkpoint,
// because the swap may be landing right now. Only the owner's abort overrules a 'swapping' checkpoint,
// and only once that swap can no longer land: the head moved past it (the manifest CAS it relies on must
// fail), or its writer is dead (lease gone and the checkpoint untouched for longer than any step may run).
import { publicKeyPemOf } from '../format/keys.js';
import { ContentHash } from '../format/hash.js';
import { MAX_LEASE_SECONDS, type LeaseInfo } from '../format/lease.js';
import { TXN_PREFIX, txnKeys } from '../format/changeset.js';
import { parseWhitelist, verifyWhitelistSignature } from '../format/whitelist.js';
import { BusyError, RefusedError } from '../errors.js';
import { PreconditionFailedError, type ObjectStore } from '../store/object-store.js';
import { loadKeys } from './keys-dir.js';
import { leaseIsLive, listLeases, ownerReleaseLease } from './leases.js';
import { fetchCatalog } from './objects.js';
import { checkSigningKeys, readHead, RepositoryMissingError, WHITELIST_KEY, type Head } from './repository.js';

export type TxnStatus = 'uploading' | 'applying' | 'swapping' | 'committed' | 'aborted';

/** The checkpoint fields this module reads; the commit function owns the rest and they are kept as they are. */
interface Checkpoint {
  txnId: string;
  status: Exclude<TxnStatus, 'uploading'>;
  baseRevision: number;
  pending: { revision: number; root: string } | null;
  revision: number | null;
  [field: string]: unknown;
}

export interface TransactionInfo {
  txnId: string;
  /** 'uploading': the writer has put parts or the header, the commit chain has not checkpointed yet. */
  status: TxnStatus;
  publisher?: string;
  leaseId?: string;
  path?: string;
  revision?: number;
  /** Newest write of any of its objects. */
  updatedAt: Date;
}

/** The longest a function step may run (Lambda's limit): a step older than this is no longer running. */
export const MAX_STEP_MS = 15 * 60_000;

export type AbortOutcome =
  | { status: 'aborted'; already: boolean }
  | { status: 'committed'; revision?: number };

export class TransactionSwappingError extends BusyError {
  constructor(txnId: string, revision: number) {
    super('txn-swapping', `transaction ${txnId} is swapping the manifest to revision ${revision} right now, so it cannot be ` +
      'aborted: it will end committed, or go back to applying if it loses the race. Ask again in a moment.', { txnId, revision });
    this.name = 'TransactionSwappingError';
  }
}

function parseCheckpoint(bytes: Uint8Array, key: string): Checkpoint {
  try {
    const s = JSON.parse(Buffer.from(bytes).toString('utf8')) as Checkpoint;
    if (typeof s?.status === 'string') return s;
  } catch { /* reported below */ }
  throw new RefusedError('bad-checkpoint', `${key} is not a commit checkpoint`);
}

/** The header's unverified body (the control area is private; the commit verifies the signature). */
function headerFields(bytes: Uint8Array): { publisher?: string; leaseId?: string; path?: string } {
  try {
    const body = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { body?: Record<string, unknown> }).body ?? {};
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return { publisher: str(body.publisher), leaseId: str(body.leaseId), path: str(body.path) === '' ? '/' : str(body.path) };
  } catch {
    return {};
  }
}

/** The header's lease and publisher, or undefined when the writer has not uploaded its header. */
export async function transactionHeader(store: ObjectStore, txnId: string): Promise<{ publisher?: string; leaseId?: string; path?: string } | undefined> {
  const got = await store.get(txnKeys(txnId).header);
  return got ? headerFields(got.body) : undefined;
}

/** The checkpoint's status and revision; 'uploading' when the commit chain has not written one. */
export async function transactionStatus(store: ObjectStore, txnId: string): Promise<{ status: TxnStatus; revision?: number }> {
  const key = txnKeys(txnId).state;
  const got = await store.get(key);
  if (!got) return { status: 'uploading' };
  const s = parseCheckpoint(got.body, key);
  return s.revision === null || s.revision === undefined ? { status: s.status } : { status: s.status, revision: s.revision };
}

/** Every transaction in the store, with its status, oldest id first. */
export async function listTransactions(store: ObjectStore): Promise<TransactionInfo[]> {
  const byId = new Map<string, { updatedAt: Date; hasState: boolean; hasHeader: boolean }>();
  let after: string | undefined;
  do {
    const page = await store.list(TXN_PREFIX, { after });
    for (const o of page.objects) {
      const rest = o.key.slice(TXN_PREFIX.length);
      const slash = rest.indexOf('/');
      if (slash <= 0) continue;
      const id = rest.slice(0, slash);
      const name = rest.slice(slash + 1);
      const t = byId.get(id) ?? { updatedAt: o.lastModified, hasState: false, hasHeader: false };
      if (o.lastModified > t.updatedAt) t.updatedAt = o.lastModified;
      if (name === 'state.json') t.hasState = true;
      if (name === 'changeset.json') t.hasHeader = true;
      byId.set(id, t);
    }
    after = page.next;
  } while (after);
  const out: TransactionInfo[] = [];
  for (const [txnId, t] of [...byId].sort(([a], [b]) => (a < b ? -1 : 1))) {
    let keys: ReturnType<typeof txnKeys>;
    try {
      keys = txnKeys(txnId);
    } catch {
      continue; // not a transaction directory this tool wrote
    }
    const info: TransactionInfo = { txnId, status: 'uploading', updatedAt: t.updatedAt };
    if (t.hasHeader) Object.assign(info, await transactionHeader(store, txnId));
    if (t.hasState) {
      const got = await store.get(keys.state);
      if (got) {
        const s = parseCheckpoint(got.body, keys.state);
        info.status = s.status;
        if (s.revision !== null && s.revision !== undefined) info.revision = s.revision;
      }
    }
    out.push(info);
  }
  return out;
}

/**
 * Unfinished transactions nobody can still be working on: their lease is gone or has expired (a commit
 * step checks the lease before it starts). One without a header names no lease; it is stale when none of
 * its objects was written for as long as the longest lease lasts unrenewed.
 */
export async function staleTransactions(store: ObjectStore, now: Date): Promise<TransactionInfo[]> {
  const stale: TransactionInfo[] = [];
  for (const t of await listTransactions(store)) {
    if (t.status === 'committed' || t.status === 'aborted') continue;
    if (t.leaseId !== undefined ? !(await leaseIsLive(store, t.leaseId, now)) : now.getTime() - t.updatedAt.getTime() > MAX_LEASE_SECONDS * 1000) {
      stale.push(t);
    }
  }
  return stale;
}

/** Whether the head's history holds `pending.root` as revision `pending.revision`. */
export async function swapLanded(store: ObjectStore, head: Head, pending: { revision: number; root: string }): Promise<boolean> {
  if (head.manifest.revision < pending.revision) return false;
  let hash: ContentHash | undefined = head.manifest.rootCatalog;
  for (let rev = head.manifest.revision; hash && rev >= pending.revision; rev--) {
    if (rev === pending.revision) return hash.toHex() === pending.root;
    const { db } = await fetchCatalog(store, hash);
    const prev = db.property('previous_revision');
    db.close();
    hash = prev ? ContentHash.fromHex(prev) : undefined;
  }
  return false;
}

type SwapFate = 'landed' | 'cannot-land' | 'may-land';

async function swapFate(store: ObjectStore, state: Checkpoint, checkpointAt: Date, now: Date, graceMs: number): Promise<SwapFate> {
  const head = await readHead(store);
  if (!head) throw new RepositoryMissingError(store);
  if (!state.pending) return 'cannot-land';
  if (await swapLanded(store, head, state.pending)) return 'landed';
  // The swap is a CAS on the head it was based on: once the head has moved past, it must fail.
  if (head.manifest.revision >= state.pending.revision) return 'cannot-land';
  const header = await transactionHeader(store, state.txnId);
  const leaseLive = header?.leaseId !== undefined && await leaseIsLive(store, header.leaseId, now);
  return !leaseLive && now.getTime() - checkpointAt.getTime() > graceMs ? 'cannot-land' : 'may-land';
}

export interface AbortOptions {
  now?: Date;
  /** How long a 'swapping' checkpoint must lie untouched (its lease gone) before it counts as dead. */
  swapGraceMs?: number;
  /**
   * The owner's abort: a 'swapping' checkpoint is settled (this reads the head and its catalogs, which the
   * abort function may not): aborted once its swap cannot land, recorded 'committed' if it landed.
   * Without it, any 'swapping' checkpoint is left alone.
   */
  owner?: boolean;
}

/**
 * Ends transaction `txnId` unless it has committed: the checkpoint becomes 'aborted' by compare-and-swap
 * and the uploaded header and parts are deleted (the checkpoint stays, as the record that it is dead).
 * Idempotent. Throws TransactionSwappingError while its manifest swap may still land (without `owner`:
 * whenever it is swapping).
 */
export async function abortTransaction(store: ObjectStore, txnId: string, options: AbortOptions = {}): Promise<AbortOutcome> {
  const keys = txnKeys(txnId);
  const now = options.now ?? new Date();
  for (let attempt = 0; ; attempt++) {
    const got = await store.get(keys.state);
    const state = got ? parseCheckpoint(got.body, keys.state) : null;
    if (state?.status === 'committed') return { status: 'committed', revision: state.revision ?? undefined };
    if (state?.status === 'aborted') return { status: 'aborted', already: true };
    if (state?.status === 'swapping') {
      const fate = options.owner ? await swapFate(store, state, got!.lastModified, now, options.swapGraceMs ?? MAX_STEP_MS) : 'may-land';
      if (fate === 'may-land') throw new TransactionSwappingError(txnId, state.pending?.revision ?? state.baseRevision + 1);
      if (fate === 'landed') {
        const done = { ...state, status: 'committed', revision: state.pending!.revision, pending: null };
        try {
          await store.put(keys.state, Buffer.from(JSON.stringify(done)), { ifMatch: got!.etag });
          return { status: 'committed', revision: done.revision };
        } catch (err) {
          if (err instanceof PreconditionFailedError && attempt < 10) continue;
          throw err;
        }
      }
    }
    const aborted: Checkpoint = state
      ? { ...state, status: 'aborted', pending: null, revision: null }
      : { txnId, status: 'aborted', baseRevision: 0, part: 0, op: 0, workRoot: null, baseSubtree: null, pending: null, revision: null, slices: 0, rebases: 0 };
    try {
      await store.put(keys.state, Buffer.from(JSON.stringify(aborted)), got ? { ifMatch: got.etag } : { ifNoneMatch: '*' });
      break;
    } catch (err) {
      // The commit advanced the checkpoint in between: decide again on what it wrote.
      if (err instanceof PreconditionFailedError && attempt < 10) continue;
      throw err;
    }
  }
  let after: string | undefined;
  do {
    const page = await store.list(keys.prefix, { after });
    await store.delete(page.objects.map((o) => o.key).filter((k) => k !== keys.state));
    after = page.next;
  } while (after);
  return { status: 'aborted', already: false };
}

/**
 * Refuses unless `keysDir` holds a key this repository trusts: its repository key and certificate (the
 * whitelist lists it) or its master key (it signed the whitelist). Owner commands use this.
 */
export async function requireOwner(store: ObjectStore, fqrn: string, keysDir: string): Promise<void> {
  const head = await readHead(store);
  if (!head) throw new RepositoryMissingError(store);
  if (head.manifest.fqrn !== fqrn) throw new RefusedError('wrong-repository', `the repository in ${store.description} is '${head.manifest.fqrn}', not '${fqrn}'`);
  const keys = await loadKeys(keysDir, fqrn, { need: [] });
  const reasons: string[] = [];
  if (keys.repositoryKeyPem !== undefined && keys.certificatePem !== undefined) {
    try {
      await checkSigningKeys(store, head, { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem });
      return;
    } catch (e) {
      reasons.push((e as Error).message);
    }
  }
  if (keys.masterKeyPem !== undefined) {
    const whitelist = await store.get(WHITELIST_KEY);
    if (whitelist && verifyWhitelistSignature(parseWhitelist(whitelist.body), [publicKeyPemOf(keys.masterKeyPem)])) return;
    reasons.push(`the master key in ${keysDir} did not sign this repository's whitelist`);
  }
  throw new RefusedError('not-owner', `${reasons.length > 0 ? reasons.join('; ') : `no repository or master key for ${fqrn} in ${keysDir}`}; ` +
    `owner commands need the repository key (${fqrn}.key and ${fqrn}.crt) or the master key (${fqrn}.masterkey) of ${fqrn} in --keys`);
}

export interface OwnerAbortResult {
  txnId: string;
  outcome: AbortOutcome | { status: 'busy'; message: string };
  publisher?: string;
  path?: string;
  /** The transaction's lease, dropped with it. */
  leaseReleased?: string;
}

/**
 * The owner aborts a transaction without its lease's token (its writer was killed): as the writer's abort,
 * then drops the lease the changeset names. A 'swapping' checkpoint whose swap landed is recorded committed.
 */
export async function ownerAbortTransaction(store: ObjectStore, txnId: string, options: AbortOptions = {}): Promise<OwnerAbortResult> {
  const header = await transactionHeader(store, txnId);
  const result: OwnerAbortResult = { txnId, outcome: { status: 'aborted', already: true }, publisher: header?.publisher, path: header?.path };
  try {
    result.outcome = await abortTransaction(store, txnId, { ...options, owner: true });
  } catch (err) {
    if (!(err instanceof TransactionSwappingError)) throw err;
    result.outcome = { status: 'busy', message: err.message };
    return result;
  }
  if (result.outcome.status === 'aborted' && header?.leaseId) {
    const dropped = await ownerReleaseLease(store, header.leaseId, options.now ?? new Date());
    if (dropped) result.leaseReleased = dropped.leaseId;
  }
  return result;
}

/** Aborts every stale transaction (see staleTransactions); one still swapping is reported busy and left. */
export async function abortStaleTransactions(store: ObjectStore, options: AbortOptions = {}): Promise<OwnerAbortResult[]> {
  const results: OwnerAbortResult[] = [];
  for (const t of await staleTransactions(store, options.now ?? new Date())) results.push(await ownerAbortTransaction(store, t.txnId, options));
  return results;
}

export interface LeaseOverview {
  /** Leases in the table (live, or expired and not yet pruned), each with its transactions. */
  leases: { lease: LeaseInfo; live: boolean; transactions: TransactionInfo[] }[];
  /** Unfinished transactions whose lease is gone: `abort --all-stale` material. */
  orphans: TransactionInfo[];
  /** Committed or aborted transactions whose lease is gone (their checkpoints stay as records). */
  finished: number;
}

/** What `lease list` shows: who holds which path until when, and the state of their transactions. */
export async function leaseOverview(store: ObjectStore, now: Date): Promise<LeaseOverview> {
  const leases = await listLeases(store, now, { includeExpired: true });
  const txns = await listTransactions(store);
  const ids = new Set(leases.map((l) => l.leaseId));
  const out: LeaseOverview = {
    leases: leases.map((lease) => ({ lease, live: lease.secondsRemaining > 0, transactions: txns.filter((t) => t.leaseId === lease.leaseId) })),
    orphans: [],
    finished: 0,
  };
  for (const t of txns) {
    if (t.leaseId !== undefined && ids.has(t.leaseId)) continue;
    if (t.status === 'committed' || t.status === 'aborted') out.finished++;
    else out.orphans.push(t);
  }
  return out;
}
