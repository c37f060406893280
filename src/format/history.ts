// The history / tag database, stored as object `data/…H` (spec §8.2).
import Database from 'better-sqlite3';
import { RefusedError } from '../errors.js';
import { ContentHash } from './hash.js';

export interface Tag {
  name: string;
  /** Root catalog hash of the tagged revision. */
  hash: ContentHash;
  /** Uncompressed size of that root catalog. */
  size: number;
  revision: number;
  /** Publish time, unix seconds. */
  timestamp: number;
  description: string;
}

export const TRUNK = 'trunk';
export const TRUNK_PREVIOUS = 'trunk-previous';
const TRUNK_DESCRIPTION = 'current HEAD';
const TRUNK_PREVIOUS_DESCRIPTION = 'default undo target';

// Statements exactly as cvmfs (history_sql.cc, sql_impl.h, schema 1.0 revision 3) issues them, so
// sqlite_master reads the same as in a history database the stock server made.
const HISTORY_DDL = [
  'CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));',
  'CREATE TABLE branches (branch TEXT, parent TEXT, initial_revision INTEGER,'
    + "  CONSTRAINT pk_branch PRIMARY KEY (branch),   FOREIGN KEY (parent) REFERENCES branches (branch),"
    + "   CHECK ((branch <> '') OR (parent IS NULL)),   CHECK ((branch = '') OR (parent IS NOT NULL)));",
  "INSERT INTO branches (branch, parent, initial_revision) VALUES ('', NULL, 0);",
  'CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER,   timestamp INTEGER, channel INTEGER,'
    + ' description TEXT, size INTEGER,   branch TEXT, CONSTRAINT pk_tags PRIMARY KEY (name),'
    + '   FOREIGN KEY (branch) REFERENCES branches (branch));',
  'CREATE TABLE recycle_bin (hash TEXT, flags INTEGER,   CONSTRAINT pk_hash PRIMARY KEY (hash))',
];

/**
 * Opens the bytes of an uncompressed SQLite file as an in-memory database. Objects in data/ are
 * zlib-compressed, so catch the common mistake of passing them as they are.
 */
export function openSqliteBytes(bytes: Buffer, what: string): Database.Database {
  if (bytes.length >= 2 && bytes[0] === 0x78 && [0x01, 0x5e, 0x9c, 0xda].includes(bytes[1]!)) {
    throw new Error(`${what}: looks zlib-compressed; inflate the object first`);
  }
  if (bytes.length < 100 || bytes.subarray(0, 16).toString('latin1') !== 'SQLite format 3\0') {
    throw new Error(`${what}: not an SQLite database file`);
  }
  return new Database(bytes);
}

/** Serializes an in-memory database; its header announces the rollback journal (bytes 18/19 = 1). */
export function serializeSqlite(db: Database.Database): Buffer {
  const bytes = db.serialize();
  if (bytes[18] !== 1 || bytes[19] !== 1) {
    // A WAL-mode file (2/2) would need its -wal sidecar; cvmfs opens these files read-only and without it.
    bytes[18] = 1;
    bytes[19] = 1;
  }
  return bytes;
}

export function readProperties(db: Database.Database, what: string): Map<string, string> {
  const hasTable = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'properties'")
    .get() as { n: number };
  if (hasTable.n === 0) throw new Error(`${what}: no properties table`);
  const rows = db.prepare('SELECT key, value FROM properties').all() as { key: string; value: unknown }[];
  return new Map(rows.map((r) => [r.key, String(r.value)]));
}

function insertTag(db: Database.Database) {
  const stmt = db.prepare('INSERT INTO tags (name, hash, revision, timestamp, channel, description, size, branch)'
    + " VALUES (?, ?, ?, ?, 0, ?, ?, '')");
  return (t: Tag) => {
    for (const [k, v] of [['size', t.size], ['revision', t.revision], ['timestamp', t.timestamp]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`tag '${t.name}': ${k} must be a non-negative integer, got ${v}`);
    }
    if (t.name === '') throw new Error('a tag needs a name');
    stmt.run(t.name, t.hash.toHex(), t.revision, t.timestamp, t.description, t.size);
  };
}

/**
 * An uncompressed history SQLite file (compress it and store it as `data/…H`). Without a previous
 * history object, previous_revision holds a null hash, as the stock server writes when the manifest
 * has none (its tools read the property unconditionally).
 */
export function createHistory(fqrn: string, tags: Tag[], previous?: ContentHash): Buffer {
  if (fqrn === '') throw new Error('history: empty repository name');
  const names = new Set<string>();
  for (const t of tags) {
    if (names.has(t.name)) throw new Error(`history: tag '${t.name}' given twice`);
    names.add(t.name);
  }
  const db = new Database(':memory:');
  try {
    db.pragma('foreign_keys = ON');
    for (const sql of HISTORY_DDL) db.exec(sql);
    const setProperty = db.prepare('INSERT INTO properties (key, value) VALUES (?, ?)');
    setProperty.run('schema', '1.0');
    setProperty.run('schema_revision', '3');
    setProperty.run('fqrn', fqrn);
    setProperty.run('previous_revision', previous ? previous.toHex() : '0'.repeat(40));
    const insert = insertTag(db);
    db.transaction(() => tags.forEach(insert))();
    return serializeSqlite(db);
  } finally {
    db.close();
  }
}

/** Reads a history database of any 1.0 schema revision (the 2015 vector is revision 2: no branches). */
export function readHistory(sqliteBytes: Buffer): { fqrn: string; tags: Tag[]; previous?: ContentHash } {
  const db = openSqliteBytes(sqliteBytes, 'history database');
  try {
    const props = readProperties(db, 'history database');
    const fqrn = props.get('fqrn');
    if (!fqrn) throw new Error('history database: no fqrn property');
    const schema = props.get('schema') ?? '1.0';
    if (Math.abs(Number(schema) - 1) > 1e-6) throw new Error(`history database: unsupported schema ${schema}`);
    const columns = new Set((db.pragma('table_info(tags)') as { name: string }[]).map((c) => c.name));
    if (columns.size === 0) throw new Error('history database: no tags table');
    const sizeColumn = columns.has('size') ? 'size' : '0'; // schema revision 0 had no size
    const rows = db.prepare(`SELECT name, hash, revision, timestamp, description, ${sizeColumn} AS size FROM tags ORDER BY rowid`)
      .all() as { name: string; hash: string; revision: number; timestamp: number; description: string | null; size: number | null }[];
    const tags = rows.map((r): Tag => {
      let hash: ContentHash;
      try {
        hash = ContentHash.fromHex(r.hash);
      } catch {
        throw new Error(`history database: tag '${r.name}' has a malformed hash '${r.hash}'`);
      }
      return { name: r.name, hash, size: r.size ?? 0, revision: r.revision, timestamp: r.timestamp, description: r.description ?? '' };
    });
    const result: { fqrn: string; tags: Tag[]; previous?: ContentHash } = { fqrn, tags };
    const prev = props.get('previous_revision');
    // Null hashes (all zeros, 40 or — from cvmfs 2.1 — 64 digits) mean "no previous history".
    if (prev !== undefined && !/^0*$/.test(prev)) {
      try {
        result.previous = ContentHash.fromHex(prev);
      } catch {
        throw new Error(`history database: malformed previous_revision '${prev}'`);
      }
    }
    return result;
  } finally {
    db.close();
  }
}

function autoTagName(timestamp: number): string {
  return `generic-${new Date(timestamp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
}

/**
 * The tag list after publishing `head`: `trunk` moves to the new head, the old trunk becomes
 * `trunk-previous`, an automatic `generic-<UTC time>` tag names the new revision (as CVMFS_AUTO_TAG does),
 * and the optional user tag names it too. Older generic and user tags are kept.
 */
export function nextHistoryTags(
  previous: Tag[],
  head: Omit<Tag, 'name' | 'description'>,
  userTag?: { name: string; description?: string },
): Tag[] {
  const at = (name: string, description: string): Tag => ({ ...head, name, description });
  const generic = autoTagName(head.timestamp);
  if (userTag) checkNewTagName(previous, userTag.name);
  const oldTrunk = previous.find((t) => t.name === TRUNK);
  // Two publishes within one second give the same generic name; the newer revision takes it.
  const kept = previous.filter((t) => t.name !== TRUNK && t.name !== TRUNK_PREVIOUS && t.name !== generic);
  const next = [...kept, at(generic, '')];
  if (userTag) next.push(at(userTag.name, userTag.description ?? ''));
  if (oldTrunk) next.push({ ...oldTrunk, name: TRUNK_PREVIOUS, description: TRUNK_PREVIOUS_DESCRIPTION });
  next.push(at(TRUNK, TRUNK_DESCRIPTION));
  return next;
}

/** The undo tags (`trunk`, `trunk-previous`) cvmfs manages itself; nobody adds or removes them by name. */
export function isUndoTag(name: string): boolean {
  return name === TRUNK || name === TRUNK_PREVIOUS;
}

/** Refuses a name a user may not give a tag: blank, with blanks or control characters, or reserved. */
export function checkTagName(name: string): void {
  if (name === '' || /[\s\x00-\x1f\x7f]/.test(name)) {
    throw new RefusedError('bad-tag-name', `tag name ${JSON.stringify(name)} is empty or contains blanks/control characters`);
  }
  if (isUndoTag(name) || name.startsWith('generic-')) {
    throw new RefusedError('reserved-tag-name', `tag name '${name}' is reserved for automatic tags`);
  }
}

function checkNewTagName(tags: Tag[], name: string): void {
  checkTagName(name);
  if (tags.some((t) => t.name === name)) {
    throw new RefusedError('tag-exists', `tag '${name}' already exists; choose another name or remove it first`);
  }
}

/**
 * The undo tags after a revision that is not a publish (a tag edit): `trunk` names the new head and the
 * old trunk becomes `trunk-previous`, as after every revision; no generic tag is added.
 */
export function moveUndoTags(tags: Tag[], head: Omit<Tag, 'name' | 'description'>): Tag[] {
  const oldTrunk = tags.find((t) => t.name === TRUNK);
  const next = tags.filter((t) => !isUndoTag(t.name));
  if (oldTrunk) next.push({ ...oldTrunk, name: TRUNK_PREVIOUS, description: TRUNK_PREVIOUS_DESCRIPTION });
  next.push({ ...head, name: TRUNK, description: TRUNK_DESCRIPTION });
  return next;
}

/**
 * Adds `tag`, or moves an existing tag of that name when `move` is set (cvmfs_server tag -a with -h):
 * a moved tag keeps its description unless a new one is given, and moving it onto the catalog it
 * already names is refused.
 */
export function withTag(tags: Tag[], tag: Tag, move: boolean): { tags: Tag[]; moved?: Tag } {
  checkTagName(tag.name);
  const old = tags.find((t) => t.name === tag.name);
  if (!old) return { tags: [...tags, tag] };
  if (!move) {
    throw new RefusedError('tag-exists', `tag '${tag.name}' already exists; give --revision or --root to move it, or remove it first`);
  }
  if (old.hash.equals(tag.hash)) throw new RefusedError('tag-unchanged', `tag '${tag.name}' already names ${tag.hash.toHex()}`);
  const moved = { ...tag, description: tag.description || old.description };
  return { tags: [...tags.filter((t) => t.name !== tag.name), moved], moved: old };
}

/** Removes the named tags; all of them must exist and none may be an undo tag (nothing is removed otherwise). */
export function withoutTags(tags: Tag[], names: string[]): { tags: Tag[]; removed: Tag[] } {
  for (const n of names) {
    if (isUndoTag(n)) throw new RefusedError('reserved-tag-name', `'${n}' is an undo tag; cvmfs manages it and it cannot be removed`);
  }
  const missing = names.filter((n) => !tags.some((t) => t.name === n));
  if (missing.length > 0) throw new RefusedError('unknown-tag', `no tag ${missing.map((n) => `'${n}'`).join(', ')} in the history`);
  const drop = new Set(names);
  return { tags: tags.filter((t) => !drop.has(t.name)), removed: tags.filter((t) => drop.has(t.name)) };
}

/**
 * The tag list after rolling back to `target` (cvmfs_server rollback -t): every tag of a revision after
 * the target's is removed (they name a future that no longer is the head's past), the target tag is
 * re-pointed at the new head revision, and `trunk` names the new head; there is no `trunk-previous`, so
 * a rollback is not undone anonymously.
 */
export function rolledBackTags(tags: Tag[], target: Tag, head: Omit<Tag, 'name' | 'description'>): { tags: Tag[]; removed: Tag[] } {
  const condemned = (t: Tag) => t.revision > target.revision || t.name === target.name;
  const removed = tags.filter((t) => condemned(t) && t.name !== target.name && !isUndoTag(t.name));
  const next = tags.filter((t) => !condemned(t) && !isUndoTag(t.name));
  if (!isUndoTag(target.name)) next.push({ ...head, name: target.name, description: target.description });
  next.push({ ...head, name: TRUNK, description: TRUNK_DESCRIPTION });
  return { tags: next, removed };
}
