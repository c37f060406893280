// One walk over the catalogs reachable from a set of roots (revisions, nested catalogs, chunk lists),
// shared by verify, check, the mark phase of gc and replication. Each catalog and each object is visited
// once however many paths reference it, and nothing grows in memory with the repository: the frontier
// (catalogs still to visit) and the set of objects already met live in a scratch SQLite file. A walk is
// resumable because its whole state is that file: visiting a catalog marks it done in the same
// transaction that records the objects it references, so a walk killed anywhere repeats at most the
// catalog it was in. A chain that hands over between sandboxes carries the state as a log of segments
// (walk-log.ts), replayed into a new file where the sandbox has none.
import Database from 'better-sqlite3';
import { CatalogDb } from '../format/catalog-db.js';
import { FLAG, kindOfMode, type DirectoryEntry } from '../format/catalog-entry.js';
import { ContentHash } from '../format/hash.js';

export interface WalkRoot {
  hash: ContentHash;
  /** '' for a root catalog; a nested catalog's mountpoint otherwise. */
  mountpoint?: string;
  /** Expected uncompressed size, when a parent or the manifest names it. */
  size?: number;
}

/** A catalog as the walk reached it, open for reading during `catalog()`; closed afterwards. */
export interface CatalogVisit {
  hash: ContentHash;
  key: string;
  mountpoint: string;
  db: CatalogDb;
  /** Uncompressed size. */
  size: number;
  /** Size the referencing parent (or root) gave, if any. */
  expectedSize?: number;
}

/** A data object or chunk referenced by a catalog entry. */
export interface ObjectRef {
  key: string;
  hash: ContentHash;
  suffix: '' | 'P';
  /** Uncompressed size the catalog gives (a chunk's own size). */
  size: number;
  compression: 'zlib' | 'none';
  /** Repository path of the file that references it. */
  path: string;
  /** Key of the catalog holding the reference. */
  catalog: string;
}

export interface WalkVisitor {
  /** Once per distinct catalog, before its objects. */
  catalog?(visit: CatalogVisit): void | Promise<void>;
  /** Once per distinct object: its first reference. */
  object?(ref: ObjectRef): void | Promise<void>;
  /** A later reference to an object already met (check lists more paths of a bad object). */
  again?(ref: ObjectRef): void;
  /** A catalog that could not be read; the walk goes on without what lies below it. */
  unreadable?(hash: ContentHash, mountpoint: string, error: Error): void | Promise<void>;
  /**
   * After a catalog's `object()` calls, before the catalog is marked visited: work the visitor started for
   * those objects (copies in flight) must end here, since a walk resumed later will not offer them again.
   */
  settle?(visit: CatalogVisit): Promise<void>;
}

/**
 * Reads a catalog; throws when it is missing or not a catalog. Null means the walk need not look at it
 * nor below it (replication: the replica holds it, with everything below).
 */
export type CatalogLoader = (hash: ContentHash) => Promise<{ db: CatalogDb; size: number } | null>;

/** What one call of `step` did, and what is left. */
export interface WalkProgress {
  catalogs: number;
  entries: number;
  objects: number;
  pending: number;
  done: boolean;
}

/** The rows one catalog's visit added: what a chain logs so that another sandbox can rebuild the walk. */
export interface WalkDelta {
  /** Catalog keys newly known, with their mountpoint and expected size. */
  catalogs: { key: string; mountpoint: string; size: number | null }[];
  /** Object keys newly marked. */
  marked: string[];
  /** Catalog keys visited. */
  visited: string[];
}

/** The content hash of a catalog's store key `data/XX/rest…C`. */
export function hashOfKey(key: string): ContentHash {
  const m = /^data\/([0-9a-f]{2})\/(.+)$/.exec(key);
  if (!m) throw new Error(`not an object key: '${key}'`);
  return ContentHash.fromObjectName(m[1]! + m[2]!).hash;
}

export class CatalogWalk {
  private readonly stmt: {
    addCatalog: Database.Statement; mark: Database.Statement; has: Database.Statement; next: Database.Statement;
    done: Database.Statement; pending: Database.Statement; count: Database.Statement; keysAfter: Database.Statement; log: Database.Statement;
  };
  /** Replaying a logged delta must not log it again. */
  private replaying = false;

  private constructor(private readonly db: Database.Database) {
    db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192;
      CREATE TABLE IF NOT EXISTS catalogs (key TEXT PRIMARY KEY, mountpoint TEXT NOT NULL, size INTEGER, visited INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS catalogs_pending ON catalogs (visited, key);
      CREATE TABLE IF NOT EXISTS marked (key TEXT PRIMARY KEY) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, mountpoint TEXT, size INTEGER);`);
    this.stmt = {
      addCatalog: db.prepare('INSERT OR IGNORE INTO catalogs (key, mountpoint, size) VALUES (?, ?, ?)'),
      mark: db.prepare('INSERT OR IGNORE INTO marked (key) VALUES (?)'),
      has: db.prepare('SELECT 1 FROM marked WHERE key = ?'),
      next: db.prepare('SELECT key, mountpoint, size FROM catalogs WHERE visited = 0 ORDER BY key LIMIT 1'),
      done: db.prepare('UPDATE catalogs SET visited = 1 WHERE key = ?'),
      pending: db.prepare('SELECT count(*) AS n FROM catalogs WHERE visited = 0'),
      count: db.prepare('SELECT count(*) AS n FROM marked'),
      keysAfter: db.prepare('SELECT key FROM marked WHERE key > ? ORDER BY key LIMIT ?'),
      log: db.prepare('INSERT INTO log (kind, key, mountpoint, size) VALUES (?, ?, ?, ?)'),
    };
  }

  /** Opens the walk kept in `file` (created empty when it does not exist), or in memory. */
  static open(file = ':memory:'): CatalogWalk {
    return new CatalogWalk(new Database(file));
  }

  /** Adds catalogs to visit; catalogs already known are not visited again. */
  addRoots(roots: readonly WalkRoot[]): void {
    this.db.transaction(() => {
      for (const r of roots) this.addCatalog(r.hash.objectKey('C'), r.mountpoint ?? '', r.size ?? null);
    })();
  }

  /** Marks keys that are not catalog entries (history, certificate, meta-info); true for each new one. */
  mark(keys: readonly string[]): boolean[] {
    return this.db.transaction(() => keys.map((k) => this.markKey(k)))();
  }

  has(key: string): boolean {
    return this.stmt.has.get(key) !== undefined;
  }

  /** Up to `limit` marked keys after `after` in byte order (gc compares them with the store's listing). */
  markedAfter(after: string, limit = 1000): string[] {
    return (this.stmt.keysAfter.all(after, limit) as { key: string }[]).map((r) => r.key);
  }

  /**
   * Catalogs the walk has opened or skipped, deepest mountpoint first (a nested catalog before the one
   * that mounts it), `limit` of them from position `offset`: replication stores them in this order.
   */
  catalogsDeepestFirst(offset: number, limit: number): { key: string; mountpoint: string }[] {
    return this.db.prepare(`SELECT key, mountpoint FROM catalogs WHERE visited = 1
      ORDER BY length(mountpoint) - length(replace(mountpoint, '/', '')) DESC, key LIMIT ? OFFSET ?`).all(limit, offset) as { key: string; mountpoint: string }[];
  }

  get markedCount(): number {
    return (this.stmt.count.get() as { n: number }).n;
  }

  get pendingCount(): number {
    return (this.stmt.pending.get() as { n: number }).n;
  }

  get done(): boolean {
    return this.pendingCount === 0;
  }

  /** A value kept with the walk (a chain's bookkeeping, e.g. how many log segments it holds). */
  meta(name: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  }

  setMeta(name: string, value: string): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)').run(name, value);
  }

  /**
   * What the walk added since the last `loggedUpTo`: a chain persists it as its next log segment, then
   * calls loggedUpTo(upTo). The log lives in the file, so work of a step killed before it logged is still
   * in the next segment.
   */
  unloggedDelta(): { delta: WalkDelta; upTo: number } {
    const from = Number(this.meta('logged') ?? 0);
    const delta: WalkDelta = { catalogs: [], marked: [], visited: [] };
    let upTo = from;
    for (const r of this.db.prepare('SELECT seq, kind, key, mountpoint, size FROM log WHERE seq > ? ORDER BY seq').iterate(from) as Iterable<{ seq: number; kind: string; key: string; mountpoint: string | null; size: number | null }>) {
      if (r.kind === 'c') delta.catalogs.push({ key: r.key, mountpoint: r.mountpoint ?? '', size: r.size });
      else if (r.kind === 'm') delta.marked.push(r.key);
      else delta.visited.push(r.key);
      upTo = r.seq;
    }
    return { delta, upTo };
  }

  loggedUpTo(upTo: number): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM log WHERE seq <= ?').run(upTo);
      this.setMeta('logged', String(upTo));
    })();
  }

  /** Replays a logged delta (from another sandbox) into this walk. */
  apply(delta: WalkDelta): void {
    this.replaying = true;
    try {
      this.db.transaction(() => {
        for (const c of delta.catalogs) this.stmt.addCatalog.run(c.key, c.mountpoint, c.size);
        for (const k of delta.marked) this.stmt.mark.run(k);
        for (const k of delta.visited) this.stmt.done.run(k);
      })();
    } finally {
      this.replaying = false;
    }
  }

  /**
   * Visits pending catalogs until none is left or `stop()` says the budget is spent (checked between
   * catalogs, so one catalog is the unit of work).
   */
  async step(load: CatalogLoader, visitor: WalkVisitor, stop: () => boolean = () => false): Promise<WalkProgress> {
    const progress: WalkProgress = { catalogs: 0, entries: 0, objects: 0, pending: 0, done: false };
    for (;;) {
      const next = this.stmt.next.get() as { key: string; mountpoint: string; size: number | null } | undefined;
      if (!next) break;
      if (progress.catalogs > 0 && stop()) break;
      await this.visit(next.key, next.mountpoint, next.size ?? undefined, load, visitor, progress);
    }
    progress.pending = this.pendingCount;
    progress.done = progress.pending === 0;
    return progress;
  }

  private async visit(key: string, mountpoint: string, expectedSize: number | undefined, load: CatalogLoader,
    visitor: WalkVisitor, progress: WalkProgress): Promise<void> {
    const hash = hashOfKey(key);
    let opened: { db: CatalogDb; size: number } | null | undefined;
    try {
      opened = await load(hash);
    } catch (err) {
      await visitor.unreadable?.(hash, mountpoint, err as Error);
    }
    if (!opened) {
      this.finish(key, [], []);
      progress.catalogs++;
      return;
    }
    const { db, size } = opened;
    try {
      await visitor.catalog?.({ hash, key, mountpoint, db, size, expectedSize });
      const refs: ObjectRef[] = [];
      let rows: Iterable<{ path: string; entry: DirectoryEntry }>;
      try {
        rows = [...db.walk()];
      } catch (err) {
        await visitor.unreadable?.(hash, mountpoint, err as Error);
        rows = [];
      }
      for (const { path, entry } of rows) {
        progress.entries++;
        if (kindOfMode(entry.mode) !== 'file' || entry.extraFlags & FLAG.external) continue;
        if (entry.extraFlags & FLAG.chunked) {
          for (const c of db.chunks(path, entry.chunkAlgorithm ?? hash.algorithm)) {
            refs.push({ key: c.hash.objectKey('P'), hash: c.hash, suffix: 'P', size: c.size, compression: entry.compression, path, catalog: key });
          }
        }
        if (entry.hash) refs.push({ key: entry.hash.objectKey(''), hash: entry.hash, suffix: '', size: entry.size, compression: entry.compression, path, catalog: key });
      }
      // Objects are marked in the same transaction that marks the catalog visited: a walk killed before it
      // visits the catalog again and meets the same objects as new, so no visitor misses one.
      const nested = db.nestedCatalogs();
      const fresh: ObjectRef[] = [];
      const seen = new Set<string>();
      const repeats: ObjectRef[] = [];
      for (const r of refs) {
        if (seen.has(r.key) || this.has(r.key)) repeats.push(r);
        else {
          seen.add(r.key);
          fresh.push(r);
        }
      }
      for (const r of fresh) await visitor.object?.(r);
      // After the first references: a repeat within this catalog then finds its object already met.
      for (const r of repeats) visitor.again?.(r);
      await visitor.settle?.({ hash, key, mountpoint, db, size, expectedSize });
      this.finish(key, nested.map((n) => ({ key: n.hash.objectKey('C'), mountpoint: n.path, size: n.size })), fresh.map((r) => r.key));
      progress.catalogs++;
      progress.objects += fresh.length;
    } finally {
      db.close();
    }
  }

  /**
   * Marks a catalog visited and queues its nested catalogs, in one transaction with marking `objects`: the
   * keys of its objects the visitor was just offered (none for a catalog that was skipped or could not be
   * read). Marked any earlier, a walk killed before this would never offer them again.
   */
  private finish(key: string, nested: { key: string; mountpoint: string; size: number }[], objects: string[]): void {
    this.db.transaction(() => {
      for (const k of objects) this.markKey(k);
      for (const n of nested) this.addCatalog(n.key, n.mountpoint, n.size);
      this.stmt.done.run(key);
      if (!this.replaying) this.stmt.log.run('v', key, null, null);
    })();
  }

  private addCatalog(key: string, mountpoint: string, size: number | null): void {
    if (this.stmt.addCatalog.run(key, mountpoint, size).changes > 0 && !this.replaying) this.stmt.log.run('c', key, mountpoint, size);
    this.markKey(key);
  }

  private markKey(key: string): boolean {
    const added = this.stmt.mark.run(key).changes > 0;
    if (added && !this.replaying) this.stmt.log.run('m', key, null, null);
    return added;
  }

  close(): void {
    this.db.close();
  }
}
