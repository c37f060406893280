// Which revisions a garbage collection keeps (spec §9, as `cvmfs_server gc` decides): the head always;
// of the revisions before it, those younger than `keepSince` and fewer than `keepRevisions` back (a
// revision goes when it is too deep OR too old); and every revision a tag the user named points to. The
// automatic tags (`generic-…`, `trunk-previous`) follow the policy: they go with the revisions they
// name, as CVMFS_AUTO_TAG_TIMESPAN has them go for the stock server, so they never pin every revision.
import { RefusedError } from '../errors.js';
import type { ContentHash } from '../format/hash.js';
import { TRUNK, TRUNK_PREVIOUS, type Tag } from '../format/history.js';
import type { Manifest } from '../format/manifest.js';
import type { ObjectReader } from '../store/object-store.js';
import { ContentHash as Hash } from '../format/hash.js';
import { fetchCatalog, MissingObjectError } from './objects.js';

export interface RetentionPolicy {
  /**
   * Keep the head and this many revisions in all, counting back from the head (at least 1); revisions
   * that repeat the tree of the one before them (tag edits, gc) count with it.
   */
  keepRevisions?: number;
  /** Keep revisions published at or after this time (unix seconds). */
  keepSince?: number;
}

export interface RevisionInfo {
  hash: ContentHash;
  revision: number;
  /** Publish time (the root catalog's last_modified), unix seconds. */
  timestamp: number;
  /** The root catalog's treeDigest: tag edits and gc's own revisions repeat their predecessor's tree. */
  tree?: string;
}

export interface RetentionPlan {
  kept: RevisionInfo[];
  dropped: RevisionInfo[];
  /** Roots kept because a named tag points to them (besides `kept`). */
  tagged: RevisionInfo[];
  keptTags: Tag[];
  removedTags: Tag[];
}

/** Tags that publishing adds by itself; they follow the retention policy. */
export function isAutomaticTag(name: string): boolean {
  return name.startsWith('generic-') || name === TRUNK_PREVIOUS;
}

/**
 * The revisions reachable from the head through previous_revision, newest first. The chain ends at the
 * first revision whose catalog an earlier collection deleted.
 */
export async function listRevisions(store: ObjectReader, manifest: Manifest): Promise<RevisionInfo[]> {
  const out: RevisionInfo[] = [];
  let hash: ContentHash | null = manifest.rootCatalog;
  while (hash) {
    let opened;
    try {
      opened = await fetchCatalog(store, hash);
    } catch (err) {
      if (err instanceof MissingObjectError && out.length > 0) break;
      throw err;
    }
    const { db } = opened;
    const previous = db.property('previous_revision');
    out.push({ hash, revision: db.revision, timestamp: Number(db.property('last_modified') ?? 0), tree: db.treeDigest() });
    db.close();
    hash = previous && !/^0*$/.test(previous) ? Hash.fromHex(previous) : null;
  }
  return out;
}

export function checkPolicy(p: RetentionPolicy): void {
  if (p.keepRevisions !== undefined && (!Number.isSafeInteger(p.keepRevisions) || p.keepRevisions < 1)) {
    throw new RefusedError('bad-option', `--keep-revisions must be a whole number of at least 1 (the head is always kept), got ${p.keepRevisions}`);
  }
  if (p.keepSince !== undefined && !Number.isFinite(p.keepSince)) throw new RefusedError('bad-option', `--keep-since must be a date or a duration, got ${p.keepSince}`);
  if (p.keepRevisions === undefined && p.keepSince === undefined) {
    throw new RefusedError('bad-option', 'say what to keep: --keep-revisions N and/or --keep-since <date|duration>');
  }
}

/** Applies the policy to `revisions` (newest first, as listRevisions gives them) and the history's tags. */
export function planRetention(revisions: readonly RevisionInfo[], tags: readonly Tag[], policy: RetentionPolicy): RetentionPlan {
  checkPolicy(policy);
  const kept: RevisionInfo[] = [];
  const dropped: RevisionInfo[] = [];
  // Depth counts trees, not revisions: a tag edit or gc's own revision repeats the tree before it, and
  // must not push a revision with content out of the policy.
  let depth = -1;
  revisions.forEach((r, i) => {
    if (i === 0 || r.tree === undefined || r.tree !== revisions[i - 1]!.tree) depth++;
    const tooDeep = policy.keepRevisions !== undefined && depth >= policy.keepRevisions;
    const tooOld = policy.keepSince !== undefined && r.timestamp < policy.keepSince;
    (i === 0 || !(tooDeep || tooOld) ? kept : dropped).push(r);
  });
  const keptHex = new Set(kept.map((r) => r.hash.toHex()));
  const keptTags: Tag[] = [];
  const removedTags: Tag[] = [];
  const tagged = new Map<string, RevisionInfo>();
  for (const t of tags) {
    const hex = t.hash.toHex();
    if (t.name === TRUNK || !isAutomaticTag(t.name) || keptHex.has(hex)) {
      keptTags.push(t);
      if (!keptHex.has(hex)) tagged.set(hex, { hash: t.hash, revision: t.revision, timestamp: t.timestamp });
    } else {
      removedTags.push(t);
    }
  }
  const taggedHex = new Set(tagged.keys());
  return { kept, dropped: dropped.filter((r) => !taggedHex.has(r.hash.toHex())), tagged: [...tagged.values()], keptTags, removedTags };
}
