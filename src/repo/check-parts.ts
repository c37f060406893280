// The findings of a check, kept in the control area instead of memory: each slice of the check chain
// writes one immutable part (its problems, later paths of objects already found bad, and the statistics
// records from which subtree counters are compared at the end), and the chain state names the parts of
// the winning deliveries only. The report merges them.
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CONTROL_PREFIX, type ObjectStore } from '../store/object-store.js';

export const CHECK_PREFIX = `${CONTROL_PREFIX}check/`;

/** The same shape as verify's problems (client/verify.ts VerifyProblem). */
export interface CheckProblem {
  key: string;
  code: string;
  message: string;
  paths: string[];
  morePaths: number;
}

export interface CheckPart {
  problems: CheckProblem[];
  /** More paths of objects found bad in earlier slices. */
  paths: { key: string; paths: string[]; morePaths: number }[];
  /** A visited catalog's stored totals (self + subtree), COUNTER_NAMES order. */
  totals: { key: string; total: number[] }[];
  /** A visited catalog's stored subtree counters and the catalogs they must sum up. */
  expects: { key: string; mountpoint: string; subtree: number[]; children: string[] }[];
}

export const MAX_PATHS_PER_PROBLEM = 20;

export function checkKeys(id: string) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new Error(`bad check id '${id}'`);
  const prefix = `${CHECK_PREFIX}${id}/`;
  return { prefix, state: `${prefix}state.json`, walk: `${prefix}walk/`, parts: `${prefix}parts/` };
}

export function emptyPart(): CheckPart {
  return { problems: [], paths: [], totals: [], expects: [] };
}

export function partIsEmpty(p: CheckPart): boolean {
  return p.problems.length === 0 && p.paths.length === 0 && p.totals.length === 0 && p.expects.length === 0;
}

export async function writePart(store: ObjectStore, id: string, index: number, part: CheckPart): Promise<string> {
  const name = `part-${String(index).padStart(6, '0')}-${randomBytes(6).toString('hex')}`;
  await store.put(`${checkKeys(id).parts}${name}`, gzipSync(Buffer.from(JSON.stringify(part))), { ifNoneMatch: '*' });
  return name;
}

export async function readPart(store: ObjectStore, id: string, name: string): Promise<CheckPart> {
  const key = `${checkKeys(id).parts}${name}`;
  const got = await store.get(key);
  if (!got) throw new Error(`check part ${key} is missing: the check's state names it`);
  return JSON.parse(gunzipSync(got.body).toString('utf8')) as CheckPart;
}

/** Adds `path` to a problem, keeping at most MAX_PATHS_PER_PROBLEM and counting the rest. */
export function addPath(p: { paths: string[]; morePaths: number }, path: string): void {
  if (p.paths.includes(path)) return;
  if (p.paths.length < MAX_PATHS_PER_PROBLEM) p.paths.push(path);
  else p.morePaths++;
}

/** Every problem of the parts, one per (key, code, message), with the paths of all parts merged. */
export async function mergeProblems(store: ObjectStore, id: string, parts: readonly string[]): Promise<CheckProblem[]> {
  const byId = new Map<string, CheckProblem>();
  const byKey = new Map<string, CheckProblem[]>();
  const later: CheckPart['paths'] = [];
  for (const name of parts) {
    const part = await readPart(store, id, name);
    for (const p of part.problems) {
      const k = `${p.key}\n${p.code}\n${p.message}`;
      const known = byId.get(k);
      if (known) {
        for (const path of p.paths) addPath(known, path);
        known.morePaths += p.morePaths;
        continue;
      }
      const copy = { ...p, paths: [...p.paths] };
      byId.set(k, copy);
      byKey.set(p.key, [...(byKey.get(p.key) ?? []), copy]);
    }
    later.push(...part.paths);
  }
  for (const extra of later) {
    for (const p of byKey.get(extra.key) ?? []) {
      for (const path of extra.paths) addPath(p, path);
      p.morePaths += extra.morePaths;
    }
  }
  return [...byId.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.code.localeCompare(b.code)));
}

/** Deletes everything under the check's prefix (a new check starts from nothing). */
export async function dropCheck(store: ObjectStore, id: string): Promise<void> {
  const prefix = checkKeys(id).prefix;
  for (;;) {
    const page = await store.list(prefix, { limit: 1000 });
    if (page.objects.length === 0) return;
    await store.delete(page.objects.map((o) => o.key));
  }
}

/** Deletes parts a superseded delivery wrote (the state does not name them). */
export async function dropUnnamedParts(store: ObjectStore, id: string, named: readonly string[]): Promise<void> {
  const prefix = checkKeys(id).parts;
  const keep = new Set(named.map((n) => `${prefix}${n}`));
  let after: string | undefined;
  for (;;) {
    const page = await store.list(prefix, { after, limit: 1000 });
    const stale = page.objects.map((o) => o.key).filter((k) => !keep.has(k));
    if (stale.length > 0) await store.delete(stale);
    if (!page.next) return;
    after = page.next;
  }
}

/**
 * Compares each visited catalog's subtree statistics with the sum of its nested catalogs' totals, from
 * the records of every part, joined in a scratch SQLite file (`file`) rather than in memory. A catalog
 * whose child could not be read is skipped: that child's own problem is already listed.
 */
export async function subtreeProblems(store: ObjectStore, id: string, parts: readonly string[], file: string,
  mismatch: (expected: number[], actual: number[]) => string | null): Promise<CheckProblem[]> {
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(file);
  try {
    db.exec(`PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
      CREATE TABLE totals (key TEXT PRIMARY KEY, total TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE expects (key TEXT PRIMARY KEY, mountpoint TEXT NOT NULL, subtree TEXT NOT NULL, children TEXT NOT NULL) WITHOUT ROWID;`);
    const addTotal = db.prepare('INSERT OR IGNORE INTO totals (key, total) VALUES (?, ?)');
    const addExpect = db.prepare('INSERT OR IGNORE INTO expects (key, mountpoint, subtree, children) VALUES (?, ?, ?, ?)');
    for (const name of parts) {
      const part = await readPart(store, id, name);
      db.transaction(() => {
        for (const t of part.totals) addTotal.run(t.key, JSON.stringify(t.total));
        for (const e of part.expects) addExpect.run(e.key, e.mountpoint, JSON.stringify(e.subtree), JSON.stringify(e.children));
      })();
    }
    const totalOf = db.prepare('SELECT total FROM totals WHERE key = ?');
    const out: CheckProblem[] = [];
    for (const e of db.prepare('SELECT key, mountpoint, subtree, children FROM expects ORDER BY key').iterate() as Iterable<{ key: string; mountpoint: string; subtree: string; children: string }>) {
      const stored = JSON.parse(e.subtree) as number[];
      const sum = stored.map(() => 0);
      let complete = true;
      for (const child of JSON.parse(e.children) as string[]) {
        const row = totalOf.get(child) as { total: string } | undefined;
        if (!row) {
          complete = false;
          break;
        }
        (JSON.parse(row.total) as number[]).forEach((v, i) => { sum[i] = (sum[i] ?? 0) + v; });
      }
      const why = complete ? mismatch(sum, stored) : null;
      const shown = e.mountpoint || '/';
      if (why) out.push({ key: e.key, code: 'bad-catalog', message: `catalog of '${shown}': statistics subtree_${why}`, paths: [shown], morePaths: 0 });
    }
    return out;
  } finally {
    db.close();
  }
}
