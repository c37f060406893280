// The commit function: applies a writer's signed changeset to the current head in bounded slices and
// swaps the manifest. Every slice starts from a checkpoint in the control area and ends by writing the
// next one with compare-and-swap, so a step killed anywhere, or delivered twice, repeats harmlessly:
// catalogs are immutable content-addressed objects, and only the holder of the checkpoint's current ETag
// may advance it. A lost manifest race rebases: the operations are re-applied to the new head, which is
// mechanical because leases keep writers on disjoint paths.
import { readFile } from 'node:fs/promises';
import { RefusedError } from '../errors.js';
import {
  CHANGESET_PART_TYPE, CHANGESET_TYPE, chunksFromWire, entryFromWire, partDigest, txnKeys,
  type ChangeOp, type ChangesetHeader, type ChangesetPart,
} from '../format/changeset.js';
import { assertPartSize, assertValidPartOps } from '../format/changeset-validation.js';
import { ContentHash } from '../format/hash.js';
import { FLAG, newDirectoryEntry } from '../format/catalog-entry.js';
import { normalizeRepoPath, parentPath } from '../format/md5path.js';
import { authorize, findPublisher, scopePath } from '../format/publisher-policy.js';
import { openSignedDocument } from '../format/signed-document.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import {
  balanceCatalogs, DEFAULT_MAX_WEIGHT, DEFAULT_MIN_WEIGHT, makeAutomaticCatalog,
} from '../repo/catalog-balancer.js';
import { checkLease, releaseLease } from '../repo/leases.js';
import { swapLanded } from '../repo/transactions.js';
import { keyFilePaths, loadKeys } from '../repo/keys-dir.js';
import { requirePolicy } from '../repo/publisher-policy.js';
import {
  catalogLoader, ConcurrentPublishError, commitRevision, emptyObject, ensureAncestors, processOwner, putIfAbsent, type Head,
} from '../repo/repository.js';
import { assertSigningKeys, openTrustedHead } from '../repo/trusted-head.js';
import { PreconditionFailedError, type ObjectStore } from '../store/object-store.js';
import { requiredEnv, storeFromEnv } from './env.js';
import type { FunctionContext, Handler } from './types.js';
import { checkpoint } from './checkpoint.js';
import { awaitFence, readFence, type FenceRecord } from '../repo/gc-fence.js';
import { BusyError } from '../errors.js';
import { memoryInUse, readChainState, SliceBudget, SupersededError, writeChainState } from './chain.js';
import { checkWindow, CommitObjectCheck } from './commit-objects.js';

export interface CommitEvent {
  txnId: string;
  leaseId: string;
  token: string;
  /** The writer's wish for its path's catalog balancing; clamped to WRITER_WEIGHT_LIMITS (writerAutocatalogs). */
  autocatalogs?: { maxWeight: number; minWeight: number } | false;
}

export interface CommitResultBody {
  status: 'committed' | 'aborted' | 'superseded';
  revision?: number;
  rootCatalog?: string;
  slices?: number;
  rebases?: number;
  grafts?: number;
}

/** The checkpoint: where the chain stands. Written only with compare-and-swap. */
export interface CommitState {
  txnId: string;
  status: 'applying' | 'swapping' | 'committed' | 'aborted';
  /** Head revision the work is based on. */
  baseRevision: number;
  /** Next operation to apply. */
  part: number;
  op: number;
  /** Root catalog of the partly applied tree (an unpublished catalog object), null before the first slice. */
  workRoot: string | null;
  /**
   * The changeset path's own nested catalog in the base head, when it is one, or 'absent' when the path
   * did not exist: if a new head still has it so, nobody touched our subtree and the rebase is a graft.
   */
  baseSubtree: string | null;
  /** Set just before the manifest swap: the revision and root that swap publishes. */
  pending: { revision: number; root: string } | null;
  revision: number | null;
  slices: number;
  rebases: number;
  /** Rebases done by mounting our catalog in the new head instead of applying the operations again. */
  grafts?: number;
  /** The gc fence as it stood before this transaction's objects were checked (repo/gc-fence.ts). */
  fence?: FenceRecord;
  /** Set while the objects are checked again because a gc deleted objects since they were (no apply). */
  rechecking?: { part: number; op: number } | null;
}

export interface CommitConfig {
  store: ObjectStore;
  fqrn: string;
  keys: { repositoryKeyPem: string; certificatePem: string; masterPublicKeyPem: string };
  autocatalogs?: { maxWeight: number; minWeight: number } | false;
  /**
   * Make the changeset's path a nested catalog of its own (default on): writers' catalogs stay apart, and
   * a commit that loses the manifest race rebases by swapping one catalog reference.
   */
  writerCatalogs?: boolean;
  /** Operations per slice at most (besides the time budget); fixed counts make chains repeatable in tests. */
  maxOpsPerSlice?: number;
  now?: () => Date;
}

/** A header of 1 MiB lists about 15,000 parts of up to 8 MiB each: far beyond any one publish. */
const MAX_HEADER_BYTES = 1024 * 1024;
/** Fraction of the invocation's time an apply loop may use; the rest writes catalogs and the checkpoint. */
const APPLY_SHARE = 0.4;
const MAX_OPS_PER_SLICE = 20_000;
/** Fraction of the sandbox's memory a slice may reach before it checkpoints and hands over. */
const MEMORY_SHARE = 0.7;

/** The gc fence moved between the check before the swap and the swap. */
class FenceMoved extends Error {}

function fenceRecord(view: FenceRecord & { etag?: string | null }): FenceRecord {
  const { etag: _etag, ...record } = view;
  return record;
}

/** `baseSubtree` when the changeset's path did not exist in the base head. */
const ABSENT = 'absent';

const readState = (store: ObjectStore, key: string) => readChainState<CommitState>(store, key);
const writeState = (store: ObjectStore, key: string, state: CommitState, etag: string | null) => writeChainState(store, key, state, etag);

function freshState(txnId: string, head: Head, rebases: number, slices: number): CommitState {
  return {
    txnId, status: 'applying', baseRevision: head.manifest.revision,
    part: 0, op: 0, workRoot: null, baseSubtree: null, pending: null, revision: null, slices, rebases,
  };
}

async function loadHeader(store: ObjectStore, config: CommitConfig, txnId: string) {
  const keys = txnKeys(txnId);
  // The header is the writer's: its size is checked before it is read, as every part's is.
  const info = await store.head(keys.header);
  if (info && info.size > MAX_HEADER_BYTES) {
    throw new RefusedError('invalid-changeset-header', `the changeset header of transaction ${txnId} is ${info.size} bytes; at most ${MAX_HEADER_BYTES} are read`);
  }
  const got = info && await store.get(keys.header);
  if (!got) throw new Error(`transaction ${txnId} has no changeset (${keys.header})`);
  if (got.body.length > MAX_HEADER_BYTES) throw new RefusedError('invalid-changeset-header', `the changeset header of transaction ${txnId} grew past ${MAX_HEADER_BYTES} bytes while it was read`);
  const policy = await requirePolicy(store, config.fqrn, config.keys.masterPublicKeyPem);
  const { body, keyId } = openSignedDocument(got.body, CHANGESET_TYPE, (id) => findPublisher(policy, id)?.publicKeyPem);
  const header = body as ChangesetHeader;
  if (header.publisher !== keyId) throw new Error(`changeset names publisher '${header.publisher}' but is signed by '${keyId}'`);
  if (header.fqrn !== config.fqrn) throw new Error(`changeset is for ${header.fqrn}, this is ${config.fqrn}`);
  if (header.txnId !== txnId) throw new Error(`changeset belongs to transaction ${header.txnId}, not ${txnId}`);
  if (!Array.isArray(header.parts) || !header.parts.every((d) => typeof d === 'string' && /^[0-9a-f]{64}$/.test(d))) {
    throw new RefusedError('invalid-changeset-header', 'changeset header: parts must be a list of part digests');
  }
  const path = normalizeRepoPath(header.path);
  authorize(policy, keyId, scopePath(path || '/'));
  return { header, path, policy, keyId };
}

/** Reads part `index` and checks it whole: its stored size before reading, then every operation. */
async function loadPart(store: ObjectStore, txnId: string, index: number, header: ChangesetHeader, publicKeyPem: string, scope: string): Promise<ChangeOp[]> {
  const key = txnKeys(txnId).part(index);
  const info = await store.head(key);
  if (!info) throw new Error(`transaction ${txnId} lacks part ${index} (${key})`);
  assertPartSize(info.size, index);
  const got = await store.get(key);
  if (!got) throw new Error(`transaction ${txnId} lacks part ${index} (${key})`);
  assertPartSize(got.body.length, index);
  if (partDigest(got.body) !== header.parts[index]) throw new Error(`part ${index} of transaction ${txnId} does not match its digest in the changeset`);
  const { body } = openSignedDocument(got.body, CHANGESET_PART_TYPE, (id) => (id === header.publisher ? publicKeyPem : undefined));
  const part = body as ChangesetPart;
  if (part.txnId !== txnId || part.index !== index || part.fqrn !== header.fqrn) throw new Error(`part ${index} of transaction ${txnId} is malformed`);
  assertValidPartOps(part.ops, scope, index);
  return part.ops;
}

async function applyOp(tree: CatalogTree, op: ChangeOp): Promise<void> {
  switch (op.op) {
    case 'remove': return tree.remove(op.path);
    case 'nest': return tree.createNested(op.path);
    case 'unnest': return tree.removeNested(op.path);
    case 'upsert': {
      const entry = entryFromWire(op.entry);
      const chunks = chunksFromWire(op.chunks);
      const links = op.links ?? [];
      const group = links.length > 0 ? await tree.newHardlinkGroup(parentPath(op.path)) : 0;
      await tree.upsert(op.path, { ...entry, hardlinkGroup: group }, chunks);
      for (const l of links) await tree.upsert(l.path, { ...entry, name: l.name, hardlinkGroup: group }, chunks);
      return;
    }
    default: throw new Error(`unknown changeset operation ${JSON.stringify((op as { op?: unknown }).op)}`);
  }
}


export async function handleCommitEvent(event: CommitEvent, config: CommitConfig, context: FunctionContext):
  Promise<{ result?: CommitResultBody; next?: { fn: 'commit'; event: CommitEvent } }> {
  const store = config.store;
  const now = config.now ?? (() => new Date());
  const started = context.getRemainingTimeInMillis();
  const keys = txnKeys(event.txnId);
  // A finished transaction answers from its checkpoint (its parts may already be gone).
  let loaded = await readState(store, keys.state);
  // Nothing is signed on top of a head that fails the check against the configured master key.
  const head = await openTrustedHead(store, { fqrn: config.fqrn, masterPublicKeyPem: config.keys.masterPublicKeyPem }, { now: now() });
  assertSigningKeys(head, config.keys);
  if (loaded?.state.status === 'committed' || loaded?.state.status === 'aborted') {
    const s = loaded.state;
    // A step killed between the last checkpoint and the release leaves the lease to this delivery.
    await releaseLease(store, event.leaseId, event.token, now()).catch(() => false);
    return { result: { status: s.status as 'committed' | 'aborted', revision: s.revision ?? undefined, slices: s.slices, rebases: s.rebases, grafts: s.grafts ?? 0 } };
  }
  const { header, path, policy, keyId } = await loadHeader(store, config, event.txnId);
  const publisherKey = findPublisher(policy, keyId)!.publicKeyPem;
  // The lease must be the changeset signer's own: bob's changeset cannot ride on carol's lease.
  await checkLease(store, event.leaseId, event.token, scopePath(path || '/'), now(), keyId);
  if (event.leaseId !== header.leaseId) throw new Error(`commit event lease ${event.leaseId} is not the changeset's lease ${header.leaseId}`);

  try {
    await checkpoint('verified');
    if (!loaded) {
      const state = freshState(event.txnId, head, 0, 0);
      loaded = { state, etag: await writeState(store, keys.state, state, null) };
      await checkpoint('started');
    }
    let { state, etag } = loaded;

    if (state.status === 'swapping' && state.pending && await swapLanded(store, head, state.pending)) {
      return await finish(state, etag, state.pending.revision, state.pending.root);
    }
    if (head.manifest.revision !== state.baseRevision) {
      // Someone committed while we worked: carry our work onto their head (its own step).
      const source = state.status === 'swapping' && state.pending ? state.pending.root : state.workRoot;
      state = await rebase(store, state, head, path, source, Math.floor(now().getTime() / 1000));
      etag = await writeState(store, keys.state, state, etag);
      await checkpoint('rebased');
      return { next: { fn: 'commit', event } };
    }

    const algorithm = head.algorithm;
    const root = state.workRoot ? ContentHash.fromHex(state.workRoot) : head.manifest.rootCatalog;
    const tree = await CatalogTree.open(catalogLoader(store), root, algorithm);
    try {
      const seconds = Math.floor(now().getTime() / 1000);
      if (state.fence === undefined || (state.part === 0 && state.op === 0 && state.workRoot === null)) {
        // Read before the first object check: what a gc does after it decides whether the checks hold.
        state = { ...state, fence: fenceRecord(await readFence(store)) };
      }
      if (state.rechecking) return await recheck(tree, state, etag);
      if (state.part === 0 && state.op === 0 && state.workRoot === null) {
        const before = path === '' ? null : await tree.lookup(path);
        const mounted = await tree.nestedAt(path);
        const baseSubtree = path === '' ? null : mounted ? mounted.ref.hash.toHex() : before === null ? ABSENT : null;
        await ensureAncestors(tree, path, seconds);
        if (path !== '' && before === null && config.writerCatalogs !== false) {
          // A new writer path gets its own catalog at once, so even its first commit rebases by graft.
          const empty = emptyObject(algorithm);
          await putIfAbsent(store, empty);
          await tree.upsert(path, newDirectoryEntry(path.slice(path.lastIndexOf('/') + 1), seconds, processOwner()));
          await makeAutomaticCatalog(tree, path, { emptyHash: empty.hash, owner: processOwner(), now: seconds });
        }
        state = { ...state, baseSubtree };
      }
      const objects = new CommitObjectCheck(store, tree, { txnId: event.txnId, prefix: keys.prefix, publisher: header.publisher });
      let windows = 0;
      let applied = 0;
      let part = state.part;
      let op = state.op;
      let ops = part < header.parts.length ? await loadPart(store, event.txnId, part, header, publisherKey, path) : [];
      /** Operations of this part before this index have been checked. */
      let checked = op;
      const budget = started * APPLY_SHARE;
      while (part < header.parts.length) {
        if (op >= ops.length) {
          part++;
          op = 0;
          checked = 0;
          if (part < header.parts.length) ops = await loadPart(store, event.txnId, part, header, publisherKey, path);
          continue;
        }
        // Hand over before the sandbox's memory limit as well as before its time limit.
        if (applied > 0 && applied % 64 === 0 && memoryInUse() > context.memoryLimitInMB * 1024 * 1024 * MEMORY_SHARE) break;
        if (applied > 0 && (applied >= (config.maxOpsPerSlice ?? MAX_OPS_PER_SLICE) || started - context.getRemainingTimeInMillis() > budget)) break;
        // Check a window of operations at once: their objects are read concurrently. Windows start small
        // and grow, so a slice that runs out of time has not checked much it will not apply.
        if (op >= checked) {
          const n = checkWindow(ops, op, Math.min(8 * 2 ** Math.min(windows++, 8), (config.maxOpsPerSlice ?? MAX_OPS_PER_SLICE) - applied));
          await Promise.all(ops.slice(op, op + n).map((o) => objects.check(o)));
          await objects.settle();
          checked = op + n;
        }
        await applyOp(tree, ops[op]!);
        op++;
        applied++;
      }

      const done = part >= header.parts.length;
      /** Stores the tree as it stands and hands over to the next step, with `change` applied to the state. */
      const handOver = async (change: Partial<CommitState> = {}) => {
        let workRoot = state.workRoot;
        if (tree.changed || workRoot === null) {
          // An unchanged tree has nothing dirty: the root is written anyway, so there is a root to resume from.
          const c = await tree.commit(state.baseRevision + 1, seconds, { previousRoot: head.manifest.rootCatalog });
          for (const cat of c.catalogs) await putIfAbsent(store, cat.object);
          workRoot = c.rootHash.toHex();
        }
        await checkpoint('slice-catalogs-stored');
        state = { ...state, part, op, workRoot, slices: state.slices + 1, ...change };
        etag = await writeState(store, keys.state, state, etag);
        await checkpoint('slice-checkpointed');
        return { next: { fn: 'commit' as const, event } };
      };
      if (!done) return await handOver();

      // A gc may have deleted objects since they were checked: wait while it deletes, then check again.
      let fenceEtag: string | null;
      try {
        const f = await awaitFence(store, state.fence!, event.txnId, { now: () => now().getTime(), giveUpAt: now().getTime() + context.getRemainingTimeInMillis() * 0.3 });
        if (f.verdict === 'recheck') return await handOver({ fence: fenceRecord(f.fence), rechecking: { part: 0, op: 0 } });
        fenceEtag = f.fence.etag;
      } catch (err) {
        if (err instanceof BusyError && err.code === 'gc-deleting') return await handOver();
        throw err;
      }

      const empty = emptyObject(algorithm);
      let markersMade = false;
      if (path !== '' && config.writerCatalogs !== false && !(await tree.isMountpoint(path)) && (await tree.lookup(path)) !== null) {
        await makeAutomaticCatalog(tree, path, { emptyHash: empty.hash, owner: processOwner(), now: seconds });
        markersMade = true;
      }
      if (config.autocatalogs !== false) {
        const balanced = await balanceCatalogs(tree, {
          maxWeight: config.autocatalogs?.maxWeight ?? DEFAULT_MAX_WEIGHT,
          minWeight: config.autocatalogs?.minWeight ?? DEFAULT_MIN_WEIGHT,
          emptyHash: empty.hash, owner: processOwner(), now: seconds, within: path,
        });
        if (balanced.split.length > 0) markersMade = true;
      }
      // The markers are empty files: their object must be stored before the catalogs naming them.
      if (markersMade) await putIfAbsent(store, empty);
      let swapEtag = etag;
      const outcome = await commitRevision(store, head, tree, {
        keys: config.keys, now: now(), tag: header.tag, previousRoot: head.manifest.rootCatalog,
        beforeSwap: async (manifest) => {
          await checkpoint('objects-stored');
          // The last read of the fence before the manifest write (the gc waits out the time between them).
          if ((await readFence(store)).etag !== fenceEtag) throw new FenceMoved();
          const pending = { revision: manifest.revision, root: manifest.rootCatalog.toHex() };
          state = { ...state, part, op, status: 'swapping', pending, slices: state.slices + 1 };
          swapEtag = await writeState(store, keys.state, state, etag);
          await checkpoint('swap-pending');
        },
      }).catch(async (err) => {
        // The gc fence moved since it was checked: this step again, which reads it again.
        if (err instanceof FenceMoved) return null;
        // A reflog swap lost many times over means others are committing right now: try this step again.
        if (err instanceof PreconditionFailedError && !(err instanceof SupersededError)) return null;
        if (!(err instanceof ConcurrentPublishError)) throw err;
        // Many writers finishing together: a random pause spreads the next attempts out.
        await new Promise((r) => setTimeout(r, Math.random() * 50 * Math.min(state.rebases + 1, 8)));
        // The finished tree (its catalogs are stored) is what the next step carries onto the new head.
        state = { ...state, status: 'applying', workRoot: state.pending?.root ?? state.workRoot, pending: null };
        await writeState(store, keys.state, state, swapEtag);
        return null;
      });
      if (!outcome) return { next: { fn: 'commit', event } };
      await checkpoint('swapped');
      return await finish(state, swapEtag, outcome.manifest.revision, outcome.manifest.rootCatalog.toHex());
    } finally {
      tree.close();
    }
  } catch (err) {
    if (err instanceof SupersededError) {
      // An abort that won the checkpoint's compare-and-swap ends the transaction; this step stops unswapped.
      const settled = await readState(store, keys.state);
      return { result: { status: settled?.state.status === 'aborted' ? 'aborted' : 'superseded' } };
    }
    throw err;
  }

  /** Reads every object the changeset names again, in slices, without applying anything. */
  async function recheck(tree: CatalogTree, state: CommitState, etag: string): Promise<{ next: { fn: 'commit'; event: CommitEvent } }> {
    const budget = new SliceBudget(context, { time: APPLY_SHARE, memory: MEMORY_SHARE });
    const objects = new CommitObjectCheck(store, tree, { txnId: event.txnId, prefix: keys.prefix, publisher: header.publisher }, true);
    let { part, op } = state.rechecking!;
    while (part < header.parts.length) {
      const ops = await loadPart(store, event.txnId, part, header, publisherKey, path);
      while (op < ops.length) {
        if (budget.spent()) {
          await writeState(store, keys.state, { ...state, rechecking: { part, op } }, etag);
          return { next: { fn: 'commit', event } };
        }
        const n = checkWindow(ops, op);
        await Promise.all(ops.slice(op, op + n).map((o) => objects.check(o)));
        await objects.settle();
        op += n;
      }
      part++;
      op = 0;
    }
    await writeState(store, keys.state, { ...state, rechecking: null }, etag);
    await checkpoint('rechecked');
    return { next: { fn: 'commit', event } };
  }

  async function finish(state: CommitState, etag: string, revision: number, rootCatalog: string) {
    const final: CommitState = { ...state, status: 'committed', revision, pending: null };
    await writeState(store, keys.state, final, etag);
    await checkpoint('committed');
    await releaseLease(store, event.leaseId, event.token, now()).catch(() => false);
    return { result: { status: 'committed' as const, revision, rootCatalog, slices: final.slices, rebases: final.rebases, grafts: final.grafts ?? 0 } };
  }
}

/**
 * Moves the work onto a new head. When the head still mounts our path's catalog exactly as our base did,
 * nobody else touched the subtree (leases keep writers apart), so mounting our catalog there in the new
 * head carries every applied operation at once; otherwise the operations are applied again from the start.
 */
async function rebase(store: ObjectStore, state: CommitState, head: Head, path: string, source: string | null, seconds: number): Promise<CommitState> {
  if (path !== '' && source !== null && state.baseSubtree !== null) {
    const headTree = await CatalogTree.open(catalogLoader(store), head.manifest.rootCatalog, head.algorithm);
    const workTree = await CatalogTree.open(catalogLoader(store), ContentHash.fromHex(source), head.algorithm);
    try {
      const ours = await workTree.nestedAt(path);
      let graft = false;
      if (ours && state.baseSubtree === ABSENT) {
        // Our path was new and still is: make it in their head, then mount our catalog there.
        if ((await headTree.lookup(path)) === null) {
          await ensureAncestors(headTree, path, seconds);
          await headTree.upsert(path, { ...ours.row, extraFlags: ours.row.extraFlags & ~(FLAG.nestedMountpoint | FLAG.nestedRoot) });
          await headTree.createNested(path);
          graft = true;
        }
      } else if (ours) {
        const theirs = await headTree.nestedAt(path);
        graft = theirs !== null && theirs.ref.hash.toHex() === state.baseSubtree;
      }
      if (ours && graft) {
        await headTree.graftNested(path, ours);
        const c = await headTree.commit(head.manifest.revision + 1, seconds);
        for (const cat of c.catalogs) await putIfAbsent(store, cat.object);
        return {
          ...state, status: 'applying', pending: null, baseRevision: head.manifest.revision,
          workRoot: c.rootHash.toHex(), rebases: state.rebases + 1,
          slices: state.slices + 1, grafts: (state.grafts ?? 0) + 1,
        };
      }
    } finally {
      headTree.close();
      workTree.close();
    }
  }
  return { ...freshState(state.txnId, head, state.rebases + 1, state.slices), grafts: state.grafts };
}



/**
 * What a writer may ask of the balancing of its own path. Below 100 entries per catalog a client would
 * fetch a catalog for every few directories; above 10^7 a catalog outgrows the commit function's memory.
 */
export const WRITER_WEIGHT_LIMITS = { minMaxWeight: 100, maxMaxWeight: 10_000_000 } as const;

/**
 * The balancing a commit applies: the owner's (from the environment), unless the writer's event asks for
 * other weights or none. The writer is untrusted: its weights are whole numbers or refused, and clamped
 * to WRITER_WEIGHT_LIMITS (min below half of max); an owner who turned balancing off keeps it off.
 */
export function writerAutocatalogs(asked: unknown, owner: CommitConfig['autocatalogs']): CommitConfig['autocatalogs'] {
  if (asked === undefined || owner === false) return owner;
  if (asked === false) return false;
  const a = asked as { maxWeight?: unknown; minWeight?: unknown } | null;
  if (typeof a !== 'object' || a === null || !Number.isSafeInteger(a.maxWeight) || !Number.isSafeInteger(a.minWeight)) {
    throw new RefusedError('bad-autocatalogs', `the commit event's autocatalogs must be false or whole numbers { maxWeight, minWeight }, not ${JSON.stringify(asked)?.slice(0, 100)}`);
  }
  const maxWeight = Math.min(Math.max(a.maxWeight as number, WRITER_WEIGHT_LIMITS.minMaxWeight), WRITER_WEIGHT_LIMITS.maxMaxWeight);
  const minWeight = Math.min(Math.max(a.minWeight as number, 1), Math.floor(maxWeight / 2));
  return { maxWeight, minWeight };
}

/**
 * Reads SCVMFS_STORE, SCVMFS_FQRN and SCVMFS_KEYS on every call: a warm sandbox keeps no state. The
 * event's autocatalogs, if any, adjust the balancing (writerAutocatalogs).
 */
export async function commitConfigFromEnv(event?: Pick<CommitEvent, 'autocatalogs'>): Promise<CommitConfig> {
  const fqrn = requiredEnv('commit', 'SCVMFS_FQRN');
  const dir = requiredEnv('commit', 'SCVMFS_KEYS');
  const keys = await loadKeys(dir, fqrn, { need: ['repository'] });
  const masterPublicKeyPem = keys.masterPublicKeyPem ?? await readFile(keyFilePaths(dir, fqrn).masterPublicKeyPem, 'utf8');
  const max = Number(process.env.SCVMFS_MAX_WEIGHT ?? DEFAULT_MAX_WEIGHT);
  const min = Number(process.env.SCVMFS_MIN_WEIGHT ?? DEFAULT_MIN_WEIGHT);
  return {
    store: storeFromEnv('commit'), fqrn,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem },
    autocatalogs: writerAutocatalogs(event?.autocatalogs, process.env.SCVMFS_AUTOCATALOGS === 'off' ? false : { maxWeight: max, minWeight: min }),
    maxOpsPerSlice: process.env.SCVMFS_SLICE_OPS ? Number(process.env.SCVMFS_SLICE_OPS) : undefined,
  };
}

export const handler: Handler<CommitEvent, CommitResultBody> = async (event, context) =>
  handleCommitEvent(event, await commitConfigFromEnv(event), context);
