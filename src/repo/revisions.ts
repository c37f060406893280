// Finding an older revision's root catalog: by tag (history database) or by revision number (the
// history's tags first, then the previous_revision chain of root catalogs, one catalog per step back).
import { RefusedError } from '../errors.js';
import type { ObjectReader } from '../store/object-store.js';
import { ContentHash } from '../format/hash.js';
import type { Manifest } from '../format/manifest.js';
import { readHistory, type Tag } from '../format/history.js';
import { fetchCatalog, fetchObjectContent } from './objects.js';

/** A root catalog as a tag records it (everything of a tag but its name and description). */
export type RevisionRoot = Omit<Tag, 'name' | 'description'>;

/** Which revision to read: a number or a tag name. */
export type RevisionSelector = { revision: number } | { tag: string };

/** The tags of the manifest's history database (none when it names no history). */
export async function readTags(store: ObjectReader, manifest: Manifest): Promise<Tag[]> {
  if (!manifest.history) return [];
  return readHistory(await fetchObjectContent(store, manifest.history, 'H')).tags;
}

/** Opens a root catalog and reads what a tag records about it; refuses a nested catalog. */
export async function describeRoot(store: ObjectReader, hash: ContentHash): Promise<RevisionRoot> {
  const { db, size } = await fetchCatalog(store, hash);
  try {
    if (db.rootPrefix !== '') {
      throw new RefusedError('not-a-root-catalog', `catalog ${hash.toHex()} is the nested catalog of '${db.rootPrefix}', not a root catalog`);
    }
    return { hash, size, revision: db.revision, timestamp: Number(db.property('last_modified') ?? 0) };
  } finally {
    db.close();
  }
}

/** The root catalog of revision `revision`, found through the tags or by walking back from the head. */
export async function findRevision(store: ObjectReader, manifest: Manifest, revision: number, tags?: Tag[]): Promise<RevisionRoot> {
  if (!Number.isSafeInteger(revision) || revision < 1 || revision > manifest.revision) {
    throw new RefusedError('unknown-revision', `revision ${revision} does not exist: the head is revision ${manifest.revision}`);
  }
  for (const t of tags ?? await readTags(store, manifest)) {
    if (t.revision !== revision) continue;
    const root = await describeRoot(store, t.hash);
    if (root.revision === revision) return root;
  }
  let hash: ContentHash | null = manifest.rootCatalog;
  while (hash) {
    const { db, size } = await fetchCatalog(store, hash);
    const at = db.revision;
    const previous = db.property('previous_revision');
    const timestamp = Number(db.property('last_modified') ?? 0);
    db.close();
    if (at === revision) return { hash, size, revision, timestamp };
    if (at < revision) break;
    hash = previous && !/^0*$/.test(previous) ? ContentHash.fromHex(previous) : null;
  }
  throw new RefusedError('unknown-revision', `revision ${revision} is not reachable: no tag names it and the chain of previous revisions skips it`);
}

/** The root catalog a selector names. */
export async function selectRevision(store: ObjectReader, manifest: Manifest, at: RevisionSelector): Promise<RevisionRoot & { tag?: Tag }> {
  const tags = await readTags(store, manifest);
  if ('revision' in at) return findRevision(store, manifest, at.revision, tags);
  const tag = tags.find((t) => t.name === at.tag);
  if (!tag) throw new RefusedError('unknown-tag', `no tag '${at.tag}' in the history of ${manifest.fqrn} (see 'scvmfs tag list')`);
  return { hash: tag.hash, size: tag.size, revision: tag.revision, timestamp: tag.timestamp, tag };
}
