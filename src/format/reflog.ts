// The reflog `.cvmfsreflog` (spec §8.1): every root catalog, certificate, history and meta-info object
// ever published, so that garbage collection can find what to sweep.
import Database from 'better-sqlite3';
import { ContentHash } from './hash.js';
import { openSqliteBytes, readProperties, serializeSqlite } from './history.js';

export type ReflogType = 'catalog' | 'certificate' | 'history' | 'metainfo';
export interface ReflogEntry { hash: ContentHash; type: ReflogType; timestamp: number }

const TYPE_NUMBER: Record<ReflogType, number> = { catalog: 0, certificate: 1, history: 2, metainfo: 3 };
const TYPE_OF_NUMBER = new Map(Object.entries(TYPE_NUMBER).map(([k, v]) => [v, k as ReflogType]));

// As cvmfs' reflog_sql.cc and sql_impl.h issue them (schema 1.0 revision 0).
const REFLOG_DDL = [
  'CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));',
  'CREATE TABLE refs (hash TEXT, type INTEGER, timestamp INTEGER, CONSTRAINT pk_refs PRIMARY KEY (hash));',
];

function createDb(fqrn: string): Database.Database {
  if (fqrn === '') throw new Error('reflog: empty repository name');
  const db = new Database(':memory:');
  for (const sql of REFLOG_DDL) db.exec(sql);
  const setProperty = db.prepare('INSERT INTO properties (key, value) VALUES (?, ?)');
  setProperty.run('schema', '1.0');
  setProperty.run('schema_revision', '0');
  setProperty.run('fqrn', fqrn);
  return db;
}

function openExisting(bytes: Buffer): { db: Database.Database; fqrn: string } {
  const db = openSqliteBytes(bytes, 'reflog');
  try {
    const fqrn = readProperties(db, 'reflog').get('fqrn');
    if (!fqrn) throw new Error('reflog: no fqrn property');
    const hasRefs = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'refs'").get() as { n: number };
    if (hasRefs.n === 0) throw new Error('reflog: no refs table');
    return { db, fqrn };
  } catch (e) {
    db.close();
    throw e;
  }
}

/** An empty reflog file (uncompressed SQLite, stored as `.cvmfsreflog`). */
export function createReflog(fqrn: string): Buffer {
  const db = createDb(fqrn);
  try {
    return serializeSqlite(db);
  } finally {
    db.close();
  }
}

/**
 * Records `refs` in the reflog (creating it when `sqliteBytes` is undefined). A hash already present is
 * replaced, type and timestamp included (INSERT OR REPLACE, as cvmfs does).
 */
export function addToReflog(sqliteBytes: Buffer | undefined, fqrn: string, refs: ReflogEntry[], remove: readonly ContentHash[] = []): Buffer {
  let db: Database.Database;
  if (sqliteBytes === undefined) {
    db = createDb(fqrn);
  } else {
    const opened = openExisting(sqliteBytes);
    db = opened.db;
    if (opened.fqrn !== fqrn) {
      db.close();
      throw new Error(`reflog belongs to repository '${opened.fqrn}', not '${fqrn}'`);
    }
  }
  try {
    const insert = db.prepare('INSERT OR REPLACE INTO refs (hash, type, timestamp) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (const r of refs) {
        const type = TYPE_NUMBER[r.type];
        if (type === undefined) throw new Error(`reflog: unknown reference type '${String(r.type)}'`);
        if (!Number.isSafeInteger(r.timestamp) || r.timestamp < 0) {
          throw new Error(`reflog: timestamp must be a non-negative integer, got ${r.timestamp}`);
        }
        insert.run(r.hash.toHex(), type, r.timestamp);
      }
      // Garbage collection removes the rows of the root catalogs it deleted, as cvmfs's does.
      const drop = db.prepare('DELETE FROM refs WHERE hash = ?');
      for (const h of remove) drop.run(h.toHex());
    })();
    return serializeSqlite(db);
  } finally {
    db.close();
  }
}

export function readReflog(bytes: Buffer): { fqrn: string; refs: ReflogEntry[] } {
  const { db, fqrn } = openExisting(bytes);
  try {
    const rows = db.prepare('SELECT hash, type, timestamp FROM refs ORDER BY timestamp, rowid').all() as
      { hash: string; type: number; timestamp: number }[];
    const refs = rows.map((r): ReflogEntry => {
      const type = TYPE_OF_NUMBER.get(r.type);
      if (!type) throw new Error(`reflog: entry ${r.hash} has unknown type ${r.type}`);
      let hash: ContentHash;
      try {
        hash = ContentHash.fromHex(r.hash);
      } catch {
        throw new Error(`reflog: malformed hash '${r.hash}'`);
      }
      return { hash, type, timestamp: r.timestamp };
    });
    return { fqrn, refs };
  } finally {
    db.close();
  }
}
