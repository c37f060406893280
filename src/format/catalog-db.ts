// A file catalog (SQLite, schema 2.5 revision 7) as spec §4 defines it, held in memory or, for the
// writer's scratch copies, in a file that is removed on close (so memory does not grow with catalog size).
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { md5Path, parentPath, type PathHash } from './md5path.js';
import { ContentHash, type HashAlgorithm } from './hash.js';
import {
  entryFlags, entryFromRow, hardlinksValue, FLAG, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
  type CatalogRow, type DirectoryEntry, type EntryStat,
} from './catalog-entry.js';

export const SCHEMA = '2.5';
export const SCHEMA_REVISION = 7;

const DDL = [
  `CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key))`,
  `CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER,
  hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER,
  mtimens INTEGER, flags INTEGER, name TEXT, symlink TEXT, uid INTEGER,
  gid INTEGER, xattr BLOB,
  CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2))`,
  `CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2)`,
  `CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER,
  hash BLOB,
  CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size),
  FOREIGN KEY (md5path_1, md5path_2) REFERENCES catalog(md5path_1, md5path_2))`,
  `CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER,
  CONSTRAINT pk_nested_catalogs PRIMARY KEY (path))`,
  `CREATE TABLE bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER,
  CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path))`,
  `CREATE TABLE statistics (counter TEXT, value INTEGER,
  CONSTRAINT pk_statistics PRIMARY KEY (counter))`,
];

export const COUNTER_NAMES = [
  'regular', 'symlink', 'special', 'dir', 'nested', 'chunked', 'chunks', 'file_size', 'chunked_size',
  'xattr', 'external', 'external_file_size',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Record<CounterName, number>;

export function zeroCounters(): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as Counters;
}

export function addCounters(a: Counters, b: Counters, sign = 1): Counters {
  const out = zeroCounters();
  for (const n of COUNTER_NAMES) out[n] = a[n] + sign * b[n];
  return out;
}

export interface NestedCatalogRef {
  path: string;
  hash: ContentHash;
  /** Uncompressed size of the SQLite file. */
  size: number;
}

export interface FileChunk {
  offset: number;
  /** Uncompressed length of the chunk. */
  size: number;
  hash: ContentHash;
}

export interface CatalogProperties {
  revision: number;
  lastModified: number;
  previousRevision?: ContentHash;
  rootPrefix?: string;
  ttl?: number;
}

const ENTRY_COLUMNS = 'hardlinks, hash, size, mode, mtime, mtimens, flags, name, symlink, uid, gid, xattr';

export class CatalogDb {
  private readonly statements = new Map<string, Database.Statement>();
  /** Mountpoints of nested catalogs: asked for every prefix of every path a publish touches. */
  private mountpoints: Set<string> | null = null;
  /** Recent path hashes: a file's row and its siblings' share the parent's, and lookup precedes put. */
  private readonly hashes = new Map<string, PathHash>();

  private constructor(private readonly db: Database.Database, private readonly file?: string) {
    // A scratch file is rebuilt from the store after any crash: durability would only cost time. The
    // page cache is SQLite's default 2 MiB: the file's pages stay in the kernel's cache anyway, and at
    // 10^6 entries (12 catalogs) 8 MiB each cost 57 MB of peak RSS for no measurable speed.
    if (file !== undefined) db.exec('PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2048');
  }

  /** Prepared statements are cached: preparing costs more than running one on the hot publish path. */
  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  /**
   * An empty catalog for the subtree at `rootPrefix` ('' for the repository root), in memory or in the
   * scratch file `file`.
   */
  static create(props: CatalogProperties, file?: string): CatalogDb {
    const db = new Database(file ?? ':memory:');
    const catalog = new CatalogDb(db, file);
    for (const stmt of DDL) db.exec(stmt);
    const insert = db.prepare('INSERT INTO properties (key, value) VALUES (?, ?)');
    insert.run('schema', SCHEMA);
    insert.run('schema_revision', String(SCHEMA_REVISION));
    catalog.setProperties(props);
    catalog.writeCounters(zeroCounters(), zeroCounters());
    return catalog;
  }

  /** Opens the uncompressed bytes of a catalog; older schema revisions are brought up to 7. */
  static fromBytes(bytes: Buffer, file?: string): CatalogDb {
    let db: Database.Database;
    try {
      if (file !== undefined) writeFileSync(file, bytes);
      db = new Database(file ?? bytes);
      db.prepare("SELECT value FROM properties WHERE key = 'schema'").get();
    } catch (err) {
      if (file !== undefined) rmSync(file, { force: true });
      throw new Error(`not a catalog database: ${(err as Error).message}`);
    }
    const catalog = new CatalogDb(db, file);
    catalog.upgradeSchema();
    return catalog;
  }

  private upgradeSchema(): void {
    const columns = this.db.prepare('PRAGMA table_info(catalog)').all() as { name: string }[];
    if (columns.length === 0) throw new Error('not a catalog database: no catalog table');
    if (!columns.some((c) => c.name === 'xattr')) this.db.exec('ALTER TABLE catalog ADD xattr BLOB');
    if (!columns.some((c) => c.name === 'mtimens')) this.db.exec('ALTER TABLE catalog ADD mtimens INTEGER');
    this.db.exec('CREATE TABLE IF NOT EXISTS bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER, ' +
      'CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path))');
    const insert = this.db.prepare('INSERT OR IGNORE INTO statistics (counter, value) VALUES (?, 0)');
    for (const n of COUNTER_NAMES) {
      insert.run(`self_${n}`);
      insert.run(`subtree_${n}`);
    }
  }

  property(key: string): string | undefined {
    const row = this.sql('SELECT value FROM properties WHERE key = ?').get(key) as { value: unknown } | undefined;
    return row === undefined || row.value === null ? undefined : String(row.value);
  }

  setProperty(key: string, value: string | undefined): void {
    if (value === undefined) this.sql('DELETE FROM properties WHERE key = ?').run(key);
    else this.sql('INSERT OR REPLACE INTO properties (key, value) VALUES (?, ?)').run(key, value);
  }

  setProperties(p: Partial<CatalogProperties>): void {
    if (p.revision !== undefined) this.setProperty('revision', String(p.revision));
    if (p.lastModified !== undefined) this.setProperty('last_modified', String(p.lastModified));
    if (p.previousRevision !== undefined) this.setProperty('previous_revision', p.previousRevision.toHex());
    if (p.rootPrefix !== undefined && p.rootPrefix !== '') this.setProperty('root_prefix', p.rootPrefix);
    if (p.ttl !== undefined) this.setProperty('TTL', String(p.ttl));
  }

  get revision(): number {
    return Number(this.property('revision') ?? 0);
  }

  get rootPrefix(): string {
    return this.property('root_prefix') ?? '';
  }

  get schemaRevision(): number {
    return Number(this.property('schema_revision') ?? 0);
  }

  private hashOf(path: string): PathHash {
    let h = this.hashes.get(path);
    if (!h) {
      if (this.hashes.size >= 256) this.hashes.clear();
      h = md5Path(path);
      this.hashes.set(path, h);
    }
    return h;
  }

  lookup(path: string): DirectoryEntry | null {
    const h = this.hashOf(path);
    const row = this.sql(`SELECT ${ENTRY_COLUMNS} FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?`)
      .safeIntegers(true).get(h.h1, h.h2) as CatalogRow | undefined;
    return row ? entryFromRow(row) : null;
  }

  /** Entries whose parent is `dirPath`, by name. */
  children(dirPath: string): DirectoryEntry[] {
    const h = this.hashOf(dirPath);
    const rows = this.sql(`SELECT ${ENTRY_COLUMNS} FROM catalog WHERE parent_1 = ? AND parent_2 = ?`)
      .safeIntegers(true).all(h.h1, h.h2) as CatalogRow[];
    return rows.map(entryFromRow).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** What a source walk compares, for each entry whose parent is `dirPath`, in no particular order. */
  childStats(dirPath: string): EntryStat[] {
    const h = this.hashOf(dirPath);
    const rows = this.sql(`SELECT name, mode, size, mtime, mtimens, uid, gid, symlink, xattr,
        hardlinks >> 32 AS grp, hardlinks & 4294967295 AS lc,
        coalesce(length(hash), 0) > 0 OR (flags & ${FLAG.chunked}) != 0 AS content
      FROM catalog WHERE parent_1 = ? AND parent_2 = ?`).all(h.h1, h.h2) as {
      name: string | null; mode: number; size: number; mtime: number; mtimens: number | null; uid: number; gid: number;
      symlink: string | null; xattr: Buffer | null; grp: number; lc: number; content: number;
    }[];
    return rows.map((r) => ({
      name: r.name ?? '', mode: r.mode, size: r.size, mtime: r.mtime, mtimeNs: r.mtimens ?? null, uid: r.uid, gid: r.gid,
      symlink: r.symlink ?? '', xattr: r.xattr && r.xattr.length > 0 ? r.xattr : null, linkcount: r.lc, hardlinkGroup: r.grp,
      hasContent: r.content !== 0,
    }));
  }

  hasChildren(dirPath: string): boolean {
    const h = this.hashOf(dirPath);
    return this.sql('SELECT 1 FROM catalog WHERE parent_1 = ? AND parent_2 = ? LIMIT 1').get(h.h1, h.h2) !== undefined;
  }

  countChildDirectories(dirPath: string): number {
    const h = this.hashOf(dirPath);
    const row = this.sql(`SELECT count(*) AS n FROM catalog WHERE parent_1 = ? AND parent_2 = ? AND (mode & ${S_IFMT}) = ${S_IFDIR}`)
      .get(h.h1, h.h2) as { n: number };
    return row.n;
  }

  /**
   * Edits run inside one open transaction until the catalog is serialized: autocommit per statement
   * costs a journal cycle each time, which dominated applying thousands of rows.
   */
  private writing(): void {
    if (!this.db.inTransaction) this.db.exec('BEGIN');
  }

  private settle(): void {
    if (this.db.inTransaction) this.db.exec('COMMIT');
  }

  /**
   * Inserts or updates the row of `path`; an update keeps the rowid (the client's inode). `exists`: what
   * the caller's lookup just found, which saves the update attempt for a new row (most rows of a publish).
   */
  put(path: string, entry: DirectoryEntry, exists?: boolean): void {
    this.writing();
    const h = this.hashOf(path);
    const p: PathHash = path === '' ? { h1: 0n, h2: 0n } : this.hashOf(parentPath(path));
    const values = [hardlinksValue(entry), entry.hash ? entry.hash.digest : null, entry.size, entry.mode, entry.mtime,
      entry.mtimeNs, entryFlags(entry), entry.name, entry.symlink, entry.uid, entry.gid,
      entry.xattr && entry.xattr.length > 0 ? entry.xattr : null];
    const updated = exists === false ? 0 : this.sql(`UPDATE catalog SET parent_1 = ?, parent_2 = ?, hardlinks = ?, hash = ?, size = ?,
      mode = ?, mtime = ?, mtimens = ?, flags = ?, name = ?, symlink = ?, uid = ?, gid = ?, xattr = ?
      WHERE md5path_1 = ? AND md5path_2 = ?`).run(p.h1, p.h2, ...values, h.h1, h.h2).changes;
    if (updated === 0) {
      this.sql(`INSERT INTO catalog (md5path_1, md5path_2, parent_1, parent_2, ${ENTRY_COLUMNS})
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(h.h1, h.h2, p.h1, p.h2, ...values);
    }
    // A row that did not exist has no chunk rows (delete() removes them with it).
    if (exists !== false) this.sql('DELETE FROM chunks WHERE md5path_1 = ? AND md5path_2 = ?').run(h.h1, h.h2);
  }

  /** Chunk list of a chunked file, by offset; the hashes name `P` objects. */
  chunks(path: string, algorithm: HashAlgorithm): FileChunk[] {
    const h = this.hashOf(path);
    const rows = this.sql('SELECT offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ? ORDER BY offset')
      .all(h.h1, h.h2) as { offset: number; size: number; hash: Buffer }[];
    return rows.map((r) => ({ offset: Number(r.offset), size: Number(r.size), hash: new ContentHash(algorithm, r.hash) }));
  }

  setChunks(path: string, chunks: FileChunk[]): void {
    this.writing();
    const h = this.hashOf(path);
    this.sql('DELETE FROM chunks WHERE md5path_1 = ? AND md5path_2 = ?').run(h.h1, h.h2);
    const stmt = this.sql('INSERT INTO chunks (md5path_1, md5path_2, offset, size, hash) VALUES (?, ?, ?, ?, ?)');
    for (const c of chunks) stmt.run(h.h1, h.h2, c.offset, c.size, c.hash.digest);
  }

  /**
   * Moves the rows whose parent is directory `dir` into `dest`, with their chunk lists, as stored: the
   * rows keep their path hashes, so nothing is rehashed or decoded, and they leave this catalog in one
   * statement. Hardlink group ids (unique per catalog) move up by `groupOffset`. Returns the moved
   * subdirectories, to move next, and the nested catalog mountpoints among the rows, whose references are
   * the caller's to move. A row `dest` already has is refused on its primary key.
   */
  moveChildren(dest: CatalogDb, dir: string, groupOffset = 0): { directories: string[]; mountpoints: string[]; rows: number } {
    this.writing();
    dest.writing();
    const select = this.sql(`SELECT md5path_1, md5path_2, parent_1, parent_2, ${ENTRY_COLUMNS} FROM catalog
      WHERE parent_1 = ? AND parent_2 = ?`).raw(true).safeIntegers(true);
    const insert = dest.sql(`INSERT INTO catalog (md5path_1, md5path_2, parent_1, parent_2, ${ENTRY_COLUMNS})
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const chunksOf = this.sql('SELECT md5path_1, md5path_2, offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ?')
      .raw(true).safeIntegers(true);
    const insertChunk = dest.sql('INSERT INTO chunks (md5path_1, md5path_2, offset, size, hash) VALUES (?, ?, ?, ?, ?)');
    const deleteChunks = this.sql('DELETE FROM chunks WHERE md5path_1 = ? AND md5path_2 = ?');
    const offset = BigInt(groupOffset) << 32n;
    const h = this.hashOf(dir);
    const out = { directories: [] as string[], mountpoints: [] as string[], rows: 0 };
    // Rows stream (a flat directory may hold 10^6); this connection runs nothing else until the end.
    const chunked: unknown[][] = [];
    for (const row of select.iterate(h.h1, h.h2) as IterableIterator<unknown[]>) {
      // Columns as selected: 4 hardlinks, 7 mode, 10 flags, 11 name.
      const hardlinks = row[4] as bigint;
      if (offset !== 0n && hardlinks >> 32n !== 0n) row[4] = hardlinks + offset;
      insert.run(...row);
      out.rows++;
      const flags = Number(row[10]);
      if (flags & FLAG.chunked) chunked.push([row[0], row[1]]);
      if ((Number(row[7]) & S_IFMT) === S_IFDIR) {
        // Subdirectories are found by the hash of their path, as lookups find them.
        (flags & FLAG.nestedMountpoint ? out.mountpoints : out.directories).push(`${dir}/${String(row[11])}`);
      }
    }
    for (const key of chunked) {
      for (const chunk of chunksOf.all(...key) as unknown[][]) insertChunk.run(...chunk);
      deleteChunks.run(...key);
    }
    this.sql('DELETE FROM catalog WHERE parent_1 = ? AND parent_2 = ?').run(h.h1, h.h2);
    return out;
  }

  /** Removes the row of `path` with its chunk list (chunk rows first: they reference the row). */
  delete(path: string): void {
    this.writing();
    const h = this.hashOf(path);
    this.sql('DELETE FROM chunks WHERE md5path_1 = ? AND md5path_2 = ?').run(h.h1, h.h2);
    this.sql('DELETE FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?').run(h.h1, h.h2);
  }

  nestedCatalogs(): NestedCatalogRef[] {
    const rows = this.sql('SELECT path, sha1, size FROM nested_catalogs ORDER BY path').all() as
      { path: string; sha1: string; size: number }[];
    return rows.map((r) => ({ path: r.path, hash: ContentHash.fromHex(r.sha1), size: Number(r.size) }));
  }

  nestedCatalog(path: string): NestedCatalogRef | null {
    const r = this.sql('SELECT path, sha1, size FROM nested_catalogs WHERE path = ?').get(path) as
      { path: string; sha1: string; size: number } | undefined;
    return r ? { path: r.path, hash: ContentHash.fromHex(r.sha1), size: Number(r.size) } : null;
  }

  hasNestedCatalog(path: string): boolean {
    this.mountpoints ??= new Set((this.sql('SELECT path FROM nested_catalogs').all() as { path: string }[]).map((r) => r.path));
    return this.mountpoints.has(path);
  }

  setNestedCatalog(ref: NestedCatalogRef): void {
    this.mountpoints?.add(ref.path);
    this.sql('INSERT OR REPLACE INTO nested_catalogs (path, sha1, size) VALUES (?, ?, ?)')
      .run(ref.path, ref.hash.toHex(), ref.size);
  }

  removeNestedCatalog(path: string): void {
    this.mountpoints?.delete(path);
    this.sql('DELETE FROM nested_catalogs WHERE path = ?').run(path);
  }

  /** Counts this catalog's own rows the way the stock TreeCounters do (spec §4.6). */
  computeSelfCounters(): Counters {
    const c = zeroCounters();
    const row = this.sql(`SELECT
      sum((mode & ${S_IFMT}) = ${S_IFREG}) AS regular,
      sum((mode & ${S_IFMT}) = ${S_IFLNK}) AS symlink,
      sum((flags & ${FLAG.special}) != 0) AS special,
      sum((mode & ${S_IFMT}) = ${S_IFDIR}) AS dir,
      sum((flags & ${FLAG.chunked}) != 0) AS chunked,
      sum(CASE WHEN (mode & ${S_IFMT}) = ${S_IFREG} THEN size ELSE 0 END) AS file_size,
      sum(CASE WHEN (flags & ${FLAG.chunked}) != 0 THEN size ELSE 0 END) AS chunked_size,
      sum(xattr IS NOT NULL) AS xattr,
      sum((flags & ${FLAG.external}) != 0) AS external,
      sum(CASE WHEN (flags & ${FLAG.external}) != 0 THEN size ELSE 0 END) AS external_file_size
      FROM catalog`).get() as Record<string, number | null>;
    for (const [k, v] of Object.entries(row)) c[k as CounterName] = Number(v ?? 0);
    c.nested = (this.sql('SELECT count(*) AS n FROM nested_catalogs').get() as { n: number }).n;
    c.chunks = (this.sql('SELECT count(*) AS n FROM chunks').get() as { n: number }).n;
    return c;
  }

  readCounters(): { self: Counters; subtree: Counters } {
    const self = zeroCounters();
    const subtree = zeroCounters();
    const rows = this.sql('SELECT counter, value FROM statistics').all() as { counter: string; value: number }[];
    for (const r of rows) {
      const m = /^(self|subtree)_(.+)$/.exec(r.counter);
      if (m && (COUNTER_NAMES as readonly string[]).includes(m[2]!)) {
        (m[1] === 'self' ? self : subtree)[m[2] as CounterName] = Number(r.value);
      }
    }
    return { self, subtree };
  }

  writeCounters(self: Counters, subtree: Counters): void {
    this.writing();
    const stmt = this.sql('INSERT OR REPLACE INTO statistics (counter, value) VALUES (?, ?)');
    for (const n of COUNTER_NAMES) {
      stmt.run(`self_${n}`, self[n]);
      stmt.run(`subtree_${n}`, subtree[n]);
    }
  }

  /** Every row's path, found by walking from the catalog's root entry (for verification and export). */
  *walk(): Generator<{ path: string; entry: DirectoryEntry }> {
    const root = this.rootPrefix;
    const rootEntry = this.lookup(root);
    if (!rootEntry) throw new Error(`catalog for '${root || '/'}' has no root entry`);
    const stack: { path: string; entry: DirectoryEntry }[] = [{ path: root, entry: rootEntry }];
    while (stack.length > 0) {
      const item = stack.pop()!;
      yield item;
      const isMountpoint = (item.entry.extraFlags & FLAG.nestedMountpoint) !== 0;
      if ((item.entry.mode & S_IFMT) === S_IFDIR && !isMountpoint) {
        const kids = this.children(item.path);
        for (let i = kids.length - 1; i >= 0; i--) {
          stack.push({ path: `${item.path}/${kids[i]!.name}`, entry: kids[i]! });
        }
      }
    }
  }

  /** The largest hardlink group id in use; new groups take the next one (catalog-unique, spec §4.3). */
  maxHardlinkGroup(): number {
    const row = this.sql('SELECT max(hardlinks >> 32) AS g FROM catalog').get() as { g: number | null };
    return Number(row.g ?? 0);
  }

  /**
   * The directories of this catalog with their direct child counts: what the balancer needs to weigh
   * subtrees without loading rows. Keys are md5path halves joined, so parents can be found.
   */
  directoryShape(): { key: string; parent: string; name: string; children: number; mountpoint: boolean }[] {
    const counts = new Map<string, number>();
    for (const r of this.sql('SELECT parent_1 AS a, parent_2 AS b, count(*) AS n FROM catalog GROUP BY parent_1, parent_2')
      .safeIntegers(true).iterate() as Iterable<{ a: bigint; b: bigint; n: bigint }>) {
      counts.set(`${r.a}:${r.b}`, Number(r.n));
    }
    const dirs = this.sql(`SELECT md5path_1 AS a, md5path_2 AS b, parent_1 AS pa, parent_2 AS pb, name, flags
      FROM catalog WHERE (mode & ${S_IFMT}) = ${S_IFDIR}`).safeIntegers(true).all() as
      { a: bigint; b: bigint; pa: bigint; pb: bigint; name: string; flags: bigint }[];
    return dirs.map((d) => {
      const key = `${d.a}:${d.b}`;
      return {
        key, parent: `${d.pa}:${d.pb}`, name: d.name, children: counts.get(key) ?? 0,
        mountpoint: (Number(d.flags) & FLAG.nestedMountpoint) !== 0,
      };
    });
  }

  /**
   * A digest of what the catalog says about the tree (entries, chunks, nested catalogs), not of its
   * properties: two revisions with the same digest in their root catalogs hold the same tree.
   */
  treeDigest(): string {
    const h = createHash('sha256');
    for (const q of ['SELECT * FROM catalog ORDER BY md5path_1, md5path_2', 'SELECT * FROM chunks ORDER BY md5path_1, md5path_2, offset',
      'SELECT * FROM nested_catalogs ORDER BY path']) {
      for (const row of this.db.prepare(q).iterate() as Iterable<Record<string, unknown>>) {
        h.update(JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
        h.update('\n');
      }
    }
    return h.digest('hex');
  }

  rowCount(): number {
    return (this.sql('SELECT count(*) AS n FROM catalog').get() as { n: number }).n;
  }

  /** The SQLite file bytes (rollback-journal format, as the client expects). */
  serialize(): Buffer {
    this.settle();
    // Rows moved out to nested catalogs leave free pages that clients would download; VACUUM keeps rowids
    // (the client's inodes) since the table's key is not an INTEGER PRIMARY KEY alias.
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    if (free > 16 && free * 4 > pages) this.db.exec('VACUUM');
    return this.db.serialize();
  }

  close(): void {
    if (!this.db.open) return;
    this.settle();
    this.db.close();
    if (this.file !== undefined) rmSync(this.file, { force: true });
  }
}
