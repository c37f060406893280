// What changed between two revisions (cvmfs_server diff): added, removed and changed paths with what
// changed. Both trees are walked side by side, catalog by catalog; a nested catalog whose hash is the
// same on both sides is the same subtree and is never fetched, so the catalogs read follow the change
// and not the repository (a catalog that did change is compared row by row, in memory).
// Directory entries do not prune: a file's new content leaves its directory's entry as it was.
import { RefusedError } from '../errors.js';
import type { ObjectReader } from '../store/object-store.js';
import type { ContentHash, HashAlgorithm } from '../format/hash.js';
import type { CatalogDb } from '../format/catalog-db.js';
import { FLAG, kindOfMode, type DirectoryEntry, type EntryKind } from '../format/catalog-entry.js';
import { fetchCatalog } from '../repo/objects.js';
import { VerificationError, type RepositoryReader } from './reader.js';

export type ChangeOp = 'added' | 'removed' | 'changed';
/** What differs in a changed entry. */
export type ChangedField = 'type' | 'content' | 'size' | 'mode' | 'target' | 'mtime' | 'owner' | 'hardlinks' | 'xattrs' | 'catalog';

export interface PathChange {
  op: ChangeOp;
  /** Repository path, '/'-rooted. */
  path: string;
  /** The entry's type (the new one for a changed entry). */
  type: EntryKind;
  /** For `changed`: what differs, in this order. */
  fields?: ChangedField[];
}

export interface DiffResult {
  changes: PathChange[];
  /** Catalogs fetched (both sides). */
  catalogsRead: number;
  /** Nested catalogs skipped because both sides have the same hash. */
  catalogsSkipped: number;
}

const MARKER_FLAGS = FLAG.nestedMountpoint | FLAG.nestedRoot;

function differences(a: DirectoryEntry, b: DirectoryEntry, chunksA: () => string, chunksB: () => string): ChangedField[] {
  const out: ChangedField[] = [];
  const kind = kindOfMode(b.mode);
  if (kindOfMode(a.mode) !== kind) return ['type'];
  if (kind === 'file') {
    const sameContent = a.hash && b.hash ? a.hash.equals(b.hash)
      : !a.hash && !b.hash ? chunksA() === chunksB() : false;
    if (!sameContent || (a.extraFlags & FLAG.external) !== (b.extraFlags & FLAG.external)) out.push('content');
    if (a.size !== b.size) out.push('size');
  }
  if ((a.mode & 0o7777) !== (b.mode & 0o7777)) out.push('mode');
  if (a.symlink !== b.symlink) out.push('target');
  if (a.mtime !== b.mtime || (a.mtimeNs ?? 0) !== (b.mtimeNs ?? 0)) out.push('mtime');
  if (a.uid !== b.uid || a.gid !== b.gid) out.push('owner');
  if (kind === 'file' && a.linkcount !== b.linkcount) out.push('hardlinks');
  if (!(a.xattr ?? Buffer.alloc(0)).equals(b.xattr ?? Buffer.alloc(0))) out.push('xattrs');
  if (kind === 'directory' && (a.extraFlags & MARKER_FLAGS) !== (b.extraFlags & MARKER_FLAGS)) out.push('catalog');
  return out;
}

/** A directory whose only change is its mtime: that follows from entries added or removed in it, which are reported themselves. */
function onlyConsequential(kind: EntryKind, fields: ChangedField[]): boolean {
  return kind === 'directory' && fields.every((f) => f === 'mtime');
}

class CatalogSide {
  private readonly loaded = new Map<string, CatalogDb>();
  reads = 0;
  constructor(private readonly source: ObjectReader, readonly algorithm: HashAlgorithm) {}

  async open(hash: ContentHash, mountpoint: string): Promise<CatalogDb> {
    const key = hash.toHex();
    let db = this.loaded.get(key);
    if (!db) {
      this.reads++;
      db = (await fetchCatalog(this.source, hash).catch((err: Error) => {
        throw new VerificationError(`catalog of ${mountpoint || '/'}: ${err.message}`, hash.objectKey('C'));
      })).db;
      if (db.rootPrefix !== mountpoint) {
        throw new VerificationError(`catalog ${hash.toHex()} has root prefix '${db.rootPrefix}', expected '${mountpoint}'`, hash.objectKey('C'));
      }
      this.loaded.set(key, db);
    }
    return db;
  }

  close(): void {
    for (const db of this.loaded.values()) db.close();
  }
}

/** The changes from `from` to `to` below `path` (both readers of the same repository). */
export async function diffRevisions(from: RepositoryReader, to: RepositoryReader, path = ''): Promise<DiffResult> {
  const a = new CatalogSide(from.source, from.rootHash.algorithm);
  const b = new CatalogSide(to.source, to.rootHash.algorithm);
  const changes: PathChange[] = [];
  let skipped = 0;
  try {
    const chunkKey = (db: CatalogDb, p: string, e: DirectoryEntry, alg: HashAlgorithm) => () =>
      db.chunks(p, e.chunkAlgorithm ?? alg).map((c) => `${c.offset}:${c.size}:${c.hash.toHex()}`).join(',');

    // Where the children of `dir` live on one side: its own catalog, or the nested one mounted there.
    const childCatalog = async (side: CatalogSide, db: CatalogDb, dir: string, e: DirectoryEntry): Promise<{ db: CatalogDb; hash: ContentHash | null }> => {
      if (!(e.extraFlags & FLAG.nestedMountpoint)) return { db, hash: null };
      const ref = db.nestedCatalog(dir);
      if (!ref) throw new VerificationError(`${dir} is marked as a mountpoint but its catalog lists no nested catalog there`, dir);
      return { db: await side.open(ref.hash, dir), hash: ref.hash };
    };

    const nestedHash = (db: CatalogDb, dir: string, e: DirectoryEntry) =>
      e.extraFlags & FLAG.nestedMountpoint ? db.nestedCatalog(dir)?.hash ?? null : null;

    const compareDirs = async (dbA: CatalogDb, dbB: CatalogDb, dir: string): Promise<void> => {
      const kidsA = dbA.children(dir);
      const kidsB = dbB.children(dir);
      let i = 0;
      let j = 0;
      while (i < kidsA.length || j < kidsB.length) {
        const ea = kidsA[i];
        const eb = kidsB[j];
        if (eb && (!ea || eb.name < ea.name)) {
          changes.push({ op: 'added', path: `${dir}/${eb.name}`, type: kindOfMode(eb.mode) });
          j++;
          continue;
        }
        if (ea && (!eb || ea.name < eb.name)) {
          changes.push({ op: 'removed', path: `${dir}/${ea.name}`, type: kindOfMode(ea.mode) });
          i++;
          continue;
        }
        i++;
        j++;
        const p = `${dir}/${ea!.name}`;
        const fields = differences(ea!, eb!, chunkKey(dbA, p, ea!, a.algorithm), chunkKey(dbB, p, eb!, b.algorithm));
        const kind = kindOfMode(eb!.mode);
        if (fields.length > 0 && !onlyConsequential(kind, fields)) changes.push({ op: 'changed', path: p, type: kind, fields });
        if (kind !== 'directory' || kindOfMode(ea!.mode) !== 'directory') continue;
        const ha = nestedHash(dbA, p, ea!);
        const hb = nestedHash(dbB, p, eb!);
        if (ha && hb && ha.equals(hb)) {
          skipped++;
          continue;
        }
        const ca = await childCatalog(a, dbA, p, ea!);
        const cb = await childCatalog(b, dbB, p, eb!);
        await compareDirs(ca.db, cb.db, p);
      }
    };

    const start = path === '/' ? '' : path.replace(/\/+$/, '');
    if (from.rootHash.equals(to.rootHash)) return { changes, catalogsRead: 0, catalogsSkipped: 1 };
    let dbA = await a.open(from.rootHash, '');
    let dbB = await b.open(to.rootHash, '');
    // Descend to `path` through the mountpoints on its way.
    for (let at = ''; at !== start;) {
      const next = start.slice(0, start.indexOf('/', at.length + 1) === -1 ? undefined : start.indexOf('/', at.length + 1));
      const ea = dbA.lookup(next);
      const eb = dbB.lookup(next);
      if (!ea || !eb) throw new RefusedError('no-such-path', `${next} is not a directory in both revisions`);
      dbA = (await childCatalog(a, dbA, next, ea)).db;
      dbB = (await childCatalog(b, dbB, next, eb)).db;
      at = next;
    }
    await compareDirs(dbA, dbB, start);
    changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    return { changes, catalogsRead: a.reads + b.reads, catalogsSkipped: skipped };
  } finally {
    a.close();
    b.close();
  }
}
