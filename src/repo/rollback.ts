// Rollback (cvmfs_server rollback -t): a new revision whose tree is a tagged revision's, with the tags of
// the revisions after it removed (spec §8.2; history_sqlite's rollback condition).
import { RefusedError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Manifest } from '../format/manifest.js';
import { rolledBackTags, type Tag } from '../format/history.js';
import { commitTagRevision, type HeadEditOptions } from './tags.js';
import { describeRoot, readTags } from './revisions.js';

export interface RollbackOutcome {
  manifest: Manifest;
  /** The tag rolled back to, as it now reads (it names the new head revision). */
  target: Tag;
  /** Tags of later revisions, removed by the rollback. */
  removed: Tag[];
}

export async function rollbackToTag(store: ObjectStore, options: HeadEditOptions & { tag: string }): Promise<RollbackOutcome> {
  const { manifest, result } = await commitTagRevision(store, options, `rollback ${options.fqrn}`, async (head, tags) => {
    const target = tags.find((t) => t.name === options.tag);
    if (!target) throw new RefusedError('unknown-tag', `no tag '${options.tag}' in the history of ${options.fqrn}; nothing was changed (see 'scvmfs tag list')`);
    if (target.revision >= head.manifest.revision) {
      throw new RefusedError('rollback-to-head', `tag '${options.tag}' names revision ${target.revision}, the current head; there is nothing to roll back`);
    }
    const root = await describeRoot(store, target.hash);
    if (root.revision !== target.revision) {
      throw new RefusedError('tag-mismatch', `tag '${options.tag}' says revision ${target.revision} but its catalog is revision ${root.revision}`);
    }
    let removed: Tag[] = [];
    return {
      root: target.hash,
      tags: (newHead) => {
        const next = rolledBackTags(tags, target, newHead);
        removed = next.removed;
        return next.tags;
      },
      result: { target, removed: () => removed },
    };
  });
  const target = (await readTags(store, manifest)).find((t) => t.name === options.tag) ?? { ...result.target, hash: manifest.rootCatalog, revision: manifest.revision };
  return { manifest, target, removed: result.removed() };
}
