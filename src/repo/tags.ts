// Tag edits (cvmfs_server tag -a / -r): the history database is rewritten and named by a new signed
// manifest. Unlike the stock server, which re-signs the manifest at the same revision, every edit is a
// revision here (the same tree under a root catalog with the next revision number): the writers tell a
// moved head by its revision, so a manifest must never change without it.
import { RefusedError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import type { ContentHash } from '../format/hash.js';
import type { Manifest } from '../format/manifest.js';
import { moveUndoTags, withTag, withoutTags, type Tag } from '../format/history.js';
import { CatalogTree } from './catalog-tree.js';
import { PublishLock } from './publish-lock.js';
import { catalogLoader, commitRevision, type Head } from './repository.js';
import { assertSigningKeys, openTrustedHead } from './trusted-head.js';
import { describeRoot, findRevision, readTags, type RevisionRoot } from './revisions.js';

export interface HeadEditOptions {
  fqrn: string;
  /** Signing keys, and the master public key (`<fqrn>.pub`) the head is checked against. */
  keys: { repositoryKeyPem: string; certificatePem: string; masterPublicKeyPem: string };
  now?: Date;
  onWarning?: (message: string) => void;
}

/**
 * Runs `fn` on the verified head under the publish lock, then commits the head's tree as the next
 * revision with the tag list `fn` returns (compare-and-swap on the manifest, as every commit).
 */
export async function commitTagRevision<T>(store: ObjectStore, options: HeadEditOptions, holder: string,
  plan: (head: Head, tags: Tag[]) => Promise<{ root: ContentHash; tags: (head: RevisionRoot) => Tag[]; result: T;
    reflogRemove?: ContentHash[]; garbageCollectable?: boolean }>): Promise<{ manifest: Manifest; result: T }> {
  // Nothing is signed on top of a head that fails the check against the configured master key.
  const anchor = { fqrn: options.fqrn, masterPublicKeyPem: options.keys.masterPublicKeyPem };
  assertSigningKeys(await openTrustedHead(store, anchor, { now: options.now, onWarning: options.onWarning }), options.keys);
  const lock = await PublishLock.acquire(store, holder);
  try {
    const head = await openTrustedHead(store, anchor, { now: options.now });
    assertSigningKeys(head, options.keys);
    const planned = await plan(head, await readTags(store, head.manifest));
    const tree = await CatalogTree.open(catalogLoader(store), planned.root, head.algorithm);
    try {
      lock.check();
      const committed = await commitRevision(store, head, tree, {
        keys: options.keys, now: options.now, previousRoot: head.manifest.rootCatalog,
        tags: (_previous, newHead) => planned.tags(newHead),
        reflogRemove: planned.reflogRemove, garbageCollectable: planned.garbageCollectable,
      });
      return { manifest: committed.manifest, result: planned.result };
    } finally {
      tree.close();
    }
  } finally {
    await lock.release();
  }
}

export interface AddTagOptions extends HeadEditOptions {
  name: string;
  description?: string;
  /** The revision to tag; the head (the new revision, same tree) when absent. Giving one moves an existing tag. */
  target?: { revision: number } | { root: ContentHash };
}

/** Adds (or, with an explicit target, moves) a tag. */
export async function addTag(store: ObjectStore, options: AddTagOptions): Promise<{ manifest: Manifest; tag: Tag; movedFrom?: Tag }> {
  const { manifest, result } = await commitTagRevision(store, options, `tag ${options.fqrn}`, async (head, tags) => {
    const target = options.target === undefined ? null
      : 'revision' in options.target ? await findRevision(store, head.manifest, options.target.revision, tags)
      : await describeRoot(store, options.target.root);
    const make = (root: RevisionRoot): Tag => ({ ...root, name: options.name, description: options.description ?? '' });
    // Checked now, against the tags as they are, so that a refused edit writes nothing.
    const headNow = { hash: head.manifest.rootCatalog, size: head.manifest.rootCatalogSize ?? 0, revision: head.manifest.revision, timestamp: head.manifest.publishedAt };
    const probe = withTag(tags, make(target ?? headNow), target !== null);
    return {
      root: head.manifest.rootCatalog,
      tags: (newHead) => {
        const edited = withTag(tags, make(target ?? newHead), target !== null);
        return moveUndoTags(edited.tags, newHead);
      },
      result: { movedFrom: probe.moved, target },
    };
  });
  const tag = (await readTags(store, manifest)).find((t) => t.name === options.name)!;
  return { manifest, tag, movedFrom: result.movedFrom };
}

/** Removes tags (all must exist); the catalogs they named stay in the store. */
export async function removeTags(store: ObjectStore, options: HeadEditOptions & { names: string[] }): Promise<{ manifest: Manifest; removed: Tag[] }> {
  if (options.names.length === 0) throw new RefusedError('no-tag-names', 'name at least one tag to remove');
  const { manifest, result } = await commitTagRevision(store, options, `tag ${options.fqrn}`, async (head, tags) => {
    const edited = withoutTags(tags, options.names);
    return { root: head.manifest.rootCatalog, tags: (newHead) => moveUndoTags(edited.tags, newHead), result: edited.removed };
  });
  return { manifest, removed: result };
}
