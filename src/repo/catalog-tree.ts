// The repository's catalogs as one editable tree: path operations are routed to the catalog that owns
// the path, only the catalogs touched are loaded, and commit writes the changed ones bottom-up
// (children before parents, spec §5) with their statistics kept exact by deltas, so the cost of a
// change follows the change and not the size of the repository (design invariant 5).
import { ContentHash, type HashAlgorithm } from '../format/hash.js';
import {
  addCounters, CatalogDb, zeroCounters, type Counters, type FileChunk, type NestedCatalogRef,
} from '../format/catalog-db.js';
import { FLAG, S_IFDIR, S_IFMT, type DirectoryEntry, type EntryStat } from '../format/catalog-entry.js';
import { parentPath, isWithin } from '../format/md5path.js';
import { prepareObjectAsync, type PreparedObject } from '../format/zlib-object.js';
import type { ScratchSpace } from './scratch.js';
import { Slots } from '../store/slots.js';

interface CatalogHandle {
  mountpoint: string;
  db: CatalogDb;
  /** Hash this catalog had in the head, null for a catalog created in this edit. */
  oldHash: ContentHash | null;
  /** self + subtree counters as stored in the head: what the parent's subtree counters include. */
  oldTotals: Counters;
  storedSubtree: Counters;
  /** Changes to this catalog's subtree counters caused by edits in nested catalogs. */
  subtreeDelta: Counters;
  dirty: boolean;
  parent: CatalogHandle | null;
  /** Highest hardlink group id handed out in this edit (its rows may not be written yet). */
  groupsIssued?: number;
}

/** Loads a catalog by hash; with `file`, into that scratch file instead of memory. */
export type CatalogLoader = (hash: ContentHash, file?: string) => Promise<CatalogDb>;

export interface TreeOptions {
  /** Where loaded and new catalogs live while edited; memory when absent. */
  scratch?: ScratchSpace;
}

export interface CommittedCatalog {
  mountpoint: string;
  object: PreparedObject;
  /** Uncompressed SQLite size. */
  size: number;
  previous: ContentHash | null;
}

export interface CommitResult {
  rootHash: ContentHash;
  rootSize: number;
  /** Every catalog written, deepest first: upload in this order. */
  catalogs: CommittedCatalog[];
}

/** Catalogs held serialized at once during a commit: libuv's thread pool, which deflates them, has 4 threads. */
const CATALOGS_SERIALIZED_AT_ONCE = 4;
/** Rows a catalog move handles between two turns of the event loop (about 0.3 s here). */
const MOVED_ROWS_PER_YIELD = 10_000;
const PLACEHOLDER_HASH = new ContentHash('sha1', Buffer.alloc(20));

function isDir(e: DirectoryEntry): boolean {
  return (e.mode & S_IFMT) === S_IFDIR;
}

function totals(db: CatalogDb): { total: Counters; subtree: Counters } {
  const c = db.readCounters();
  return { total: addCounters(c.self, c.subtree), subtree: c.subtree };
}

function depth(mountpoint: string): number {
  return mountpoint === '' ? 0 : mountpoint.split('/').length - 1;
}

/** Every ancestor-or-self of a path, shortest first, excluding the root ''. */
function pathPrefixes(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/', 1); i !== -1; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  if (path !== '') out.push(path);
  return out;
}

export class CatalogTree {
  private readonly handles = new Map<string, CatalogHandle>();
  /**
   * The directory last found to exist, so that the files of one directory need not look their parent
   * up one by one. Forgotten by every edit that can remove or move rows (only upsert keeps it).
   */
  private knownDir: string | null = null;
  private readonly touchedDirs = new Set<string>();
  private committed = false;

  private constructor(private readonly load: CatalogLoader, readonly algorithm: HashAlgorithm, root: CatalogHandle,
    private readonly scratch?: ScratchSpace) {
    this.handles.set('', root);
  }

  /** Opens the tree of an existing repository at its root catalog. */
  static async open(load: CatalogLoader, rootHash: ContentHash, algorithm: HashAlgorithm, options: TreeOptions = {}): Promise<CatalogTree> {
    const db = await load(rootHash, options.scratch?.file());
    const t = totals(db);
    return new CatalogTree(load, algorithm, {
      mountpoint: '', db, oldHash: rootHash, oldTotals: t.total, storedSubtree: t.subtree,
      subtreeDelta: zeroCounters(), dirty: false, parent: null,
    }, options.scratch);
  }

  /** A new repository: a root catalog holding only the root directory entry. */
  static createEmpty(load: CatalogLoader, algorithm: HashAlgorithm, rootEntry: DirectoryEntry, ttl: number, options: TreeOptions = {}): CatalogTree {
    const db = CatalogDb.create({ revision: 0, lastModified: 0, ttl }, options.scratch?.file());
    db.put('', { ...rootEntry, name: '', linkcount: 2, hardlinkGroup: 0 });
    return new CatalogTree(load, algorithm, {
      mountpoint: '', db, oldHash: null, oldTotals: zeroCounters(), storedSubtree: zeroCounters(),
      subtreeDelta: zeroCounters(), dirty: true, parent: null,
    }, options.scratch);
  }

  get root(): CatalogDb {
    return this.handles.get('')!.db;
  }

  private async child(parent: CatalogHandle, mountpoint: string): Promise<CatalogHandle> {
    const known = this.handles.get(mountpoint);
    if (known) return known;
    const ref = parent.db.nestedCatalog(mountpoint);
    if (!ref) throw new Error(`catalog of '${parent.mountpoint || '/'}' lists no nested catalog '${mountpoint}'`);
    const db = await this.load(ref.hash, this.scratch?.file());
    if (db.rootPrefix !== mountpoint) {
      throw new Error(`nested catalog ${ref.hash.toHex()} has root_prefix '${db.rootPrefix}', expected '${mountpoint}'`);
    }
    const t = totals(db);
    const handle: CatalogHandle = {
      mountpoint, db, oldHash: ref.hash, oldTotals: t.total, storedSubtree: t.subtree,
      subtreeDelta: zeroCounters(), dirty: false, parent,
    };
    this.handles.set(mountpoint, handle);
    return handle;
  }

  /** The catalog holding `path`'s own row (for a mountpoint: the parent's copy). */
  private async locate(path: string): Promise<{ handle: CatalogHandle; mountpoint: boolean }> {
    let handle = this.handles.get('')!;
    const prefixes = pathPrefixes(path);
    let from = 0;
    for (;;) {
      let next: string | null = null;
      for (let i = from; i < prefixes.length; i++) {
        if (handle.db.hasNestedCatalog(prefixes[i]!)) {
          next = prefixes[i]!;
          from = i + 1;
          break;
        }
      }
      if (next === null) return { handle, mountpoint: false };
      if (next === path) return { handle, mountpoint: true };
      handle = await this.child(handle, next);
    }
  }

  /** The catalog holding the children of directory `dir`. */
  private async childrenHandle(dir: string): Promise<CatalogHandle> {
    const loc = await this.locate(dir);
    return loc.mountpoint ? this.child(loc.handle, dir) : loc.handle;
  }

  async lookup(path: string): Promise<DirectoryEntry | null> {
    const loc = await this.locate(path);
    return loc.handle.db.lookup(path);
  }

  async list(dir: string): Promise<DirectoryEntry[]> {
    return (await this.childrenHandle(dir)).db.children(dir);
  }

  /** What a source walk compares for each child of `dir` (see EntryStat), in no particular order. */
  async listStats(dir: string): Promise<EntryStat[]> {
    return (await this.childrenHandle(dir)).db.childStats(dir);
  }

  async isMountpoint(path: string): Promise<boolean> {
    return path === '' || (await this.locate(path)).mountpoint;
  }

  async chunks(path: string, algorithm: HashAlgorithm): Promise<FileChunk[]> {
    return (await this.locate(path)).handle.db.chunks(path, algorithm);
  }

  private markDirty(handle: CatalogHandle): void {
    handle.dirty = true;
  }

  /**
   * Adds or replaces the entry at `path`. Its parent must be an existing directory. `absent`: the caller
   * compared against this tree and found no entry there, which saves the lookup (most rows of a first
   * publish); a wrong claim fails on the catalog's primary key instead of writing a second row.
   */
  async upsert(path: string, entry: DirectoryEntry, chunks: FileChunk[] = [], absent = false): Promise<void> {
    this.assertOpen();
    if (path !== '') {
      const dir = parentPath(path);
      if (dir !== this.knownDir) {
        const parent = await this.lookup(dir);
        if (!parent || !isDir(parent)) throw new Error(`cannot add '${path}': parent is not a directory in the repository`);
        this.knownDir = dir;
      }
    }
    const loc = await this.locate(path);
    const existing = absent ? null : loc.handle.db.lookup(path);
    if (existing && isDir(existing) && !isDir(entry)) {
      await this.remove(path);
      return this.upsert(path, entry, chunks);
    }
    // A metadata-only change of a chunked file keeps its chunk list (put() drops the rows).
    if (chunks.length === 0 && (entry.extraFlags & FLAG.chunked) && existing && (existing.extraFlags & FLAG.chunked) && !loc.mountpoint) {
      chunks = loc.handle.db.chunks(path, existing.chunkAlgorithm ?? this.algorithm);
    }
    const row: DirectoryEntry = { ...entry };
    if (isDir(row)) {
      row.linkcount = existing && isDir(existing) ? existing.linkcount : 2;
      row.hardlinkGroup = 0;
      if (!existing || !isDir(existing)) this.touchedDirs.add(path);
    }
    if (path !== '' && (!existing || isDir(existing) !== isDir(row))) this.touchedDirs.add(parentPath(path));
    if (loc.mountpoint) {
      const nested = await this.child(loc.handle, path);
      loc.handle.db.put(path, { ...row, extraFlags: (row.extraFlags & ~FLAG.nestedRoot) | FLAG.nestedMountpoint });
      nested.db.put(path, { ...row, extraFlags: (row.extraFlags & ~FLAG.nestedMountpoint) | FLAG.nestedRoot });
      this.markDirty(nested);
    } else {
      const keep = path === '' ? 0 : (existing?.extraFlags ?? 0) & FLAG.nestedRoot;
      loc.handle.db.put(path, { ...row, extraFlags: (row.extraFlags & ~(FLAG.nestedMountpoint | FLAG.nestedRoot)) | keep }, existing !== null);
      if (chunks.length > 0) loc.handle.db.setChunks(path, chunks);
    }
    this.markDirty(loc.handle);
  }

  /** Removes `path` and everything below it, nested catalogs included. Missing paths are fine. */
  async remove(path: string): Promise<void> {
    this.knownDir = null;
    this.assertOpen();
    if (path === '') throw new Error('the repository root cannot be removed');
    const loc = await this.locate(path);
    const existing = loc.handle.db.lookup(path);
    if (!existing) return;
    if (loc.mountpoint) {
      await this.dropNested(loc.handle, path);
    } else if (isDir(existing)) {
      await this.removeDescendants(loc.handle, path);
    }
    loc.handle.db.delete(path);
    if (isDir(existing)) this.touchedDirs.add(parentPath(path));
    this.markDirty(loc.handle);
  }

  private async removeDescendants(handle: CatalogHandle, dir: string): Promise<void> {
    for (const e of handle.db.children(dir)) {
      const p = `${dir}/${e.name}`;
      if (isDir(e)) {
        if (e.extraFlags & FLAG.nestedMountpoint) await this.dropNested(handle, p);
        else await this.removeDescendants(handle, p);
      }
      handle.db.delete(p);
    }
  }

  /** Forgets a nested catalog and all below it; the parent's subtree counters lose what it contributed. */
  private async dropNested(parent: CatalogHandle, mountpoint: string): Promise<void> {
    const nested = await this.child(parent, mountpoint);
    parent.subtreeDelta = addCounters(parent.subtreeDelta, nested.oldTotals, -1);
    parent.db.removeNestedCatalog(mountpoint);
    for (const key of [...this.handles.keys()]) {
      if (key !== '' && isWithin(key, mountpoint)) this.handles.delete(key);
    }
    this.markDirty(parent);
  }

  /** Makes directory `path` the root of a new nested catalog, moving its subtree there. */
  async createNested(path: string): Promise<void> {
    this.knownDir = null;
    this.assertOpen();
    if (path === '') throw new Error('the root catalog already covers the repository root');
    const loc = await this.locate(path);
    if (loc.mountpoint) return;
    const parent = loc.handle;
    const entry = parent.db.lookup(path);
    if (!entry || !isDir(entry)) throw new Error(`cannot create a nested catalog at '${path}': not a directory`);
    const db = CatalogDb.create({ revision: 0, lastModified: 0, rootPrefix: path }, this.scratch?.file());
    const nested: CatalogHandle = {
      mountpoint: path, db, oldHash: null, oldTotals: zeroCounters(), storedSubtree: zeroCounters(),
      subtreeDelta: zeroCounters(), dirty: true, parent,
    };
    db.put(path, { ...entry, extraFlags: entry.extraFlags | FLAG.nestedRoot });
    await this.moveDescendants(parent, nested, path);
    parent.db.put(path, { ...entry, extraFlags: entry.extraFlags | FLAG.nestedMountpoint });
    // locate() finds nested catalogs through the parent's nested_catalogs rows; commit replaces this one.
    parent.db.setNestedCatalog({ path, hash: PLACEHOLDER_HASH, size: 0 });
    this.handles.set(path, nested);
    this.markDirty(parent);
  }

  /** Merges the nested catalog at `path` back into the catalog above it. */
  async removeNested(path: string): Promise<void> {
    this.knownDir = null;
    this.assertOpen();
    const loc = await this.locate(path);
    if (!loc.mountpoint) return;
    const parent = loc.handle;
    const nested = await this.child(parent, path);
    const root = nested.db.lookup(path)!;
    // Hardlink group ids are unique per catalog: the merged rows' groups move above the parent's own.
    const offset = Math.max(parent.db.maxHardlinkGroup(), parent.groupsIssued ?? 0);
    parent.groupsIssued = offset + Math.max(nested.db.maxHardlinkGroup(), nested.groupsIssued ?? 0);
    await this.moveDescendants(nested, parent, path, offset);
    parent.subtreeDelta = addCounters(parent.subtreeDelta, nested.oldTotals, -1);
    parent.subtreeDelta = addCounters(parent.subtreeDelta, addCounters(nested.storedSubtree, nested.subtreeDelta));
    parent.db.removeNestedCatalog(path);
    parent.db.put(path, { ...root, extraFlags: root.extraFlags & ~(FLAG.nestedRoot | FLAG.nestedMountpoint) });
    this.handles.delete(path);
    this.markDirty(parent);
  }

  /**
   * Moves the rows below `dir` from one catalog to another, with nested catalog references; hardlink
   * groups are renumbered by `groupOffset` when the destination has groups of its own.
   */
  private async moveDescendants(from: CatalogHandle, to: CatalogHandle, dir: string, groupOffset = 0): Promise<void> {
    const pending = [dir];
    let sinceYield = 0;
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      const moved = from.db.moveChildren(to.db, next, groupOffset);
      pending.push(...moved.directories);
      for (const p of moved.mountpoints) {
        const child = await this.child(from, p);
        to.db.setNestedCatalog(from.db.nestedCatalog(p)!);
        from.db.removeNestedCatalog(p);
        from.subtreeDelta = addCounters(from.subtreeDelta, child.oldTotals, -1);
        to.subtreeDelta = addCounters(to.subtreeDelta, child.oldTotals);
        child.parent = to;
      }
      // Balancing a 10^6-entry first publish moves 900,000 rows (tens of seconds): timers such as the
      // publish lock's renewal must still run.
      sinceYield += moved.rows;
      if (sinceYield >= MOVED_ROWS_PER_YIELD) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }

  /** The nested catalog mounted at `path`, if `path` is a mountpoint: its reference and mountpoint row. */
  async nestedAt(path: string): Promise<{ ref: NestedCatalogRef; row: DirectoryEntry; totals: Counters } | null> {
    if (path === '') return null;
    const loc = await this.locate(path);
    if (!loc.mountpoint) return null;
    const ref = loc.handle.db.nestedCatalog(path)!;
    const row = loc.handle.db.lookup(path)!;
    const child = await this.child(loc.handle, path);
    // An unedited catalog's totals are the ones stored in it; recounting its rows would scan them all.
    const totals = child.dirty
      ? addCounters(addCounters(child.storedSubtree, child.subtreeDelta), child.db.computeSelfCounters())
      : child.oldTotals;
    return { ref: { ...ref, hash: child.oldHash ?? ref.hash }, row, totals };
  }

  /**
   * Mounts another tree's nested catalog at `path` in place of this tree's (both must be mountpoints
   * there): the rebase of a writer whose changes all lie below `path`, at the cost of one reference.
   */
  async graftNested(path: string, source: { ref: NestedCatalogRef; row: DirectoryEntry; totals: Counters }): Promise<void> {
    this.knownDir = null;
    this.assertOpen();
    const loc = await this.locate(path);
    if (!loc.mountpoint) throw new Error(`cannot graft at '${path}': not a nested catalog mountpoint`);
    const parent = loc.handle;
    const current = await this.child(parent, path);
    parent.subtreeDelta = addCounters(addCounters(parent.subtreeDelta, current.oldTotals, -1), source.totals);
    parent.db.setNestedCatalog({ path, hash: source.ref.hash, size: source.ref.size });
    parent.db.put(path, { ...source.row, extraFlags: (source.row.extraFlags & ~FLAG.nestedRoot) | FLAG.nestedMountpoint });
    for (const key of [...this.handles.keys()]) {
      if (key !== '' && isWithin(key, path)) {
        this.handles.get(key)!.db.close();
        this.handles.delete(key);
      }
    }
    this.markDirty(parent);
  }

  /** The catalogs loaded so far, for the balancer. */
  loadedCatalogs(): { mountpoint: string; db: CatalogDb; dirty: boolean }[] {
    this.knownDir = null;
    return [...this.handles.values()].map((h) => ({ mountpoint: h.mountpoint, db: h.db, dirty: h.dirty }));
  }

  /** A hardlink group id not yet used in the catalog that holds the children of `dir`. */
  async newHardlinkGroup(dir: string): Promise<number> {
    const handle = await this.childrenHandle(dir);
    const next = Math.max(handle.db.maxHardlinkGroup(), handle.groupsIssued ?? 0) + 1;
    handle.groupsIssued = next;
    return next;
  }

  /** True when nothing has been changed since open. */
  get changed(): boolean {
    return [...this.handles.values()].some((h) => h.dirty);
  }

  /**
   * Writes every changed catalog, deepest first, with exact counters and properties. The root catalog
   * gets `revision` (the manifest's S); other changed catalogs their own revision + 1.
   */
  async commit(revision: number, now: number, options: { previousRoot?: ContentHash } = {}): Promise<CommitResult> {
    this.knownDir = null;
    this.assertOpen();
    await this.fixDirectoryLinkcounts();
    for (const h of this.handles.values()) {
      if (h.dirty) for (let p = h.parent; p; p = p.parent) p.dirty = true;
    }
    // The root always gets the new revision number, even when only its properties change.
    if (options.previousRoot) this.handles.get('')!.dirty = true;
    const dirty = [...this.handles.values()].filter((h) => h.dirty)
      .sort((a, b) => depth(b.mountpoint) - depth(a.mountpoint) || (a.mountpoint < b.mountpoint ? -1 : 1));
    const catalogs: CommittedCatalog[] = [];
    // A parent names its children's hashes, so a depth waits for the one below; catalogs of one depth
    // are independent and compress in parallel (most of a small publish into a large tree), a few at a
    // time: each serialized catalog is a whole copy of its database (about 18 MB at 90,000 rows), and
    // eleven at once were a fifth of a 10^6-entry publish's peak RSS.
    const serializing = new Slots(CATALOGS_SERIALIZED_AT_ONCE);
    for (let i = 0; i < dirty.length;) {
      let j = i;
      while (j < dirty.length && depth(dirty[j]!.mountpoint) === depth(dirty[i]!.mountpoint)) j++;
      const level = await Promise.all(dirty.slice(i, j).map((h) => serializing.run(async () => {
        const self = h.db.computeSelfCounters();
        const subtree = addCounters(h.storedSubtree, h.subtreeDelta);
        h.db.writeCounters(self, subtree);
        h.db.setProperties({
          revision: h.parent === null ? revision : h.oldHash ? h.db.revision + 1 : revision,
          lastModified: now,
          previousRevision: (h.parent === null ? options.previousRoot : undefined) ?? h.oldHash ?? undefined,
        });
        const bytes = h.db.serialize();
        return { h, self, subtree, size: bytes.length, object: await prepareObjectAsync(this.algorithm, bytes, 'C') };
      })));
      for (const { h, self, subtree, size, object } of level) {
        catalogs.push({ mountpoint: h.mountpoint, object, size, previous: h.oldHash });
        if (h.parent) {
          h.parent.db.setNestedCatalog({ path: h.mountpoint, hash: object.hash, size });
          h.parent.subtreeDelta = addCounters(h.parent.subtreeDelta, addCounters(addCounters(self, subtree), h.oldTotals, -1));
        }
      }
      i = j;
    }
    this.committed = true;
    const root = catalogs[catalogs.length - 1]!;
    return { rootHash: root.object.hash, rootSize: root.size, catalogs };
  }

  /** Directories carry 2 + their number of child directories (both copies for a mountpoint). */
  private async fixDirectoryLinkcounts(): Promise<void> {
    for (const dir of this.touchedDirs) {
      const loc = await this.locate(dir).catch(() => null);
      const entry = loc?.handle.db.lookup(dir);
      if (!loc || !entry || !isDir(entry)) continue;
      const holder = loc.mountpoint ? await this.child(loc.handle, dir) : loc.handle;
      const linkcount = 2 + holder.db.countChildDirectories(dir);
      if (linkcount === entry.linkcount) continue;
      loc.handle.db.put(dir, { ...entry, linkcount });
      this.markDirty(loc.handle);
      if (loc.mountpoint) {
        const root = holder.db.lookup(dir)!;
        holder.db.put(dir, { ...root, linkcount });
        this.markDirty(holder);
      }
    }
    this.touchedDirs.clear();
  }

  private assertOpen(): void {
    if (this.committed) throw new Error('catalog tree already committed; open it again from the new head');
  }

  close(): void {
    for (const h of this.handles.values()) h.db.close();
    this.handles.clear();
  }
}
