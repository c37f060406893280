// Automatic catalog balancing (spec §5; the stock CVMFS_AUTOCATALOGS): a catalog heavier than the
// maximum weight is split by making its heaviest subdirectories nested catalogs, and an automatically
// created catalog that became lighter than the minimum is merged back into its parent. Only catalogs
// changed in this edit are weighed, so an incremental publish never reads the rest of the repository.
import type { ContentHash } from '../format/hash.js';
import { S_IFREG } from '../format/catalog-entry.js';
import { md5Path } from '../format/md5path.js';
import type { CatalogTree } from './catalog-tree.js';
import { isWithin } from '../format/md5path.js';

export const CATALOG_MARKER = '.cvmfscatalog';
export const AUTOCATALOG_MARKER = '.cvmfsautocatalog';

export interface BalanceOptions extends MarkerOptions {
  /** Rows above which a catalog is split (stock default CVMFS_AUTOCATALOGS_MAX_WEIGHT = 100000). */
  maxWeight: number;
  /** Rows below which an automatic catalog is merged into its parent (stock default 1000). */
  minWeight: number;
  onWarning?: (message: string) => void;
  /**
   * Only catalogs at or below this path are split, and only those strictly below it merged: a writer's
   * commit must not reshape catalogs other writers share.
   */
  within?: string;
}

export const DEFAULT_MAX_WEIGHT = 100_000;
export const DEFAULT_MIN_WEIGHT = 1_000;

export interface BalanceResult {
  split: string[];
  merged: string[];
}

interface DirNode {
  key: string;
  name: string;
  parent: DirNode | null;
  /** Rows in this catalog at or below this directory (1 for the directory itself). */
  weight: number;
  children: DirNode[];
  mountpoint: boolean;
}

/** What the markers of an automatic catalog are made of: empty files owned by the publisher. */
export interface MarkerOptions {
  emptyHash: ContentHash;
  owner: { uid: number; gid: number };
  /** Seconds since the epoch for the markers' mtime. */
  now: number;
}

/**
 * Makes directory `path` an automatic nested catalog: the catalog, then its `.cvmfscatalog` and
 * `.cvmfsautocatalog` markers (mode 0600, empty), as the stock balancer leaves them (spec §5).
 */
export async function makeAutomaticCatalog(tree: CatalogTree, path: string, markers: MarkerOptions): Promise<void> {
  await tree.createNested(path);
  for (const name of [CATALOG_MARKER, AUTOCATALOG_MARKER]) {
    if (await tree.lookup(`${path}/${name}`)) continue;
    await tree.upsert(`${path}/${name}`, {
      name, mode: S_IFREG | 0o600, size: 0, mtime: markers.now, mtimeNs: 0, uid: markers.owner.uid, gid: markers.owner.gid,
      hash: markers.emptyHash, symlink: '', linkcount: 1, hardlinkGroup: 0, extraFlags: 0, compression: 'zlib', xattr: null,
    });
  }
}

function pathOf(node: DirNode, root: DirNode, mountpoint: string): string {
  const names: string[] = [];
  for (let n: DirNode | null = node; n && n !== root; n = n.parent) names.unshift(n.name);
  return names.length === 0 ? mountpoint : `${mountpoint}/${names.join('/')}`;
}

/** The catalog's directories as a tree weighted by the rows below each one. */
function weighTree(shape: ReturnType<import('../format/catalog-db.js').CatalogDb['directoryShape']>, mountpoint: string): DirNode | null {
  const h = md5Path(mountpoint);
  const rootKey = `${h.h1}:${h.h2}`;
  const nodes = new Map<string, DirNode>();
  for (const d of shape) {
    nodes.set(d.key, { key: d.key, name: d.name, parent: null, weight: 1 + (d.mountpoint ? 0 : d.children), children: [], mountpoint: d.mountpoint });
  }
  const root = nodes.get(rootKey);
  if (!root) return null;
  root.mountpoint = false;
  for (const d of shape) {
    if (d.key === rootKey) continue;
    const node = nodes.get(d.key)!;
    const parent = nodes.get(d.parent);
    if (!parent) continue;
    node.parent = parent;
    parent.children.push(node);
  }
  // Child directories were counted once as rows of their parent; add their own subtrees below that.
  const order: DirNode[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    order.push(n);
    for (const c of n.children) stack.push(c);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n.parent) n.parent.weight += n.weight - 1;
  }
  return root;
}

export async function balanceCatalogs(tree: CatalogTree, options: BalanceOptions): Promise<BalanceResult> {
  if (!(options.minWeight >= 1 && options.maxWeight > options.minWeight)) {
    throw new Error(`catalog weights must satisfy 1 <= min (${options.minWeight}) < max (${options.maxWeight})`);
  }
  const result: BalanceResult = { split: [], merged: [] };
  const warn = options.onWarning ?? (() => {});

  // Merge first (deepest first), so that a parent grown by a merge is weighed afterwards.
  const mine = (m: string) => options.within === undefined || isWithin(m, options.within);
  const light = tree.loadedCatalogs()
    .filter((c) => c.dirty && c.mountpoint !== '' && mine(c.mountpoint) && c.mountpoint !== options.within && c.db.rowCount() < options.minWeight &&
      c.db.lookup(`${c.mountpoint}/${AUTOCATALOG_MARKER}`) !== null)
    .sort((a, b) => b.mountpoint.length - a.mountpoint.length);
  for (const c of light) {
    if (!(await tree.isMountpoint(c.mountpoint))) continue;
    await tree.removeNested(c.mountpoint);
    await tree.remove(`${c.mountpoint}/${AUTOCATALOG_MARKER}`);
    await tree.remove(`${c.mountpoint}/${CATALOG_MARKER}`);
    result.merged.push(c.mountpoint);
  }

  const heavy = tree.loadedCatalogs().filter((c) => c.dirty && mine(c.mountpoint) && c.db.rowCount() > options.maxWeight);
  for (const c of heavy) {
    const root = weighTree(c.db.directoryShape(), c.mountpoint);
    if (!root) continue;
    const nest = async (node: DirNode): Promise<void> => {
      const path = pathOf(node, root, c.mountpoint);
      await makeAutomaticCatalog(tree, path, options);
      result.split.push(path);
    };
    // Cut the heaviest subdirectories until `node` weighs at most `target` rows.
    const partition = async (node: DirNode, target: number): Promise<void> => {
      const candidates = node.children.filter((n) => !n.mountpoint);
      while (node.weight > target) {
        candidates.sort((a, b) => b.weight - a.weight);
        const heaviest = candidates[0];
        if (!heaviest || heaviest.weight < options.minWeight) {
          warn(`catalog of '${pathOf(node, root, c.mountpoint) || '/'}' keeps ${node.weight} entries (over the maximum weight ` +
            `${options.maxWeight}): no subdirectory is heavy enough to become a nested catalog`);
          return;
        }
        candidates.shift();
        if (heaviest.weight > options.maxWeight) {
          const before = heaviest.weight;
          await partition(heaviest, options.maxWeight - 2);
          node.weight -= before - heaviest.weight;
          if (heaviest.weight < options.minWeight) continue;
        }
        await nest(heaviest);
        // The nested catalog leaves one row here (the mountpoint) and gains its two marker files.
        node.weight -= heaviest.weight - 1;
        heaviest.weight = 1;
        heaviest.mountpoint = true;
      }
    };
    await partition(root, Math.floor(options.maxWeight / 2));
  }
  return result;
}
