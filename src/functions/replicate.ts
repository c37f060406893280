// The replicate function: copies one revision of a source repository (and its tagged revisions, and with
// allRevisions every earlier one) into the replica store in bounded steps. Its state is one chain state in
// the replica's control area, advanced by compare-and-swap, so a step killed anywhere or delivered twice
// repeats harmlessly: objects are content-addressed, copied only if absent, and the walk of catalogs is
// persisted as segments named by the state (repo/walk-log.ts). Phases: 'walking' (every object below the
// catalogs the replica lacks), 'catalogs' (those catalogs, deepest first), 'finishing' (history,
// certificate, meta-info, reflog, then whitelist and manifest last, then the stratum 1 markers).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RefusedError } from '../errors.js';
import { parseManifest } from '../format/manifest.js';
import { parseWhitelist } from '../format/whitelist.js';
import { ContentHash } from '../format/hash.js';
import { hashOfKey, type WalkRoot } from '../repo/catalog-walk.js';
import { dropChainWalk, openChainWalk, saveWalkSegment } from '../repo/walk-log.js';
import {
  assertNotBehind, copyObject, refreshWhitelist, CopyPool, fetchSourceEnsemble, IS_SNAPSHOTTING_KEY, manifestObjects, recordInReflog,
  replicaHead, replicationLoader, replicationRoots, replicationVisitor, utcDateLine, writeManifestLast,
  writeSnapshotMarkers, type CopyCounts, type ManifestOutcome, type SourceEnsemble,
} from '../repo/replication.js';
import { openStoreSource } from '../client/sources.js';
import type { ObjectReader, ObjectStore } from '../store/object-store.js';
import { storeFromEnv } from './env.js';
import { checkpoint } from './checkpoint.js';
import { readChainState, SliceBudget, SupersededError, writeChainState } from './chain.js';
import type { FunctionContext, Handler } from './types.js';

export const REPLICATE_STATE_KEY = '.scvmfs/replicate/state.json';
const walkPrefix = (run: string) => `.scvmfs/replicate/${run}/walk/`;

export interface ReplicateEvent {
  /** http(s) URL of the source repository, or a store URL (directory, s3://). */
  source: string;
  fqrn: string;
  /** Master public keys (PEM text) that may have signed the source's whitelist. */
  publicKeys: string[];
  /** Also every earlier revision (previous_revision chain of root catalogs), not only head and tags. */
  allRevisions?: boolean;
  allowExpiredWhitelist?: boolean;
  /** Set on the steps after the first: the run they continue. */
  run?: string;
}

export interface ReplicateResult {
  status: 'replicated' | 'up-to-date' | 'replica-newer' | 'superseded';
  revision: number;
  run: string;
  steps: number;
  catalogs: number;
  copied: number;
  present: number;
  bytes: number;
}

export interface ReplicateState {
  run: string;
  status: 'walking' | 'catalogs' | 'finishing' | 'done' | 'failed';
  source: string;
  allRevisions: boolean;
  /** The source's manifest and whitelist as fetched once at the start (base64): the revision copied. */
  manifest: string;
  whitelist: string;
  pkcs7: string | null;
  revision: number;
  roots: { hash: string; size: number | null }[];
  segments: string[];
  /** Catalogs stored so far in the 'catalogs' phase (position in the walk's deepest-first order). */
  catalogCursor: number;
  steps: number;
  catalogs: number;
  copied: number;
  present: number;
  bytes: number;
  outcome?: ManifestOutcome;
  error?: string;
}

export interface ReplicateConfig {
  replica: ObjectStore;
  source: ObjectReader;
  /** Objects in flight at once. */
  concurrency?: number;
  /** Catalogs per step at most (besides the time and memory budget); fixed counts make chains repeatable. */
  maxCatalogsPerStep?: number;
  now?: () => Date;
}

const DEFAULT_CONCURRENCY = 32;
const CATALOG_BATCH = 64;

function ensembleOf(s: ReplicateState): SourceEnsemble {
  const manifestBytes = Buffer.from(s.manifest, 'base64');
  return {
    manifestBytes, signed: parseManifest(manifestBytes), whitelistBytes: Buffer.from(s.whitelist, 'base64'),
    pkcs7Bytes: s.pkcs7 ? Buffer.from(s.pkcs7, 'base64') : undefined,
  };
}

function resultOf(s: ReplicateState, status: ReplicateResult['status']): ReplicateResult {
  return { status, revision: s.revision, run: s.run, steps: s.steps, catalogs: s.catalogs, copied: s.copied, present: s.present, bytes: s.bytes };
}

export async function handleReplicateEvent(event: ReplicateEvent, config: ReplicateConfig, context: FunctionContext):
  Promise<{ result?: ReplicateResult; next?: { fn: 'replicate'; event: ReplicateEvent } }> {
  const { replica, source } = config;
  const now = config.now ?? (() => new Date());
  const budget = new SliceBudget(context);
  let loaded = await readChainState<ReplicateState>(replica, REPLICATE_STATE_KEY);
  const finished = !loaded || loaded.state.status === 'done' || loaded.state.status === 'failed';
  if (finished && event.run && loaded?.state.run === event.run) {
    return { result: resultOf(loaded.state, loaded.state.status === 'done' ? statusOf(loaded.state.outcome) : 'superseded') };
  }
  if (!finished && event.run && loaded!.state.run !== event.run) return { result: resultOf(loaded!.state, 'superseded') };
  try {
    if (finished) {
      // A new run: the source's revision is fetched once, checked, and is all this run copies.
      const ensemble = await fetchSourceEnsemble(source, {
        fqrn: event.fqrn, publicKeys: event.publicKeys, allowExpiredWhitelist: event.allowExpiredWhitelist, now: now(),
      });
      const head = await replicaHead(replica);
      assertNotBehind(ensemble, head, event.source);
      if (head?.bytes.equals(ensemble.manifestBytes)) {
        // The manifest is written last, so a replica holding this very manifest holds its whole closure.
        await refreshWhitelist(replica, ensemble);
        const revision = ensemble.signed.manifest.revision;
        return { result: { status: 'up-to-date', revision, run: loaded?.state.run ?? '', steps: 1, catalogs: 0, copied: 0, present: 0, bytes: 0 } };
      }
      const roots = await replicationRoots(source, ensemble);
      await checkpoint('verified');
      const state: ReplicateState = {
        run: randomBytes(8).toString('hex'), status: 'walking', source: event.source, allRevisions: event.allRevisions === true,
        manifest: ensemble.manifestBytes.toString('base64'), whitelist: ensemble.whitelistBytes.toString('base64'),
        pkcs7: ensemble.pkcs7Bytes?.toString('base64') ?? null, revision: ensemble.signed.manifest.revision,
        roots: roots.map((r) => ({ hash: r.hash.toHex(), size: r.size ?? null })), segments: [], catalogCursor: 0,
        steps: 1, catalogs: 0, copied: 0, present: 0, bytes: 0,
      };
      await replica.put(IS_SNAPSHOTTING_KEY, Buffer.from(utcDateLine(now())), { contentType: 'text/plain' });
      await writeChainState(replica, REPLICATE_STATE_KEY, state, loaded?.etag ?? null);
      await checkpoint('started');
      return { next: { fn: 'replicate', event: { ...event, run: state.run } } };
    }
    const { state, etag } = loaded!;
    const step = { ...state, steps: state.steps + 1 };
    if (state.status === 'walking') return await walkStep(step, etag);
    if (state.status === 'catalogs') return await catalogStep(step, etag);
    return await finishStep(step, etag);
  } catch (err) {
    if (err instanceof SupersededError) {
      const s = (await readChainState<ReplicateState>(replica, REPLICATE_STATE_KEY))?.state;
      return { result: s ? resultOf(s, 'superseded') : { status: 'superseded', revision: 0, run: event.run ?? '', steps: 0, catalogs: 0, copied: 0, present: 0, bytes: 0 } };
    }
    // A source refused mid-run (a corrupt or missing object) ends the run: the next starts from the
    // source's then current revision instead of retrying this one forever. The manifest is untouched.
    if (err instanceof RefusedError && loaded && !finished) await abandon(loaded.state, loaded.etag, err);
    throw err;
  }

  async function abandon(state: ReplicateState, etag: string, err: Error): Promise<void> {
    try {
      await writeChainState(replica, REPLICATE_STATE_KEY, { ...state, status: 'failed', error: err.message }, etag);
    } catch (e) {
      if (e instanceof SupersededError) return;
      throw e;
    }
    await dropChainWalk(replica, walkPrefix(state.run));
    await replica.delete([IS_SNAPSHOTTING_KEY]);
  }

  async function walkStep(state: ReplicateState, etag: string) {
    // A private scratch directory per delivery: two deliveries of one step never share a walk file.
    const scratch = mkdtempSync(join(process.env.SCVMFS_SCRATCH ?? tmpdir(), 'scvmfs-replicate-'));
    try {
      const walk = await openChainWalk(replica, walkPrefix(state.run), state.segments, scratch);
      try {
        walk.addRoots(state.roots.map((r): WalkRoot => ({ hash: ContentHash.fromHex(r.hash), mountpoint: '', size: r.size ?? undefined })));
        const counts: CopyCounts = { copied: 0, present: 0, bytes: 0 };
        const pool = new CopyPool(config.concurrency ?? DEFAULT_CONCURRENCY);
        let n = 0;
        const progress = await walk.step(
          replicationLoader(source, replica, (h) => join(scratch, `${h.toHex()}.db`)),
          replicationVisitor(source, replica, { pool, counts, allRevisions: state.allRevisions, addRoots: (roots) => walk.addRoots(roots) }),
          () => ++n >= (config.maxCatalogsPerStep ?? Infinity) || budget.spent(),
        );
        await pool.drain();
        await checkpoint('objects-copied');
        const segment = await saveWalkSegment(replica, walkPrefix(state.run), walk, state.segments);
        const next: ReplicateState = {
          ...state, segments: segment ? [...state.segments, segment] : state.segments, status: progress.done ? 'catalogs' : 'walking',
          catalogs: state.catalogs + progress.catalogs, copied: state.copied + counts.copied, present: state.present + counts.present, bytes: state.bytes + counts.bytes,
        };
        await writeChainState(replica, REPLICATE_STATE_KEY, next, etag);
        await checkpoint('walked');
        return { next: { fn: 'replicate' as const, event: { ...event, run: state.run } } };
      } finally {
        walk.close();
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  async function catalogStep(state: ReplicateState, etag: string) {
    const scratch = mkdtempSync(join(process.env.SCVMFS_SCRATCH ?? tmpdir(), 'scvmfs-replicate-'));
    try {
      const walk = await openChainWalk(replica, walkPrefix(state.run), state.segments, scratch);
      const counts: CopyCounts = { copied: 0, present: 0, bytes: 0 };
      let cursor = state.catalogCursor;
      let done = false;
      try {
        // Deepest first, one depth at a time: a catalog lands only after the catalogs it mounts.
        while (!budget.spent()) {
          const batch = walk.catalogsDeepestFirst(cursor, CATALOG_BATCH);
          if (batch.length === 0) {
            done = true;
            break;
          }
          let i = 0;
          while (i < batch.length) {
            const depth = depthOf(batch[i]!.mountpoint);
            let j = i;
            while (j < batch.length && depthOf(batch[j]!.mountpoint) === depth) j++;
            const pool = new CopyPool(config.concurrency ?? DEFAULT_CONCURRENCY);
            for (const c of batch.slice(i, j)) await pool.add(() => copyObject(source, replica, hashOfKey(c.key), 'C', counts));
            await pool.drain();
            i = j;
          }
          cursor += batch.length;
        }
      } finally {
        walk.close();
      }
      await checkpoint('catalogs-stored');
      const next: ReplicateState = {
        ...state, catalogCursor: cursor, status: done ? 'finishing' : 'catalogs',
        copied: state.copied + counts.copied, present: state.present + counts.present, bytes: state.bytes + counts.bytes,
      };
      await writeChainState(replica, REPLICATE_STATE_KEY, next, etag);
      return { next: { fn: 'replicate' as const, event: { ...event, run: state.run } } };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  async function finishStep(state: ReplicateState, etag: string) {
    const ensemble = ensembleOf(state);
    const m = ensemble.signed.manifest;
    const counts: CopyCounts = { copied: 0, present: 0, bytes: 0 };
    const named = manifestObjects(ensemble);
    for (const o of named) await copyObject(source, replica, o.hash, o.suffix, counts);
    const timestamp = Math.floor(now().getTime() / 1000);
    await recordInReflog(replica, m.fqrn, [
      ...state.roots.map((r) => ({ hash: ContentHash.fromHex(r.hash), type: 'catalog' as const, timestamp })),
      ...named.map((o) => ({ hash: o.hash, type: o.type, timestamp })),
    ]);
    await checkpoint('objects-stored');
    // The whitelist must still be the source's signed one, so a stale state cannot plant an old whitelist.
    parseWhitelist(ensemble.whitelistBytes);
    const outcome = await writeManifestLast(replica, ensemble);
    await checkpoint('manifest-written');
    if (outcome !== 'replica-newer') await writeSnapshotMarkers(replica, now());
    else await replica.delete([IS_SNAPSHOTTING_KEY]);
    const final: ReplicateState = {
      ...state, status: 'done', outcome, copied: state.copied + counts.copied, present: state.present + counts.present, bytes: state.bytes + counts.bytes,
    };
    await writeChainState(replica, REPLICATE_STATE_KEY, final, etag);
    await checkpoint('done');
    await dropChainWalk(replica, walkPrefix(state.run));
    return { result: resultOf(final, statusOf(outcome)) };
  }
}

function statusOf(outcome: ManifestOutcome | undefined): ReplicateResult['status'] {
  return outcome === 'replica-newer' ? 'replica-newer' : outcome === 'unchanged' ? 'up-to-date' : 'replicated';
}

function depthOf(mountpoint: string): number {
  return mountpoint === '' ? 0 : mountpoint.split('/').length;
}

/** The replica from SCVMFS_STORE; the source, trust and options come with the event (one schedule per replica). */
export function replicateConfigFromEnv(event: ReplicateEvent): ReplicateConfig {
  if (typeof event?.source !== 'string' || typeof event.fqrn !== 'string' || !Array.isArray(event.publicKeys) || event.publicKeys.length === 0) {
    throw new RefusedError('bad-replicate-event', 'the replicate event needs source (URL), fqrn and publicKeys (PEM texts)');
  }
  return {
    replica: storeFromEnv('replicate'), source: openStoreSource(event.source),
    concurrency: process.env.SCVMFS_REPLICATE_CONCURRENCY ? Number(process.env.SCVMFS_REPLICATE_CONCURRENCY) : undefined,
    maxCatalogsPerStep: process.env.SCVMFS_REPLICATE_SLICE ? Number(process.env.SCVMFS_REPLICATE_SLICE) : undefined,
  };
}

/** One sandbox's worth of a step when the chain runs in this process (the CLI): a minute's work per step. */
function inProcessContext(): FunctionContext {
  const deadline = Date.now() + 120_000;
  return { awsRequestId: randomBytes(8).toString('hex'), functionName: 'replicate', memoryLimitInMB: 2048, getRemainingTimeInMillis: () => deadline - Date.now() };
}

/** Runs a whole replication in this process, step after step (what `scvmfs replicate` does). */
export async function runReplication(event: ReplicateEvent, config: ReplicateConfig, onStep?: (state: ReplicateState | null) => void): Promise<ReplicateResult> {
  let e = event;
  for (;;) {
    const out = await handleReplicateEvent(e, config, inProcessContext());
    if (out.result) return out.result;
    e = out.next!.event;
    onStep?.((await readChainState<ReplicateState>(config.replica, REPLICATE_STATE_KEY))?.state ?? null);
  }
}

export const handler: Handler<ReplicateEvent, ReplicateResult> = async (event, context) =>
  handleReplicateEvent(event, replicateConfigFromEnv(event), context);
