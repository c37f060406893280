// The gc function: garbage collection as a chain of bounded steps (docs/gc.md). Its phases, each resumed
// from the chain state after a kill or a second delivery:
//   plan     decide the revisions to keep; publish a revision whose history drops the automatic tags of
//            the dropped revisions and whose reflog drops their roots, with G=yes (not on a replica or a
//            dry run);
//   mark     walk every kept root (CatalogWalk, logged in segments) into the mark set;
//   fence    start a deleting epoch in the gc fence (repo/gc-fence.ts);
//   list     while the fence's wait runs: list data/ and keep, as candidate runs, the objects neither
//            marked nor younger than the grace period;
//   remark   after the wait: walk the revisions published meanwhile and every open transaction's
//            objects and work catalogs, and record those transactions in the fence;
//   sweep    delete the candidates still unmarked, 1,000 keys per request, until the fence's deadline;
//   clean    delete the control records of finished and expired transactions; end the fence.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { RefusedError } from '../errors.js';
import { TXN_PREFIX } from '../format/changeset.js';
import { ContentHash } from '../format/hash.js';
import { MAX_LEASE_SECONDS } from '../format/lease.js';
import { parseManifest } from '../format/manifest.js';
import { ConcurrentPublishError, MANIFEST_KEY, readHead } from '../repo/repository.js';
import { fetchCatalog } from '../repo/objects.js';
import { beginDeleting, endDeleting, protectTransactions, readFence } from '../repo/gc-fence.js';
import { listRevisions, planRetention, type RetentionPolicy } from '../repo/gc-plan.js';
import { keyFilePaths, loadKeys } from '../repo/keys-dir.js';
import { readTags } from '../repo/revisions.js';
import { commitTagRevision } from '../repo/tags.js';
import { openTrustedHead } from '../repo/trusted-head.js';
import { dropChainWalk, openChainWalk, saveWalkSegment } from '../repo/walk-log.js';
import { listAll, type ObjectStore } from '../store/object-store.js';
import { readChainState, SliceBudget, SupersededError, writeChainState } from './chain.js';
import { checkpoint } from './checkpoint.js';
import { requiredEnv, storeFromEnv } from './env.js';
import type { FunctionContext, Handler } from './types.js';

export const GC_PREFIX = '.scvmfs/gc/';
/** Objects younger than this are never collected unless marked otherwise: uploads of running publishes. */
export const DEFAULT_GRACE_MS = 2 * MAX_LEASE_SECONDS * 1000;
/** The fence's wait: longer than a commit step can take between its fence read and its manifest write. */
export const DEFAULT_FENCE_WAIT_MS = 6 * 60_000;
/** How long a deleting epoch may last after its wait; a gc past it starts a new epoch. */
export const DEFAULT_SWEEP_WINDOW_MS = 10 * 60_000;
const DELETE_BATCH = 1000;
const CANDIDATE_RUN = 10_000;
/** Object kinds gc removes; certificates, histories and meta-info are kept, as cvmfs keeps them. */
const SWEPT_SUFFIXES = new Set(['', 'P', 'C']);

export interface GcOptions extends RetentionPolicy {
  dryRun?: boolean;
  /** A replica: nothing is signed or published, and there are no writers to fence off. */
  replica?: boolean;
  graceMs?: number;
  fenceWaitMs?: number;
  sweepWindowMs?: number;
  /** Keys listed as "would be deleted" in a dry run's result, at most. */
  listLimit?: number;
}

export interface GcEvent {
  gcId: string;
  /** Needed by the first step only (the state keeps them). */
  options?: GcOptions;
}

export interface GcResult {
  gcId: string;
  status: 'done' | 'superseded';
  dryRun: boolean;
  headRevision: number;
  /** The revision gc published (null on a replica, in a dry run, or when nothing changed). */
  gcRevision: number | null;
  revisionsKept: number[];
  revisionsDropped: number[];
  tagsRemoved: string[];
  /** Keys in the mark set: every catalog, object and chunk a kept revision references (after the remark, also what open transactions name). */
  marked: number;
  candidates: number;
  deleted: { objects: number; bytes: number };
  /** In a dry run: keys that would go (up to listLimit). */
  wouldDelete?: string[];
  transactionsRemoved: number;
  listed: number;
}

type Phase = 'plan' | 'mark' | 'fence' | 'list' | 'remark' | 'sweep' | 'clean' | 'done';

interface GcState {
  gcId: string;
  phase: Phase;
  options: GcOptions;
  startedAt: number;
  headRevision: number;
  gcRevision: number | null;
  revisionsKept: number[];
  revisionsDropped: number[];
  tagsRemoved: string[];
  /** Walk log segments (walk-log.ts). */
  segments: string[];
  fenceSince: number | null;
  fenceDeadline: number | null;
  /** Listing: the last key listed, and the candidate runs written. */
  listAfter: string;
  listDone: boolean;
  listed: number;
  runs: string[];
  candidates: number;
  /** The newest head revision the mark covers. */
  markedUpTo: number;
  /** Keys in the mark set when the last mark phase ended. */
  marked: number;
  sweep: { run: number; offset: number };
  deleted: { objects: number; bytes: number };
  wouldDelete: string[];
  transactionsRemoved: number;
}

export interface GcConfig {
  store: ObjectStore;
  fqrn: string;
  /** Signing keys for the gc revision; not needed for a replica or a dry run. */
  keys?: { repositoryKeyPem: string; certificatePem: string; masterPublicKeyPem: string };
  masterPublicKeyPem?: string;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export const gcKeys = (gcId: string) => {
  if (!/^[A-Za-z0-9_-]{6,64}$/.test(gcId)) throw new RefusedError('bad-gc-id', `invalid gc id '${gcId}'`);
  const base = `${GC_PREFIX}${gcId}/`;
  return { base, state: `${base}state.json`, walk: `${base}walk/`, run: (n: number) => `${base}candidates-${String(n).padStart(6, '0')}.json` };
};

export function newGcId(): string {
  return `gc-${new Date().toISOString().slice(0, 10)}-${randomBytes(5).toString('hex')}`;
}

export async function handleGcEvent(event: GcEvent, config: GcConfig, context: FunctionContext): Promise<{ result?: GcResult; next?: { fn: 'gc'; event: GcEvent } }> {
  const store = config.store;
  const now = config.now ?? Date.now;
  const sleep = config.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const keys = gcKeys(event.gcId);
  const budget = new SliceBudget(context, { time: 0.5, memory: 0.6 });
  let loaded = await readChainState<GcState>(store, keys.state);
  if (!loaded) {
    if (!event.options) throw new RefusedError('unknown-gc', `no garbage collection ${event.gcId} is under way (its state ${keys.state} is missing)`);
    const state = freshState(event.gcId, event.options, now());
    loaded = { state, etag: await writeChainState(store, keys.state, state, null) };
    await checkpoint('gc-started');
  }
  let { state, etag } = loaded;
  const next = { next: { fn: 'gc' as const, event: { gcId: event.gcId } } };
  const save = async (s: GcState) => {
    state = s;
    etag = await writeChainState(store, keys.state, s, etag);
  };
  const o = state.options;
  const grace = o.graceMs ?? DEFAULT_GRACE_MS;
  const fenced = !o.dryRun && !o.replica;

  try {
    switch (state.phase) {
      case 'plan': {
        const head = await openHead(store, config);
        const revisions = await listRevisions(store, head.manifest);
        const tags = await readTags(store, head.manifest);
        const plan = planRetention(revisions, tags, o);
        let gcRevision: number | null = null;
        let roots = [...plan.kept, ...plan.tagged].map((r) => r.hash);
        if (!o.dryRun && !o.replica && (plan.dropped.length > 0 || plan.removedTags.length > 0 || !head.manifest.garbageCollectable)) {
          if (!config.keys) throw new RefusedError('no-keys', 'gc publishes a revision (history and reflog without the dropped revisions): it needs the repository keys');
          const removed = new Set(plan.removedTags.map((t) => t.name));
          const committed = await commitTagRevision(store, { fqrn: config.fqrn, keys: config.keys, now: new Date(now()) }, `gc ${event.gcId}`,
            async (h) => {
              if (h.manifest.revision !== head.manifest.revision) throw new SupersededError('the head moved while gc planned; planning again');
              return {
                root: h.manifest.rootCatalog, result: null, reflogRemove: plan.dropped.map((r) => r.hash), garbageCollectable: true,
                tags: (newHead) => [...plan.keptTags.filter((t) => !removed.has(t.name) && t.name !== 'trunk'), { ...newHead, name: 'trunk', description: 'current HEAD' }],
              };
            }).catch((err) => {
              // A writer committed meanwhile: plan again on its head (the next step).
              if (err instanceof ConcurrentPublishError) return null;
              throw err;
            });
          if (!committed) return next;
          gcRevision = committed.manifest.revision;
          roots = [committed.manifest.rootCatalog, ...roots];
          await checkpoint('gc-revision-published');
        }
        const walk = await openChainWalk(store, keys.walk, []);
        try {
          walk.addRoots(roots.map((hash) => ({ hash })));
          const seg = await saveWalkSegment(store, keys.walk, walk, []);
          await save({
            ...state, phase: 'mark', headRevision: head.manifest.revision, gcRevision,
            revisionsKept: [...plan.kept, ...plan.tagged].map((r) => r.revision), revisionsDropped: plan.dropped.map((r) => r.revision),
            tagsRemoved: plan.removedTags.map((t) => t.name), segments: seg ? [seg] : [], markedUpTo: gcRevision ?? head.manifest.revision,
          });
        } finally {
          walk.close();
        }
        await checkpoint('gc-planned');
        return next;
      }
      case 'mark':
      case 'remark': {
        const walk = await openChainWalk(store, keys.walk, state.segments);
        try {
          if (state.phase === 'remark' && state.fenceSince !== null && !(await fenceWaitOver(state, now, sleep, budget))) return next;
          let protectedTxns: string[] | null = null;
          let markedUpTo = state.markedUpTo;
          if (state.phase === 'remark' && walk.meta('remark-roots') !== String(state.fenceSince)) {
            // After the wait every commit that swaps has seen the fence: what is published by now, and
            // what open transactions name, is all that must be added.
            // Transactions first, then the head: a commit that lands between the two reads is in the head,
            // one that lands later was open when listed (a transaction stays open until after its swap).
            const open = await openTransactions(store);
            const { revision, roots } = await newerRoots(store, state.markedUpTo);
            walk.addRoots(roots.map((hash) => ({ hash })));
            markedUpTo = revision;
            for (const t of open) {
              walk.mark(t.objects);
              walk.addRoots(t.roots.map((hash) => ({ hash })));
            }
            protectedTxns = open.map((t) => t.txnId);
            walk.setMeta('remark-roots', String(state.fenceSince));
            walk.setMeta('protected', JSON.stringify(protectedTxns));
          }
          const progress = await walk.step((hash) => fetchCatalog(store, hash), {
            unreadable: (hash, mountpoint, error) => {
              throw new RefusedError('unreadable-catalog', `gc cannot read catalog ${hash.objectKey('C')} of '${mountpoint || '/'}' in a kept revision (${error.message}); nothing was deleted: run scvmfs check`);
            },
          }, () => budget.spent());
          const seg = await saveWalkSegment(store, keys.walk, walk, state.segments);
          const segments = seg ? [...state.segments, seg] : state.segments;
          if (!progress.done) {
            await save({ ...state, segments, markedUpTo });
            await checkpoint('gc-marking');
            return next;
          }
          if (state.phase === 'mark') {
            await save({ ...state, segments, marked: walk.markedCount, phase: o.dryRun || o.replica ? 'list' : 'fence' });
          } else {
            if (fenced) {
              const fence = await readFence(store);
              if (fence.gcId !== state.gcId || fence.phase !== 'deleting') throw new RefusedError('gc-fence-lost', `gc ${state.gcId} lost its fence; run gc again`);
              await protectTransactions(store, fence, JSON.parse(walk.meta('protected') ?? '[]') as string[]);
            }
            await save({ ...state, segments, markedUpTo, marked: walk.markedCount, phase: 'sweep' });
          }
          await checkpoint('gc-marked');
          return next;
        } finally {
          walk.close();
        }
      }
      case 'fence': {
        const since = now();
        const deadline = since + (o.fenceWaitMs ?? DEFAULT_FENCE_WAIT_MS) + (o.sweepWindowMs ?? DEFAULT_SWEEP_WINDOW_MS);
        await beginDeleting(store, state.gcId, since, deadline);
        await checkpoint('gc-fenced');
        await save({ ...state, phase: 'list', fenceSince: since, fenceDeadline: deadline });
        return next;
      }
      case 'list': {
        // Candidates: unmarked, swept kinds, older than the grace period before the fence (or now).
        const walk = await openChainWalk(store, keys.walk, state.segments);
        try {
          const olderThan = (state.fenceSince ?? now()) - grace;
          let s = { ...state };
          let batch: { key: string; size: number }[] = [];
          const flush = async () => {
            if (batch.length === 0) return;
            const n = s.runs.length;
            await store.put(keys.run(n), Buffer.from(JSON.stringify(batch)));
            s = { ...s, runs: [...s.runs, keys.run(n)], candidates: s.candidates + batch.length };
            if (o.dryRun && s.wouldDelete.length < (o.listLimit ?? 1000)) s.wouldDelete = [...s.wouldDelete, ...batch.map((b) => b.key)].slice(0, o.listLimit ?? 1000);
            batch = [];
          };
          while (!s.listDone) {
            const page = await store.list('data/', { after: s.listAfter || undefined, limit: 1000 });
            for (const obj of page.objects) {
              s.listed++;
              const suffix = /[CHXPM]$/.exec(obj.key)?.[0] ?? '';
              if (!SWEPT_SUFFIXES.has(suffix) || !/^data\/[0-9a-f]{2}\//.test(obj.key)) continue;
              if (obj.lastModified.getTime() > olderThan || walk.has(obj.key)) continue;
              batch.push({ key: obj.key, size: obj.size });
            }
            s.listAfter = page.objects.at(-1)?.key ?? s.listAfter;
            if (!page.next) s.listDone = true;
            if (batch.length >= CANDIDATE_RUN || s.listDone || budget.spent()) {
              await flush();
              await save(s);
              await checkpoint('gc-listed-page');
              if (!s.listDone && budget.spent()) return next;
            }
          }
          await save({ ...s, phase: o.dryRun || o.replica ? (o.dryRun ? 'done' : 'sweep') : 'remark' });
          await checkpoint('gc-listed');
          if (o.dryRun) return { result: resultOf(state) };
          return next;
        } finally {
          walk.close();
        }
      }
      case 'sweep': {
        const walk = await openChainWalk(store, keys.walk, state.segments);
        try {
          let { run, offset } = state.sweep;
          let deleted = { ...state.deleted };
          while (run < state.runs.length) {
            const got = await store.get(state.runs[run]!);
            const list = got ? JSON.parse(got.body.toString('utf8')) as { key: string; size: number }[] : [];
            while (offset < list.length) {
              if (budget.spent()) {
                await save({ ...state, sweep: { run, offset }, deleted });
                return next;
              }
              if (fenced && now() + 60_000 > (state.fenceDeadline ?? 0)) {
                // Past the epoch's deadline no delete may be issued: a new epoch, with its own wait.
                await endDeleting(store, state.gcId);
                await save({ ...state, sweep: { run, offset }, deleted, phase: 'fence' });
                return next;
              }
              const batch = list.slice(offset, offset + DELETE_BATCH).filter((c) => !walk.has(c.key));
              if (batch.length > 0) await store.delete(batch.map((c) => c.key));
              await checkpoint('gc-deleted-batch');
              deleted = { objects: deleted.objects + batch.length, bytes: deleted.bytes + batch.reduce((a, c) => a + c.size, 0) };
              offset = Math.min(offset + DELETE_BATCH, list.length);
              await save({ ...state, sweep: { run, offset }, deleted });
            }
            run++;
            offset = 0;
          }
          await save({ ...state, sweep: { run, offset }, deleted, phase: 'clean' });
          return next;
        } finally {
          walk.close();
        }
      }
      case 'clean': {
        const removed = o.replica ? 0 : await removeFinishedTransactions(store, now(), grace);
        if (fenced) await endDeleting(store, state.gcId);
        await save({ ...state, transactionsRemoved: state.transactionsRemoved + removed, phase: 'done' });
        await checkpoint('gc-cleaned');
        await dropChainWalk(store, keys.walk);
        await store.delete(state.runs);
        return { result: resultOf(state) };
      }
      case 'done':
        return { result: resultOf(state) };
    }
  } catch (err) {
    if (err instanceof SupersededError) {
      const settled = await readChainState<GcState>(store, keys.state);
      if (settled?.state.phase === 'done') return { result: resultOf(settled.state) };
      if (err.message.startsWith('the head moved')) return next;
      return { result: { ...resultOf(state), status: 'superseded' } };
    }
    throw err;
  }
}

function freshState(gcId: string, options: GcOptions, now: number): GcState {
  return {
    gcId, phase: 'plan', options, startedAt: now, headRevision: 0, gcRevision: null, revisionsKept: [], revisionsDropped: [],
    tagsRemoved: [], segments: [], fenceSince: null, fenceDeadline: null, listAfter: '', listDone: false, listed: 0, runs: [],
    candidates: 0, markedUpTo: 0, marked: 0, sweep: { run: 0, offset: 0 }, deleted: { objects: 0, bytes: 0 }, wouldDelete: [], transactionsRemoved: 0,
  };
}

function resultOf(s: GcState): GcResult {
  return {
    gcId: s.gcId, status: 'done', dryRun: Boolean(s.options.dryRun), headRevision: s.headRevision, gcRevision: s.gcRevision,
    revisionsKept: s.revisionsKept, revisionsDropped: s.revisionsDropped, tagsRemoved: s.tagsRemoved, marked: s.marked,
    candidates: s.candidates, deleted: s.deleted, ...(s.options.dryRun ? { wouldDelete: s.wouldDelete } : {}),
    transactionsRemoved: s.transactionsRemoved, listed: s.listed,
  };
}

/** The head, checked against the master key where one is configured (a replica's source key). */
async function openHead(store: ObjectStore, config: GcConfig) {
  const masterPublicKeyPem = config.keys?.masterPublicKeyPem ?? config.masterPublicKeyPem;
  if (masterPublicKeyPem) return openTrustedHead(store, { fqrn: config.fqrn, masterPublicKeyPem });
  const head = await readHead(store);
  if (!head) throw new RefusedError('no-repository', `there is no repository in ${store.description}`);
  return head;
}

/** Sleeps out the fence's wait within this step's budget; true once it is over. */
async function fenceWaitOver(state: GcState, now: () => number, sleep: (ms: number) => Promise<void>, budget: SliceBudget): Promise<boolean> {
  const until = (state.fenceSince ?? 0) + (state.options.fenceWaitMs ?? DEFAULT_FENCE_WAIT_MS);
  while (now() < until) {
    if (budget.timeSpent()) return false;
    await sleep(Math.min(until - now(), 1000));
  }
  return true;
}

/** Root catalogs of the revisions published after `revision` (the head's previous_revision chain back to it). */
async function newerRoots(store: ObjectStore, revision: number): Promise<{ revision: number; roots: ContentHash[] }> {
  const got = await store.get(MANIFEST_KEY);
  if (!got) throw new RefusedError('no-repository', 'the manifest disappeared during gc');
  const manifest = parseManifest(got.body).manifest;
  const roots: ContentHash[] = [];
  if (manifest.revision > revision) {
    for (const r of await listRevisions(store, manifest)) {
      if (r.revision <= revision) break;
      roots.push(r.hash);
    }
  }
  return { revision: Math.max(revision, manifest.revision), roots };
}

interface OpenTransaction {
  txnId: string;
  /** Object keys its changeset names. */
  objects: string[];
  /** Its work catalogs (partly applied tree, pending root). */
  roots: ContentHash[];
}

/** Transactions not yet committed or aborted, with every object they name. */
async function openTransactions(store: ObjectStore): Promise<OpenTransaction[]> {
  const byTxn = new Map<string, string[]>();
  for await (const obj of listAll(store, TXN_PREFIX)) {
    const id = obj.key.slice(TXN_PREFIX.length).split('/')[0]!;
    const keys = byTxn.get(id) ?? [];
    keys.push(obj.key);
    byTxn.set(id, keys);
  }
  const out: OpenTransaction[] = [];
  for (const [txnId, keys] of byTxn) {
    const stateKey = keys.find((k) => k.endsWith('/state.json'));
    const state = stateKey ? await store.get(stateKey) : null;
    const parsed = state ? JSON.parse(state.body.toString('utf8')) as { status?: string; workRoot?: string | null; pending?: { root: string } | null } : null;
    if (parsed?.status === 'committed' || parsed?.status === 'aborted') continue;
    const objects = new Set<string>();
    for (const k of keys.filter((k) => /\/part-\d+\.json$/.test(k))) {
      const part = await store.get(k);
      if (!part) continue;
      // Every hash the part names, as content and as chunk: marking too much only keeps an object longer,
      // and a part that does not parse (a hostile writer's) protects nothing: its commit will refuse it.
      let doc: unknown;
      try {
        doc = JSON.parse(part.body.toString('utf8'));
      } catch {
        continue;
      }
      for (const hex of hashesIn(doc)) {
        const h = ContentHash.fromHex(hex);
        objects.add(h.objectKey(''));
        objects.add(h.objectKey('P'));
      }
    }
    const roots = [parsed?.workRoot, parsed?.pending?.root].filter((r): r is string => typeof r === 'string').map((r) => ContentHash.fromHex(r));
    out.push({ txnId, objects: [...objects], roots });
  }
  return out;
}

/** Every string under a key 'hash' that is a content hash, anywhere in a parsed document. */
function hashesIn(value: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 16 || value === null || typeof value !== 'object') return out;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (k === 'hash' && typeof v === 'string' && /^[0-9a-f]{40}(?:-rmd160|-shake128)?$/.test(v)) out.push(v);
    else hashesIn(v, out, depth + 1);
  }
  return out;
}

/** Deletes the records of transactions that finished, or were left, longer than `grace` ago. */
async function removeFinishedTransactions(store: ObjectStore, now: number, grace: number): Promise<number> {
  const byTxn = new Map<string, { keys: string[]; newest: number; state?: string }>();
  for await (const obj of listAll(store, TXN_PREFIX)) {
    const id = obj.key.slice(TXN_PREFIX.length).split('/')[0]!;
    const t = byTxn.get(id) ?? { keys: [], newest: 0 };
    t.keys.push(obj.key);
    t.newest = Math.max(t.newest, obj.lastModified.getTime());
    if (obj.key.endsWith('/state.json')) t.state = obj.key;
    byTxn.set(id, t);
  }
  let removed = 0;
  for (const t of byTxn.values()) {
    if (now - t.newest < grace) continue;
    const state = t.state ? await store.get(t.state) : null;
    const status = state ? (JSON.parse(state.body.toString('utf8')) as { status?: string }).status : undefined;
    // A swap under way is never cut short; anything else this old has no live lease (leases last at most 2 h).
    if (status === 'swapping') continue;
    for (let i = 0; i < t.keys.length; i += DELETE_BATCH) await store.delete(t.keys.slice(i, i + DELETE_BATCH));
    removed++;
  }
  return removed;
}

export async function gcConfigFromEnv(): Promise<GcConfig> {
  const fqrn = requiredEnv('gc', 'SCVMFS_FQRN');
  const dir = process.env.SCVMFS_KEYS;
  if (!dir) return { store: storeFromEnv('gc'), fqrn };
  const keys = await loadKeys(dir, fqrn, { need: [] }).catch(() => null);
  const masterPublicKeyPem = keys?.masterPublicKeyPem ?? await readFile(keyFilePaths(dir, fqrn).masterPublicKeyPem, 'utf8').catch(() => undefined);
  return {
    store: storeFromEnv('gc'), fqrn, masterPublicKeyPem,
    keys: keys?.repositoryKeyPem && keys.certificatePem && masterPublicKeyPem
      ? { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem } : undefined,
  };
}

/** What a schedule sends (infra/stack.ts scheduleGc): a new gc with a retention relative to now. */
export interface GcScheduleEvent {
  trigger: 'schedule';
  options: { keepRevisions?: number; keepSinceDays?: number };
}

export const handler: Handler<GcEvent | GcScheduleEvent, GcResult> = async (event, context) => {
  if ('trigger' in event) {
    const { keepRevisions, keepSinceDays } = event.options ?? {};
    const keepSince = keepSinceDays === undefined ? undefined : Math.floor(Date.now() / 1000) - keepSinceDays * 86_400;
    event = { gcId: newGcId(), options: { keepRevisions, keepSince } };
  }
  return handleGcEvent(event, await gcConfigFromEnv(), context);
};
