// The commit's check of the objects a changeset references (design invariant 6): every object that the
// entry it replaces does not already name is read and hashed, so that no revision references bytes that
// do not match their name, whoever uploaded them. A bad object is removed, reported with the publisher
// whose upload grant it was, and the commit is refused naming it; its writer uploads it again and
// commits once more (publishThroughChain does so by itself).
import { RefusedError } from '../errors.js';
import type { ChangeOp } from '../format/changeset.js';
import { ContentHash } from '../format/hash.js';
import type { CatalogTree } from '../repo/catalog-tree.js';
import {
  badObjectsKey, checkStoredObject, describeUploader, forgetGrants, grantsOf, newVerificationStats, poisonedObjectError,
  recordBadObject, type PoisonedObject, type StoredObjectCheck,
} from '../repo/object-verification.js';
import { Slots } from '../store/slots.js';
import type { ObjectStore } from '../store/object-store.js';

/** Objects read at once; each is streamed, so memory stays at a few stream buffers per object. */
const CHECKS_AT_ONCE = 16;
/** A window of operations is checked at once: at most this many, declaring at most WINDOW_BYTES. */
export const WINDOW_OPS = 64;
const WINDOW_BYTES = 64 << 20;

/**
 * How many operations from `start` to check together: at most `limit` (and WINDOW_OPS), declaring at most
 * WINDOW_BYTES of content, at least one.
 */
export function checkWindow(ops: ChangeOp[], start: number, limit = WINDOW_OPS): number {
  const most = Math.max(1, Math.min(limit, WINDOW_OPS));
  let bytes = 0;
  let n = 0;
  while (start + n < ops.length && n < most) {
    const op = ops[start + n]!;
    const size = op.op === 'upsert' ? op.entry.size : 0;
    if (n > 0 && bytes + size > WINDOW_BYTES) break;
    bytes += size;
    n++;
  }
  return n;
}

export class CommitObjectCheck {
  readonly stats = newVerificationStats();
  /** Objects not read because the entry they replace already names them. */
  skipped = 0;
  private readonly checks = new Map<string, Promise<StoredObjectCheck>>();
  private readonly slots = new Slots(CHECKS_AT_ONCE);
  private readonly bad = new Map<string, { actual: string; size: number; paths: Set<string> }>();
  private readonly missing = new Map<string, Set<string>>();
  private good: string[] = [];
  private treeTail: Promise<unknown> = Promise.resolve();

  constructor(private readonly store: ObjectStore, private readonly tree: CatalogTree,
    private readonly txn: { txnId: string; prefix: string; publisher: string },
    /** Read every object, even those the replaced entry names (a check again after a gc deleted objects). */
    private readonly all = false) {}

  /**
   * Checks the objects an upsert names (its shape and scope were checked when its part was loaded).
   * Missing ones refuse the commit at once; bad ones are collected for `settle`. Objects named by the
   * entry the upsert replaces are taken as the head has them.
   */
  async check(op: ChangeOp): Promise<void> {
    if (op.op !== 'upsert') return;
    const wanted: { key: string; hash: ContentHash }[] = [];
    if (op.entry.hash) {
      const hash = ContentHash.fromHex(op.entry.hash);
      wanted.push({ key: hash.objectKey(''), hash });
    }
    for (const c of op.chunks ?? []) {
      const hash = ContentHash.fromHex(c.hash);
      wanted.push({ key: hash.objectKey('P'), hash });
    }
    if (wanted.length === 0) return;
    const known = this.all ? new Set<string>() : await this.serially(() => this.objectsAt(op.path));
    await Promise.all(wanted.map(async ({ key, hash }) => {
      if (known.has(key)) {
        this.skipped++;
        return;
      }
      let p = this.checks.get(key);
      if (!p) {
        p = this.slots.run(() => checkStoredObject(this.store, key, hash, this.stats));
        this.checks.set(key, p);
        void p.then((c) => { if (c.status === 'ok') this.good.push(key); }, () => {});
      }
      const c = await p;
      if (c.status === 'missing') {
        // Never uploaded, or collected by a gc since the writer found it present: the writer uploads it.
        const m = this.missing.get(key) ?? new Set<string>();
        m.add(op.path);
        this.missing.set(key, m);
        this.checks.delete(key);
      }
      if (c.status === 'corrupt') {
        const b = this.bad.get(key) ?? { actual: c.actual, size: c.size, paths: new Set<string>() };
        b.paths.add(op.path);
        this.bad.set(key, b);
      }
    }));
  }

  /**
   * After a window: forgets the grant records of the objects found good, and if any were bad, removes
   * them, reports them and refuses the commit with code 'poisoned-object'.
   */
  async settle(): Promise<void> {
    const good = this.good;
    this.good = [];
    await forgetGrants(this.store, good);
    if (this.bad.size === 0 && this.missing.size === 0) return;
    const found: PoisonedObject[] = [];
    const absent = [...this.missing].map(([key, paths]) => ({ key, paths: [...paths], uploader: 'nobody', actual: 'missing', report: '' }));
    this.missing.clear();
    const at = new Date().toISOString();
    for (const [key, b] of this.bad) {
      const grants = await grantsOf(this.store, key);
      const uploader = describeUploader(grants);
      // Nothing references these bytes rightly: removing them lets the right ones be uploaded.
      await this.store.delete([key]);
      this.checks.delete(key);
      const paths = [...b.paths];
      const report = await recordBadObject(this.store, {
        key, actual: b.actual, size: b.size, paths, uploader, grants, foundBy: 'commit',
        victim: `publisher '${this.txn.publisher}' (transaction ${this.txn.txnId})`, action: 'removed', at,
      });
      await forgetGrants(this.store, [key]);
      found.push({ key, paths, uploader, actual: b.actual, report });
    }
    this.bad.clear();
    await this.store.put(badObjectsKey(this.txn.prefix), Buffer.from(JSON.stringify([...found, ...absent])));
    if (found.length > 0) throw poisonedObjectError(found);
    throw new RefusedError('missing-object', `the changeset references object(s) the store lacks: ${absent.map((a) => `${a.key} (for '${a.paths.join("', '")}')`).join('; ')}; ` +
      'upload them and commit again (scvmfs publish does this by itself)', { objects: absent });
  }

  /** The objects the current entry at `path` names (the one an upsert replaces). */
  private async objectsAt(path: string): Promise<Set<string>> {
    const keys = new Set<string>();
    try {
      const old = await this.tree.lookup(path);
      if (!old) return keys;
      if (old.hash) keys.add(old.hash.objectKey(''));
      if (old.hash === null && old.chunkAlgorithm) {
        for (const c of await this.tree.chunks(path, old.chunkAlgorithm)) keys.add(c.hash.objectKey('P'));
      }
    } catch {
      // No such path (its parent is not a directory yet, or not at all): nothing is replaced.
    }
    return keys;
  }

  /** The tree's methods load catalogs mid-call and must not interleave. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.treeTail.then(fn);
    this.treeTail = next.catch(() => {});
    return next;
  }
}
