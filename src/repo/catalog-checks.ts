// What one catalog must be on its own, whatever references it: the checks `check` runs on every catalog
// the walk visits (schema, root entry, root_prefix, size against its reference, its own statistics,
// nested mountpoints against nested references, chunk lists). A parent's subtree statistics need its
// children's totals, which the walk meets later: `subtreeMismatch` compares them once they are known.
import { COUNTER_NAMES, type CatalogDb, type Counters } from '../format/catalog-db.js';
import { FLAG, kindOfMode } from '../format/catalog-entry.js';
import type { HashAlgorithm } from '../format/hash.js';

export interface CatalogDefect {
  /** The repository path the defect is about ('/' for the root). */
  path: string;
  message: string;
}

export const shownPath = (path: string): string => path || '/';

/** The first counter that differs, said as `<name> is <actual>, expected <expected>`, or null. */
export function counterMismatch(expected: Counters, actual: Counters): string | null {
  for (const n of COUNTER_NAMES) if (expected[n] !== actual[n]) return `${n} is ${actual[n]}, expected ${expected[n]}`;
  return null;
}

/** Counters as a compact array (COUNTER_NAMES order), for records kept in the control area. */
export function countersToArray(c: Counters): number[] {
  return COUNTER_NAMES.map((n) => c[n]);
}

export function countersFromArray(a: readonly number[]): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, a[i] ?? 0])) as Counters;
}

export interface CatalogFacts {
  mountpoint: string;
  /** Uncompressed size as stored. */
  size: number;
  /** Size its reference (parent or manifest) gives, when one does. */
  expectedSize?: number;
  algorithm: HashAlgorithm;
}

/** Every defect of the catalog itself; reads its rows once. */
export function catalogDefects(db: CatalogDb, facts: CatalogFacts): CatalogDefect[] {
  const { mountpoint } = facts;
  const out: CatalogDefect[] = [];
  const defect = (message: string, path = mountpoint) => out.push({ path: shownPath(path), message });
  if (facts.expectedSize !== undefined && facts.size !== facts.expectedSize) defect(`uncompressed size is ${facts.size}, its reference says ${facts.expectedSize}`);
  if (db.property('schema') !== '2.5') defect(`schema is '${db.property('schema')}', expected 2.5`);
  if (db.rootPrefix !== mountpoint) defect(`root_prefix is '${db.rootPrefix}'`);
  const root = db.lookup(mountpoint);
  if (!root || kindOfMode(root.mode) !== 'directory') defect('has no root directory entry');
  else if (mountpoint !== '' && !(root.extraFlags & FLAG.nestedRoot)) defect('root entry lacks the nested-root flag');
  const selfProblem = counterMismatch(db.computeSelfCounters(), db.readCounters().self);
  if (selfProblem) defect(`statistics self_${selfProblem}`);

  const nestedRefs = new Set(db.nestedCatalogs().map((r) => r.path));
  const mountpoints = new Set<string>();
  for (const { path, entry } of db.walk()) {
    if (entry.extraFlags & FLAG.nestedMountpoint) {
      mountpoints.add(path);
      if (!nestedRefs.has(path)) defect(`mountpoint ${path} has no nested catalog reference`, path);
    }
    if (kindOfMode(entry.mode) !== 'file' || entry.extraFlags & FLAG.external) continue;
    if (entry.extraFlags & FLAG.chunked) {
      let offset = 0;
      let contiguous = true;
      for (const c of db.chunks(path, entry.chunkAlgorithm ?? facts.algorithm)) {
        if (c.offset !== offset && contiguous) {
          defect(`chunks of ${path} are not contiguous at ${offset}`, path);
          contiguous = false;
        }
        offset = c.offset + c.size;
      }
      if (offset !== entry.size) defect(`chunks of ${path} cover ${offset} bytes, the file has ${entry.size}`, path);
    } else if (!entry.hash) {
      defect(`regular file ${path} has no content hash`, path);
    }
  }
  for (const p of nestedRefs) if (!mountpoints.has(p)) defect(`nested catalog ${p} has no mountpoint entry`, p);
  return out;
}
