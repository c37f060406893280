// The check function: checks a repository in bounded, resumable slices. Its first step trusts the head
// the way a client does (manifest, certificate, whitelist against the master key) and fixes the roots
// (the head, and with allRevisions every revision its previous_revision chain and its tags reach). Then
// it lists data/ (one LIST per 1,000 keys) into the walk, so that every object's existence is judged when
// the walk meets its references and every problem names the paths that reference it, with no request
// per object; with `full` each object is instead read once, streamed through its hash and zlib. Then it
// walks every catalog once (repo/catalog-walk), and finally compares subtree statistics with the totals
// of the nested catalogs. It goes on past every finding: findings go into one part per slice in the
// control area (repo/check-parts), never into memory, and the state names the parts and walk segments
// of the winning deliveries only, so a step killed anywhere or delivered twice leaves the same findings.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RepositoryReader, VerificationError } from '../client/reader.js';
import { checkReflog } from '../client/verify.js';
import { addCounters, CatalogDb } from '../format/catalog-db.js';
import { ContentHash } from '../format/hash.js';
import { readHistory } from '../format/history.js';
import { decompressObject, verifyObject } from '../format/zlib-object.js';
import { CatalogWalk, type CatalogVisit, type ObjectRef, type WalkRoot, type WalkVisitor } from '../repo/catalog-walk.js';
import { catalogDefects, counterMismatch, countersFromArray, countersToArray, shownPath } from '../repo/catalog-checks.js';
import {
  addPath, checkKeys, dropUnnamedParts, emptyPart, mergeProblems, partIsEmpty, subtreeProblems, writePart,
  type CheckPart, type CheckProblem,
} from '../repo/check-parts.js';
import { checkObjectContent, type CheckSource } from '../repo/object-content-check.js';
import { REFLOG_KEY } from '../repo/repository.js';
import { dropChainWalk, openChainWalk, saveWalkSegment } from '../repo/walk-log.js';
import type { ListPage, ObjectStore } from '../store/object-store.js';
import { Slots } from '../store/slots.js';
import { readChainState, SliceBudget, SupersededError, writeChainState } from './chain.js';
import { checkpoint } from './checkpoint.js';
import { requiredEnv, storeFromEnv } from './env.js';
import type { FunctionContext, FunctionResult, Handler } from './types.js';

export interface CheckEvent {
  /** Names the check's control prefix `.scvmfs/check/<id>/`. */
  id: string;
  /** Master public keys (PEM); any one may have signed the whitelist. */
  publicKeys: string[];
  allRevisions?: boolean;
  full?: boolean;
  allowExpiredWhitelist?: boolean;
  /** Catalogs per slice at most, besides the time and memory budget (fixed counts make runs repeatable). */
  sliceCatalogs?: number;
  /** LIST pages per slice at most. */
  slicePages?: number;
  /** Keys per LIST page (at most 1,000, S3's page); smaller only to make many pages in tests. */
  pageKeys?: number;
}

export interface CheckConfig {
  fqrn: string;
  /** Where the repository is read; without `list` (HTTP), every object is read, as with `full`. */
  source: CheckSource & { list?: ObjectStore['list'] };
  /** Where the state, the walk log and the findings live: the store's control area, or a local directory store. */
  control: ObjectStore;
  /** The sandbox's scratch directory (default SCVMFS_SCRATCH, else the OS temporary directory). */
  scratchDir?: string;
  now?: () => Date;
}

export interface CheckTotals {
  catalogs: number;
  entries: number;
  objects: number;
  /** Stored bytes read (catalogs, and objects with `full`). */
  bytes: number;
  /** Keys the listing of data/ returned. */
  listed: number;
  slices: number;
}

export interface CheckState {
  id: string;
  fqrn: string;
  location: string;
  full: boolean;
  allRevisions: boolean;
  /** Existence from the listing (false: each object is read). */
  listing: boolean;
  phase: 'list' | 'walk' | 'compare' | 'done';
  revision: number | null;
  roots: number;
  tags: string[];
  warnings: string[];
  /** Where the next LIST of data/ starts. */
  listAfter: string | null;
  /** The walk's log segments (repo/walk-log), of winning deliveries only. */
  segments: string[];
  /** Finding parts (repo/check-parts), of winning deliveries only. */
  parts: string[];
  totals: CheckTotals;
  /** Problems the parts hold (before merging equal ones). */
  problems: number;
  startedAt: string;
  finishedAt: string | null;
}

export interface CheckResult {
  status: 'clean' | 'problems';
  id: string;
  revision: number | null;
  phase: CheckState['phase'];
  problems: number;
  totals: CheckTotals;
}

/** Keys the listing returned are marked in the walk under this prefix, objects found bad under BAD. */
const LISTED = 'L:';
const BAD = 'B:';
const PAGE = 1000;
const MAX_PROBLEMS_PER_SLICE = 1000;
const PARALLEL_READS = 8;

/** This sandbox's scratch name: a walk file is reused only by the sandbox that wrote it (a warm one). */
const SANDBOX = randomBytes(6).toString('hex');

function scratchDirOf(config: CheckConfig, id: string): string {
  const dir = join(config.scratchDir ?? process.env.SCVMFS_SCRATCH ?? tmpdir(), `scvmfs-check-${SANDBOX}-${id}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function resultOf(s: CheckState): CheckResult {
  return { status: s.problems > 0 ? 'problems' : 'clean', id: s.id, revision: s.revision, phase: s.phase, problems: s.problems, totals: s.totals };
}

/** A finding about a catalog that could not be opened, with the code verify gives it. */
class CatalogFinding extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * The walk as the state's segments have it. A file holding work that no segment logged is a delivery's
 * that died or failed before saving: its findings are lost, so its walk must not count either.
 */
async function openWalk(control: ObjectStore, prefix: string, segments: readonly string[], dir: string): Promise<CatalogWalk> {
  const walk = await openChainWalk(control, prefix, segments, dir);
  const { delta } = walk.unloggedDelta();
  if (delta.catalogs.length === 0 && delta.marked.length === 0 && delta.visited.length === 0) return walk;
  walk.close();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return openChainWalk(control, prefix, segments, dir);
}

export async function handleCheckEvent(event: CheckEvent, config: CheckConfig, context: FunctionContext): Promise<FunctionResult<CheckResult>> {
  const keys = checkKeys(event.id);
  const again = { next: { fn: 'check' as const, event } };
  const loaded = await readChainState<CheckState>(config.control, keys.state);
  try {
    if (!loaded) return await start(event, config);
    const { state, etag } = loaded;
    if (state.fqrn !== config.fqrn) throw new Error(`check ${event.id} is of ${state.fqrn}, not ${config.fqrn}`);
    if (state.phase === 'done') return { result: resultOf(state) };
    if (state.phase === 'compare') return await compare(state, etag, config);
    return await slice(event, state, etag, config, context);
  } catch (err) {
    // Another delivery advanced the state first: the next step goes on from whatever it wrote.
    if (err instanceof SupersededError) return again;
    throw err;
  }
}

async function start(event: CheckEvent, config: CheckConfig): Promise<FunctionResult<CheckResult>> {
  const keys = checkKeys(event.id);
  const { source, control } = config;
  const now = config.now ?? (() => new Date());
  const part = emptyPart();
  const state: CheckState = {
    id: event.id, fqrn: config.fqrn, location: source.description, full: event.full === true, allRevisions: event.allRevisions === true,
    listing: event.full !== true && typeof source.list === 'function', phase: 'list', revision: null, roots: 0, tags: [], warnings: [],
    listAfter: null, segments: [], parts: [], problems: 0, startedAt: now().toISOString(), finishedAt: null,
    totals: { catalogs: 0, entries: 0, objects: 0, bytes: 0, listed: 0, slices: 1 },
  };
  if (!state.listing) state.phase = 'walk';
  let reader: RepositoryReader;
  try {
    reader = await RepositoryReader.open(source, { fqrn: config.fqrn, publicKeys: event.publicKeys, allowExpiredWhitelist: event.allowExpiredWhitelist, now: now() });
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    // Nothing below a head that cannot be trusted is worth checking: that is the one finding.
    const key = typeof err.data?.object === 'string' ? err.data.object : '.cvmfspublished';
    part.problems.push({ key, code: err.code, message: err.message, paths: [], morePaths: 0 });
    const done: CheckState = { ...state, phase: 'done', problems: 1, finishedAt: now().toISOString(), parts: [await writePart(control, event.id, 0, part)] };
    await writeChainState(control, keys.state, done, null);
    await checkpoint('started');
    return { result: resultOf(done) };
  }
  const manifest = reader.manifest;
  reader.close();
  const roots: WalkRoot[] = [{ hash: manifest.rootCatalog, mountpoint: '', size: manifest.rootCatalogSize }];
  const problem = (p: Omit<CheckProblem, 'morePaths' | 'paths'>) => part.problems.push({ ...p, paths: [], morePaths: 0 });
  if (manifest.history) {
    const key = manifest.history.objectKey('H');
    const got = await source.get(key);
    if (!got) problem({ key, code: 'missing-object', message: 'missing from the store (the history database the manifest names)' });
    else {
      try {
        verifyObject(key, manifest.history, got.body);
        const tags = readHistory(decompressObject(got.body, `history ${key}`)).tags;
        state.tags = tags.map((t) => t.name);
        if (state.allRevisions) roots.push(...tags.map((t) => ({ hash: t.hash, mountpoint: '', size: t.size })));
      } catch (err) {
        problem({ key, code: 'bad-history', message: `history: ${(err as Error).message}` });
      }
    }
  }
  if (manifest.reflog) {
    checkReflog(await source.get(REFLOG_KEY), manifest.reflog, manifest.rootCatalog,
      (key, code, message) => problem({ key, code, message }), state.warnings);
  }
  const dir = scratchDirOf(config, event.id);
  const walk = await openWalk(control, keys.walk, [], dir);
  try {
    walk.addRoots(roots);
    const segment = await saveWalkSegment(control, keys.walk, walk, []);
    state.segments = segment ? [segment] : [];
  } finally {
    walk.close();
  }
  state.revision = manifest.revision;
  state.roots = roots.length;
  state.problems = part.problems.length;
  if (!partIsEmpty(part)) state.parts = [await writePart(control, event.id, 0, part)];
  await writeChainState(control, keys.state, state, null);
  await checkpoint('started');
  return { next: { fn: 'check', event } };
}

async function slice(event: CheckEvent, state: CheckState, etag: string, config: CheckConfig, context: FunctionContext): Promise<FunctionResult<CheckResult>> {
  const keys = checkKeys(event.id);
  const { source, control } = config;
  const budget = new SliceBudget(context);
  const dir = scratchDirOf(config, event.id);
  const walk = await openWalk(control, keys.walk, state.segments, dir);
  const part = emptyPart();
  const totals: CheckTotals = { ...state.totals, slices: state.totals.slices + 1 };
  let { phase, listAfter } = state;
  let segment: string | null;
  try {
    let pages = 0;
    while (phase === 'list') {
      if (pages > 0 && (budget.spent() || pages >= (event.slicePages ?? Infinity))) break;
      const page: ListPage = await source.list!('data/', { after: listAfter ?? undefined, limit: Math.min(event.pageKeys ?? PAGE, PAGE) });
      walk.mark(page.objects.map((o) => LISTED + o.key));
      totals.listed += page.objects.length;
      pages++;
      if (page.next) listAfter = page.next;
      else phase = 'walk';
    }
    await checkpoint('slice-listed');
    if (phase === 'walk' && (pages === 0 || !budget.spent())) {
      const visitor = new SliceVisitor(walk, source, state, part, totals);
      const progress = await walk.step(catalogLoader(source, totals), visitor,
        () => budget.spent() || visitor.catalogs >= (event.sliceCatalogs ?? Infinity) || part.problems.length >= MAX_PROBLEMS_PER_SLICE);
      await visitor.drain();
      totals.catalogs += progress.catalogs;
      totals.entries += progress.entries;
      if (progress.done) phase = 'compare';
    }
    await checkpoint('slice-walked');
    segment = await saveWalkSegment(control, keys.walk, walk, state.segments);
  } finally {
    walk.close();
  }
  const parts = partIsEmpty(part) ? state.parts : [...state.parts, await writePart(control, event.id, state.parts.length, part)];
  await checkpoint('slice-saved');
  const next: CheckState = {
    ...state, phase, listAfter, totals, parts, segments: segment ? [...state.segments, segment] : state.segments,
    problems: state.problems + part.problems.length,
  };
  await writeChainState(control, keys.state, next, etag);
  await checkpoint('slice-checkpointed');
  return { next: { fn: 'check', event } };
}

/** Subtree statistics against the nested catalogs' totals, then the end: the walk's log is dropped. */
async function compare(state: CheckState, etag: string, config: CheckConfig): Promise<FunctionResult<CheckResult>> {
  const { control } = config;
  const dir = scratchDirOf(config, state.id);
  const file = join(dir, `subtrees-${randomBytes(6).toString('hex')}.db`);
  let found: CheckProblem[];
  try {
    found = await subtreeProblems(control, state.id, state.parts, file,
      (expected, actual) => counterMismatch(countersFromArray(expected), countersFromArray(actual)));
  } finally {
    rmSync(file, { force: true });
  }
  const parts = found.length === 0 ? state.parts : [...state.parts, await writePart(control, state.id, state.parts.length, { ...emptyPart(), problems: found })];
  const done: CheckState = {
    ...state, phase: 'done', parts, problems: state.problems + found.length, segments: [],
    totals: { ...state.totals, slices: state.totals.slices + 1 }, finishedAt: (config.now ?? (() => new Date()))().toISOString(),
  };
  await writeChainState(control, checkKeys(state.id).state, done, etag);
  await checkpoint('compared');
  await dropChainWalk(control, checkKeys(state.id).walk, dir);
  rmSync(dir, { recursive: true, force: true });
  await dropUnnamedParts(control, state.id, done.parts);
  return { result: resultOf(done) };
}

function catalogLoader(source: CheckSource, totals: CheckTotals) {
  return async (hash: ContentHash): Promise<{ db: CatalogDb; size: number }> => {
    const key = hash.objectKey('C');
    const got = await source.get(key);
    if (!got) throw new CatalogFinding('missing-object', 'missing from the store');
    totals.bytes += got.body.length;
    try {
      verifyObject(key, hash, got.body);
    } catch (err) {
      throw new CatalogFinding('corrupt-object', (err as Error).message);
    }
    try {
      const bytes = decompressObject(got.body, `catalog ${key}`);
      return { db: CatalogDb.fromBytes(bytes), size: bytes.length };
    } catch (err) {
      throw new CatalogFinding('bad-catalog', (err as Error).message);
    }
  };
}

/** What one slice finds as the walk goes: problems into the slice's part, objects read a few at a time. */
class SliceVisitor implements WalkVisitor {
  catalogs = 0;
  /** Object reads in flight. A store or network failure says nothing about the repository: the slice fails and is retried. */
  private readonly reads = new Slots(PARALLEL_READS);
  /** Objects found bad in this slice, by key. */
  private readonly badHere = new Map<string, CheckProblem[]>();
  /** Later references met in this slice; judged once their objects' verdicts are in. */
  private agains: { key: string; path: string }[] = [];
  private readonly laterPaths = new Map<string, { key: string; paths: string[]; morePaths: number }>();

  constructor(private readonly walk: CatalogWalk, private readonly source: CheckSource, private readonly state: CheckState,
    private readonly part: CheckPart, private readonly totals: CheckTotals) {}

  async catalog(visit: CatalogVisit): Promise<void> {
    await this.drain();
    this.catalogs++;
    const { db, mountpoint } = visit;
    const problem = (message: string, path: string) => this.part.problems.push({
      key: visit.key, code: 'bad-catalog', message: `catalog of '${shownPath(mountpoint)}': ${message}`, paths: [path], morePaths: 0,
    });
    try {
      for (const d of catalogDefects(db, { mountpoint, size: visit.size, expectedSize: visit.expectedSize, algorithm: visit.hash.algorithm })) problem(d.message, d.path);
      const counters = db.readCounters();
      this.part.totals.push({ key: visit.key, total: countersToArray(addCounters(counters.self, counters.subtree)) });
      this.part.expects.push({
        key: visit.key, mountpoint, subtree: countersToArray(counters.subtree),
        children: db.nestedCatalogs().map((n) => n.hash.objectKey('C')),
      });
    } catch (err) {
      // A database whose rows cannot be read: listed, and the walk goes on.
      problem((err as Error).message, shownPath(mountpoint));
    }
    if (this.state.allRevisions && mountpoint === '') {
      const previous = db.property('previous_revision');
      if (previous && !/^0+$/.test(previous)) {
        try {
          this.walk.addRoots([{ hash: ContentHash.fromHex(previous), mountpoint: '' }]);
        } catch (err) {
          problem(`previous_revision: ${(err as Error).message}`, '/');
        }
      }
    }
  }

  async object(ref: ObjectRef): Promise<void> {
    if (this.state.listing) {
      if (!this.walk.has(LISTED + ref.key)) this.bad(ref, 'missing-object', 'missing from the store');
      else this.totals.objects++;
      return;
    }
    await this.reads.start(() => this.read(ref));
  }

  again(ref: ObjectRef): void {
    this.agains.push({ key: ref.key, path: shownPath(ref.path) });
  }

  async unreadable(hash: ContentHash, mountpoint: string, error: Error): Promise<void> {
    this.catalogs++;
    const code = error instanceof CatalogFinding ? error.code : 'bad-catalog';
    const message = code === 'bad-catalog' ? `catalog of '${shownPath(mountpoint)}': ${error.message}` : error.message;
    this.part.problems.push({ key: hash.objectKey('C'), code, message, paths: [shownPath(mountpoint)], morePaths: 0 });
  }

  /** Waits for the reads in flight, then adds the paths of later references to bad objects. */
  async drain(): Promise<void> {
    await this.reads.settled();
    for (const a of this.agains) {
      const here = this.badHere.get(a.key);
      if (here) for (const p of here) addPath(p, a.path);
      else if (this.walk.has(BAD + a.key)) {
        let later = this.laterPaths.get(a.key);
        if (!later) {
          later = { key: a.key, paths: [], morePaths: 0 };
          this.laterPaths.set(a.key, later);
          this.part.paths.push(later);
        }
        addPath(later, a.path);
      }
    }
    this.agains = [];
  }

  private async read(ref: ObjectRef): Promise<void> {
    const verdict = await checkObjectContent(this.source, ref.key, ref.hash, ref.size, ref.compression);
    if (verdict.status === 'missing') this.bad(ref, 'missing-object', 'missing from the store');
    else {
      this.totals.bytes += verdict.stored;
      this.totals.objects++;
      if (verdict.status === 'problem') this.bad(ref, verdict.code, verdict.message);
    }
  }

  private bad(ref: ObjectRef, code: string, message: string): void {
    const p: CheckProblem = { key: ref.key, code, message, paths: [shownPath(ref.path)], morePaths: 0 };
    this.part.problems.push(p);
    this.badHere.set(ref.key, [...(this.badHere.get(ref.key) ?? []), p]);
    this.walk.mark([BAD + ref.key]);
  }
}

/** The report of a finished check: its state and every problem, merged from its parts. */
export async function readCheckReport(control: ObjectStore, id: string): Promise<{ state: CheckState; problems: CheckProblem[] } | null> {
  const got = await readChainState<CheckState>(control, checkKeys(id).state);
  if (!got) return null;
  return { state: got.state, problems: await mergeProblems(control, id, got.state.parts) };
}

export async function readCheckState(control: ObjectStore, id: string): Promise<CheckState | null> {
  return (await readChainState<CheckState>(control, checkKeys(id).state))?.state ?? null;
}

/**
 * Reads SCVMFS_STORE and SCVMFS_FQRN on every call; the check's state lives in the same store's control
 * area, or in the store SCVMFS_CHECK_STATE names (a local directory, for a store it must not write to).
 */
export const handler: Handler<CheckEvent, CheckResult> = async (event, context) => {
  const store = storeFromEnv('check');
  const control = process.env.SCVMFS_CHECK_STATE ? storeFromEnv('check', 'SCVMFS_CHECK_STATE') : store;
  return handleCheckEvent(event, { fqrn: requiredEnv('check', 'SCVMFS_FQRN'), source: store, control }, context);
};
