// Full check of a repository: every catalog of the current tree (hash, size, schema, root entry,
// nested references, statistics) and every object it references (hash, zlib stream, size), plus the
// history and reflog named by the manifest. Stops at the first problem and names the object.
import { ContentHash } from '../format/hash.js';
import { addCounters, COUNTER_NAMES, zeroCounters, type CatalogDb, type Counters } from '../format/catalog-db.js';
import { FLAG, kindOfMode } from '../format/catalog-entry.js';
import { decompressObject } from '../format/zlib-object.js';
import { readHistory } from '../format/history.js';
import { readReflog } from '../format/reflog.js';
import { fetchCatalog, fetchObjectContent, fetchStoredObject } from '../repo/objects.js';
import { REFLOG_KEY } from '../repo/repository.js';
import { RepositoryReader, VerificationError } from './reader.js';

export interface VerifyProgress {
  catalogs: number;
  entries: number;
  objects: number;
  bytes: number;
}

export interface VerifyReport extends VerifyProgress {
  revision: number;
  tags: string[];
  /** Findings that do not make the repository wrong for clients. */
  warnings: string[];
}

const PARALLEL_FETCHES = 16;

function sameCounters(a: Counters, b: Counters): string | null {
  for (const n of COUNTER_NAMES) if (a[n] !== b[n]) return `${n} is ${b[n]}, expected ${a[n]}`;
  return null;
}

export async function verifyRepository(reader: RepositoryReader, onProgress?: (p: VerifyProgress) => void): Promise<VerifyReport> {
  const source = reader.source;
  const manifest = reader.manifest;
  const progress: VerifyProgress = { catalogs: 0, entries: 0, objects: 0, bytes: 0 };
  const checked = new Set<string>();
  let inFlight: Promise<void>[] = [];

  const checkObject = async (hash: ContentHash, suffix: '' | 'P', size: number | null, compression: 'zlib' | 'none', path: string) => {
    const key = hash.objectKey(suffix);
    if (checked.has(key)) return;
    checked.add(key);
    const stored = await fetchStoredObject(source, hash, suffix).catch((err: Error) => {
      throw new VerificationError(`${err.message} (referenced by ${path})`, key);
    });
    const content = compression === 'none' ? stored : (() => {
      try {
        return decompressObject(stored, `object ${key}`);
      } catch (err) {
        throw new VerificationError(`${(err as Error).message} (referenced by ${path})`, key);
      }
    })();
    if (size !== null && content.length !== size) {
      throw new VerificationError(`object ${key} holds ${content.length} bytes, catalog says ${size} for ${path}`, key);
    }
    progress.objects++;
    progress.bytes += stored.length;
  };

  const queue = async (p: Promise<void>) => {
    inFlight.push(p);
    if (inFlight.length >= PARALLEL_FETCHES) {
      const batch = inFlight;
      inFlight = [];
      await Promise.all(batch);
    }
  };

  const verifyCatalog = async (hash: ContentHash, mountpoint: string, expectedSize: number | undefined): Promise<Counters> => {
    const key = hash.objectKey('C');
    let db: CatalogDb;
    let size: number;
    try {
      ({ db, size } = await fetchCatalog(source, hash));
    } catch (err) {
      throw new VerificationError(`catalog of '${mountpoint || '/'}': ${(err as Error).message}`, key);
    }
    try {
      const fail = (msg: string) => { throw new VerificationError(`catalog ${key} ('${mountpoint || '/'}'): ${msg}`, key); };
      if (expectedSize !== undefined && size !== expectedSize) fail(`uncompressed size is ${size}, its parent says ${expectedSize}`);
      if (db.property('schema') !== '2.5') fail(`schema is '${db.property('schema')}', expected 2.5`);
      if (db.rootPrefix !== mountpoint) fail(`root_prefix is '${db.rootPrefix}'`);
      const root = db.lookup(mountpoint);
      if (!root || kindOfMode(root.mode) !== 'directory') fail('has no root directory entry');
      if (mountpoint !== '' && !(root!.extraFlags & FLAG.nestedRoot)) fail('root entry lacks the nested-root flag');
      if (mountpoint === '' && db.property('last_modified') !== undefined && Number(db.property('last_modified')) > manifest.publishedAt) {
        fail('last_modified is later than the manifest timestamp');
      }
      const stored = db.readCounters();
      const selfProblem = sameCounters(db.computeSelfCounters(), stored.self);
      if (selfProblem) fail(`statistics self_${selfProblem}`);
      progress.catalogs++;

      const nestedRefs = new Map(db.nestedCatalogs().map((r) => [r.path, r]));
      for (const { path, entry } of db.walk()) {
        progress.entries++;
        if (entry.extraFlags & FLAG.nestedMountpoint && !nestedRefs.has(path)) fail(`mountpoint ${path} has no nested catalog reference`);
        if (kindOfMode(entry.mode) !== 'file' || entry.extraFlags & FLAG.external) continue;
        if (entry.extraFlags & FLAG.chunked) {
          let offset = 0;
          for (const c of db.chunks(path, entry.chunkAlgorithm ?? hash.algorithm)) {
            if (c.offset !== offset) fail(`chunks of ${path} are not contiguous at ${offset}`);
            offset += c.size;
            await queue(checkObject(c.hash, 'P', c.size, entry.compression, path));
          }
          if (offset !== entry.size) fail(`chunks of ${path} cover ${offset} bytes, file has ${entry.size}`);
          // A legacy bulk object (CVMFS_GENERATE_LEGACY_BULK_CHUNKS) must hold the whole file too.
          if (entry.hash) await queue(checkObject(entry.hash, '', entry.size, entry.compression, path));
        } else if (entry.hash) {
          await queue(checkObject(entry.hash, '', entry.size, entry.compression, path));
        } else {
          fail(`regular file ${path} has no content hash`);
        }
        if (progress.entries % 2000 === 0) onProgress?.({ ...progress });
      }
      await Promise.all(inFlight.splice(0));

      let subtree = zeroCounters();
      for (const ref of nestedRefs.values()) {
        const entry = db.lookup(ref.path);
        if (!entry || !(entry.extraFlags & FLAG.nestedMountpoint)) fail(`nested catalog ${ref.path} has no mountpoint entry`);
        subtree = addCounters(subtree, await verifyCatalog(ref.hash, ref.path, ref.size));
      }
      const subtreeProblem = sameCounters(subtree, stored.subtree);
      if (subtreeProblem) fail(`statistics subtree_${subtreeProblem}`);
      onProgress?.({ ...progress });
      return addCounters(stored.self, stored.subtree);
    } finally {
      db.close();
    }
  };

  await verifyCatalog(manifest.rootCatalog, '', manifest.rootCatalogSize);

  let tags: string[] = [];
  const warnings: string[] = [];
  if (manifest.history) {
    const key = manifest.history.objectKey('H');
    try {
      tags = readHistory(await fetchObjectContent(source, manifest.history, 'H')).tags.map((t) => t.name);
    } catch (err) {
      throw new VerificationError(`history: ${(err as Error).message}`, key);
    }
  }
  if (manifest.reflog) {
    const got = await source.get(REFLOG_KEY);
    if (!got) throw new VerificationError(`manifest names a reflog but ${REFLOG_KEY} is missing`, REFLOG_KEY);
    if (!ContentHash.of(manifest.reflog.algorithm, got.body).equals(manifest.reflog)) {
      // The reflog is written before the manifest (so it always lists every published root catalog);
      // between the two writes, or after an interrupted publish, its checksum is ahead of the manifest's
      // until the next publish. That is only wrong if the reflog lost the published root.
      let refs: ReturnType<typeof readReflog>['refs'];
      try {
        refs = readReflog(got.body).refs;
      } catch (err) {
        throw new VerificationError(`${REFLOG_KEY}: ${(err as Error).message}`, REFLOG_KEY);
      }
      if (!refs.some((r) => r.type === 'catalog' && r.hash.equals(manifest.rootCatalog))) {
        throw new VerificationError(`${REFLOG_KEY} does not match the manifest's reflog hash and lacks the root catalog`, REFLOG_KEY);
      }
      warnings.push(`${REFLOG_KEY} is newer than the manifest's reflog hash (a publish is running or was interrupted); the next publish rewrites it`);
    }
  }
  return { ...progress, revision: manifest.revision, tags, warnings };
}
