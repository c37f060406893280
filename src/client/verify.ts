// Full check of a repository as the store holds it: every catalog of the current tree (hash, size,
// schema, root entry, nested references, statistics) and every object it references (hash, zlib
// stream, size), plus the history and reflog named by the manifest. It reads the store itself, never a
// local cache (a cached copy would hide an object that was overwritten or deleted since), and lists
// every problem it finds, each with the object's key and the paths that reference it, up to a limit.
import { RefusedError } from '../errors.js';
import { ContentHash, type ObjectSuffix } from '../format/hash.js';
import { addCounters, CatalogDb, COUNTER_NAMES, zeroCounters, type Counters } from '../format/catalog-db.js';
import { FLAG, kindOfMode } from '../format/catalog-entry.js';
import { decompressObject, verifyObject } from '../format/zlib-object.js';
import { readHistory } from '../format/history.js';
import { readReflog } from '../format/reflog.js';
import { CachedSource } from '../repo/object-cache.js';
import { CatalogWalk, type CatalogLoader, type WalkVisitor } from '../repo/catalog-walk.js';
import { ScratchSpace } from '../repo/scratch.js';
import { MANIFEST_KEY, REFLOG_KEY } from '../repo/repository.js';
import { RepositoryReader, VerificationError, type OpenOptions } from './reader.js';
import { openStoreSource } from './sources.js';
import { Slots } from '../store/slots.js';

export interface VerifyProgress {
  catalogs: number;
  entries: number;
  objects: number;
  bytes: number;
}

export interface VerifyProblem {
  /** The store key of the object that is missing or wrong (for a catalog's own defects, the catalog's). */
  key: string;
  /** Stable: missing-object, corrupt-object, wrong-size, bad-catalog, bad-history, bad-reflog, or a reader code. */
  code: string;
  message: string;
  /** Repository paths that reference the object ('/' is the root), at most MAX_PATHS_PER_PROBLEM. */
  paths: string[];
  /** How many more paths reference it. */
  morePaths: number;
}

export interface VerifyReport extends VerifyProgress {
  fqrn: string;
  /** Where the repository was read, e.g. a directory, a URL or an s3:// bucket. */
  location: string;
  /** The manifest's revision; null when the manifest itself could not be trusted. */
  revision: number | null;
  tags: string[];
  /** Findings that do not make the repository wrong for clients. */
  warnings: string[];
  problems: VerifyProblem[];
  /** Verification stopped at maxProblems: there may be more. */
  truncated: boolean;
}

export interface VerifyOptions {
  onProgress?: (p: VerifyProgress) => void;
  /** Stop after this many problems (default DEFAULT_MAX_PROBLEMS). */
  maxProblems?: number;
}

export const DEFAULT_MAX_PROBLEMS = 100;
export const MAX_PATHS_PER_PROBLEM = 20;
const PARALLEL_FETCHES = 16;

/** Verification found problems; `report` lists them (the CLI prints it, or its JSON). */
export class VerifyFailedError extends RefusedError {
  constructor(readonly report: VerifyReport, code = 'verification-failed', message = describeProblems(report)) {
    super(code, message, { problems: report.problems.length, truncated: report.truncated });
    this.name = 'VerifyFailedError';
  }
}

function describeProblems(r: VerifyReport): string {
  const n = r.problems.length;
  const head = `${n} problem${n === 1 ? '' : 's'} in ${r.fqrn} revision ${r.revision} at ${r.location}` +
    (r.truncated ? ` (stopped after ${n}: there may be more; raise --max-problems to see them)` : '');
  return [head + ':', ...r.problems.map((p) => `  ${describeProblem(p)}`)].join('\n');
}

export function describeProblem(p: VerifyProblem): string {
  const refs = p.paths.length === 0 ? '' : ` (referenced by ${p.paths.join(', ')}${p.morePaths ? ` and ${p.morePaths} more` : ''})`;
  return `${p.key}: ${p.message}${refs}`;
}

/** Thrown through the walk once the problem limit is reached. */
class Stop extends Error {}

/** Why a catalog could not be opened: the problem code and message its report gets. */
class CatalogUnreadable extends Error {
  constructor(readonly code: 'missing-object' | 'corrupt-object' | 'bad-catalog', message: string) {
    super(message);
  }
}

function sameCounters(a: Counters, b: Counters): string | null {
  for (const n of COUNTER_NAMES) if (a[n] !== b[n]) return `${n} is ${b[n]}, expected ${a[n]}`;
  return null;
}

const shown = (path: string) => path || '/';

/**
 * Opens the repository at `location` (a directory, an http(s) URL or an s3:// store) straight from the
 * store and verifies it. Resolves the report when there is no problem; rejects with VerifyFailedError
 * (its report lists them) when there are, including a manifest or whitelist that cannot be trusted.
 */
export async function verifyAt(location: string, options: OpenOptions & VerifyOptions): Promise<VerifyReport> {
  const source = openStoreSource(location);
  let reader: RepositoryReader;
  try {
    reader = await RepositoryReader.open(source, options);
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    const key = typeof err.data?.object === 'string' ? err.data.object : MANIFEST_KEY;
    const report: VerifyReport = {
      fqrn: options.fqrn, location: source.description, revision: null, catalogs: 0, entries: 0, objects: 0, bytes: 0,
      tags: [], warnings: [], truncated: false, problems: [{ key, code: err.code, message: err.message, paths: [], morePaths: 0 }],
    };
    throw new VerifyFailedError(report, err.code, err.message);
  }
  try {
    return await verifyRepository(reader, options);
  } finally {
    reader.close();
  }
}

export async function verifyRepository(reader: RepositoryReader, options: VerifyOptions | ((p: VerifyProgress) => void) = {}): Promise<VerifyReport> {
  const { onProgress, maxProblems = DEFAULT_MAX_PROBLEMS } = typeof options === 'function' ? { onProgress: options } : options;
  if (!Number.isInteger(maxProblems) || maxProblems < 1) throw new RefusedError('bad-option', `maxProblems must be a positive integer, got ${maxProblems}`);
  const source = reader.source;
  if (source instanceof CachedSource) {
    throw new RefusedError('verify-through-cache', 'verify must read the store itself: open the reader without a local object cache');
  }
  const manifest = reader.manifest;
  // An older revision (opened `at` a tag or revision) is verified from its own root; the head's history
  // and reflog are still the ones the manifest names.
  const atHead = reader.rootHash.equals(manifest.rootCatalog);
  const progress: VerifyProgress = { catalogs: 0, entries: 0, objects: 0, bytes: 0 };
  const problems: VerifyProblem[] = [];
  let truncated = false;
  /** A store or network failure: not a finding about the repository, so verification cannot go on. */
  let fatal: unknown;

  const problem = (key: string, code: string, message: string, paths: string[] = []): VerifyProblem | undefined => {
    if (problems.length >= maxProblems) {
      truncated = true;
      return undefined;
    }
    // `paths` stays live while the object is being checked (references met meanwhile join it); capped after.
    const p = { key, code, message, paths, morePaths: 0 };
    problems.push(p);
    return p;
  };
  const capPaths = (p: VerifyProblem) => {
    p.morePaths += Math.max(0, p.paths.length - MAX_PATHS_PER_PROBLEM);
    p.paths = p.paths.slice(0, MAX_PATHS_PER_PROBLEM);
  };
  const stopIfDone = () => {
    if (fatal !== undefined) throw fatal;
    if (truncated) throw new Stop();
  };
  const addPath = (p: VerifyProblem, path: string) => {
    if (p.paths.length < MAX_PATHS_PER_PROBLEM) p.paths.push(path);
    else p.morePaths++;
  };

  /** The stored bytes of `key`, checked against `hash`; null after recording why there are none. */
  const fetchVerified = async (hash: ContentHash, suffix: ObjectSuffix, paths: string[]): Promise<Buffer | null> => {
    const key = hash.objectKey(suffix);
    const got = await source.get(key);
    if (!got) {
      problem(key, 'missing-object', 'missing from the store', paths);
      return null;
    }
    try {
      verifyObject(key, hash, got.body);
    } catch (err) {
      problem(key, 'corrupt-object', (err as Error).message, paths);
      return null;
    }
    return got.body;
  };

  // Each object is fetched once; later references to a bad one add their path to its problem.
  const checked = new Set<string>();
  const pendingPaths = new Map<string, string[]>();
  const bad = new Map<string, VerifyProblem>();
  const fetches = new Slots(PARALLEL_FETCHES);

  const checkObject = async (hash: ContentHash, suffix: '' | 'P', size: number, compression: 'zlib' | 'none', path: string): Promise<void> => {
    const key = hash.objectKey(suffix);
    if (checked.has(key)) {
      const known = bad.get(key);
      if (known) addPath(known, path);
      else pendingPaths.get(key)?.push(path);
      return;
    }
    checked.add(key);
    const paths = [path];
    pendingPaths.set(key, paths);
    const countBefore = problems.length;
    try {
      const stored = await fetchVerified(hash, suffix, paths);
      if (stored) {
        let length: number | undefined;
        try {
          length = compression === 'none' ? stored.length : decompressObject(stored, `object ${key}`).length;
        } catch (err) {
          problem(key, 'corrupt-object', (err as Error).message, paths);
        }
        if (length !== undefined && length !== size) problem(key, 'wrong-size', `holds ${length} bytes, the catalog says ${size}`, paths);
        progress.objects++;
        progress.bytes += stored.length;
      }
      for (const p of problems.slice(countBefore)) {
        capPaths(p);
        bad.set(key, p);
      }
    } catch (err) {
      fatal ??= err;
    } finally {
      pendingPaths.delete(key);
    }
  };

  // The catalogs are visited by the shared walk (repo/catalog-walk.ts), each catalog and object once,
  // its state in a scratch file. Subtree statistics are compared at the end, from each catalog's totals.
  const totals = new Map<string, { mountpoint: string; stored: Counters; subtree: Counters; children: string[] }>();
  const unreadableKeys = new Set<string>();
  const catalogDefect = (key: string, mountpoint: string, msg: string, path = mountpoint) => {
    problem(key, 'bad-catalog', `catalog of '${shown(mountpoint)}': ${msg}`, [shown(path)]);
    stopIfDone();
  };
  const load: CatalogLoader = async (hash) => {
    const key = hash.objectKey('C');
    const got = await source.get(key);
    if (!got) throw new CatalogUnreadable('missing-object', 'missing from the store');
    try {
      verifyObject(key, hash, got.body);
    } catch (err) {
      throw new CatalogUnreadable('corrupt-object', (err as Error).message);
    }
    try {
      const bytes = decompressObject(got.body, `catalog ${key}`);
      return { db: CatalogDb.fromBytes(bytes), size: bytes.length };
    } catch (err) {
      throw new CatalogUnreadable('bad-catalog', (err as Error).message);
    }
  };
  const visitor: WalkVisitor = {
    unreadable: (hash, mountpoint, err) => {
      const key = hash.objectKey('C');
      unreadableKeys.add(key);
      if (!(err instanceof CatalogUnreadable)) {
        // A store or network failure is not a finding about the repository: verification cannot go on.
        fatal ??= err;
        throw err;
      }
      if (err.code === 'bad-catalog') catalogDefect(key, mountpoint, err.message);
      else problem(key, err.code, err.message, [shown(mountpoint)]);
      stopIfDone();
    },
    catalog: ({ key, db, mountpoint, size, expectedSize }) => {
      const defect = (msg: string, path = mountpoint) => catalogDefect(key, mountpoint, msg, path);
      if (expectedSize !== undefined && size !== expectedSize) defect(`uncompressed size is ${size}, its parent says ${expectedSize}`);
      if (db.property('schema') !== '2.5') defect(`schema is '${db.property('schema')}', expected 2.5`);
      if (db.rootPrefix !== mountpoint) defect(`root_prefix is '${db.rootPrefix}'`);
      const root = db.lookup(mountpoint);
      if (!root || kindOfMode(root.mode) !== 'directory') defect('has no root directory entry');
      else if (mountpoint !== '' && !(root.extraFlags & FLAG.nestedRoot)) defect('root entry lacks the nested-root flag');
      if (mountpoint === '' && atHead && db.property('last_modified') !== undefined && Number(db.property('last_modified')) > manifest.publishedAt) {
        defect('last_modified is later than the manifest timestamp');
      }
      const counters = db.readCounters();
      const selfProblem = sameCounters(db.computeSelfCounters(), counters.self);
      if (selfProblem) defect(`statistics self_${selfProblem}`);
      const nestedRefs = new Map(db.nestedCatalogs().map((r) => [r.path, r]));
      for (const ref of nestedRefs.values()) {
        const entry = db.lookup(ref.path);
        if (!entry || !(entry.extraFlags & FLAG.nestedMountpoint)) defect(`nested catalog ${ref.path} has no mountpoint entry`, ref.path);
      }
      for (const { path, entry } of db.walk()) {
        progress.entries++;
        if (entry.extraFlags & FLAG.nestedMountpoint && !nestedRefs.has(path)) defect(`mountpoint ${path} has no nested catalog reference`, path);
        if (kindOfMode(entry.mode) !== 'file' || entry.extraFlags & FLAG.external) continue;
        if (entry.extraFlags & FLAG.chunked) {
          let offset = 0;
          for (const c of db.chunks(path, entry.chunkAlgorithm ?? manifest.rootCatalog.algorithm)) {
            if (c.offset !== offset) defect(`chunks of ${path} are not contiguous at ${offset}`, path);
            offset = c.offset + c.size;
          }
          if (offset !== entry.size) defect(`chunks of ${path} cover ${offset} bytes, the file has ${entry.size}`, path);
        } else if (!entry.hash) {
          defect(`regular file ${path} has no content hash`, path);
        }
      }
      totals.set(key, {
        mountpoint, stored: addCounters(counters.self, counters.subtree), subtree: counters.subtree,
        children: [...nestedRefs.values()].map((r) => r.hash.objectKey('C')),
      });
      progress.catalogs++;
    },
    object: async (ref) => {
      await fetches.start(() => checkObject(ref.hash, ref.suffix, ref.size, ref.compression, ref.path));
      stopIfDone();
    },
    again: (ref) => {
      const known = bad.get(ref.key);
      if (known) addPath(known, ref.path);
      else pendingPaths.get(ref.key)?.push(ref.path);
    },
    settle: async () => {
      await fetches.settled();
      stopIfDone();
      onProgress?.({ ...progress });
    },
  };
  const scratch = ScratchSpace.create();
  const walk = CatalogWalk.open(scratch.file());
  const walkCatalogs = async () => {
    walk.addRoots([{ hash: reader.rootHash, size: atHead ? manifest.rootCatalogSize : undefined }]);
    await walk.step(load, visitor);
    for (const [key, t] of totals) {
      // Totals of a subtree with a catalog that could not be read cannot be compared; its problem is listed.
      let sum: Counters | null = zeroCounters();
      for (const child of t.children) {
        const c = totals.get(child);
        sum = c && sum ? addCounters(sum, c.stored) : null;
      }
      const subtreeProblem = sum && sameCounters(sum, t.subtree);
      if (subtreeProblem) catalogDefect(key, t.mountpoint, `statistics subtree_${subtreeProblem}`);
    }
  };

  let tags: string[] = [];
  const warnings: string[] = [];
  try {
    await walkCatalogs();
    if (manifest.history) {
      const key = manifest.history.objectKey('H');
      const stored = await fetchVerified(manifest.history, 'H', []);
      stopIfDone();
      if (stored) {
        try {
          tags = readHistory(decompressObject(stored, `history ${key}`)).tags.map((t) => t.name);
        } catch (err) {
          problem(key, 'bad-history', `history: ${(err as Error).message}`);
        }
      }
    }
    if (manifest.reflog) checkReflog(await source.get(REFLOG_KEY), manifest.reflog, manifest.rootCatalog, problem, warnings);
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
  } finally {
    // Checks still running record nothing that matters now, but must not outlive the call.
    await fetches.settled();
    walk.close();
    scratch.dispose();
  }

  const report: VerifyReport = { ...progress, fqrn: manifest.fqrn, location: source.description, revision: atHead ? manifest.revision : reader.revision, tags, warnings, problems, truncated };
  if (problems.length > 0) throw new VerifyFailedError(report);
  return report;
}

/**
 * The reflog is written before the manifest (so it always lists every published root catalog); between
 * the two writes, or after an interrupted publish, its checksum is ahead of the manifest's until the
 * next publish. That is only wrong if the reflog lost the published root.
 */
export function checkReflog(got: { body: Buffer } | null, expected: ContentHash, rootCatalog: ContentHash,
  problem: (key: string, code: string, message: string) => unknown, warnings: string[]): void {
  if (!got) {
    problem(REFLOG_KEY, 'bad-reflog', `the manifest names a reflog but ${REFLOG_KEY} is missing`);
    return;
  }
  if (ContentHash.of(expected.algorithm, got.body).equals(expected)) return;
  let refs: ReturnType<typeof readReflog>['refs'];
  try {
    refs = readReflog(got.body).refs;
  } catch (err) {
    problem(REFLOG_KEY, 'bad-reflog', `${REFLOG_KEY}: ${(err as Error).message}`);
    return;
  }
  if (!refs.some((r) => r.type === 'catalog' && r.hash.equals(rootCatalog))) {
    problem(REFLOG_KEY, 'bad-reflog', `${REFLOG_KEY} does not match the manifest's reflog hash and lacks the root catalog`);
    return;
  }
  warnings.push(`${REFLOG_KEY} is newer than the manifest's reflog hash (a publish is running or was interrupted); the next publish rewrites it`);
}
