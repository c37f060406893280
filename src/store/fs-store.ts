// The embedded default store: a directory laid out exactly as a web server serves the repository,
// so key `data/ab/cdef` is the file `<root>/data/ab/cdef`. Control data lives under `.scvmfs/`.
import { createHash, randomBytes } from 'node:crypto';
import * as fsSync from 'node:fs';
import { promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CONTROL_PREFIX,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  StoreError,
  type ByteRange,
  type GetResult,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type ReadRange,
  type StreamResult,
} from './object-store.js';

const TMP_DIR = `${CONTROL_PREFIX}tmp`;
const LOCK_DIR = `${CONTROL_PREFIX}locks`;
/** The store's own scratch areas: never listed, never addressable as keys. */
/**
 * Temporary files live next to their target: on ext4, creating thousands of files in one shared
 * scratch directory measured 6x slower (210 µs vs 34 µs per object) than in the 256 data/XX/ dirs.
 */
const TEMP_PREFIX = '.tmp-';

/** Unique to this process and thread (random once, so a reused pid cannot meet an old leftover), plus a counter. */
const tempStem = `${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}-`;
let tempCount = 0;

function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `${tempStem}${(tempCount++).toString(36)}`);
}

const RESERVED = [`${TMP_DIR}/`, `${LOCK_DIR}/`];

// A live holder keeps a key lock for a few milliseconds (re-read the etag, rename), so a lock this
// old was left by a process that died while holding it. Breaking it has a tiny race (two waiters
// seeing the same stale lock at the same moment), which needs a crash first; we accept that.
const STALE_LOCK_MS = 30_000;
const LOCK_GIVE_UP_MS = 2 * STALE_LOCK_MS;

const PLAIN_ERRNO: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a path component is a file where a directory is needed',
  EEXIST: 'a path component is a file where a directory is needed',
  EMFILE: 'too many open files',
};

/** The shape of every content-addressed key (data/ab/cdef…, hash suffix, object suffix): safe as it is. */
const DATA_KEY = /^data\/[0-9a-f]{2}\/[0-9a-f]{8,}(?:-[a-z0-9]+)?[A-Z]?$/;

function keyProblem(key: string): string | null {
  if (typeof key !== 'string' || key === '') return 'it is empty';
  if (DATA_KEY.test(key)) return null;
  if (key.includes('\0')) return 'it contains a NUL byte';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return 'it starts with /';
  for (const segment of key.split('/')) {
    if (segment === '') return 'it has an empty path segment';
    if (segment === '.' || segment === '..') return `it has a '${segment}' path segment`;
  }
  if (RESERVED.some((r) => key.startsWith(r))) return 'it is in the store\'s reserved scratch area';
  if (key.split('/').pop()!.startsWith(TEMP_PREFIX)) return `its name starts with ${TEMP_PREFIX}, reserved for temporary files`;
  return null;
}

/** Throws unless `key` is a safe relative path inside the store (no traversal, no odd characters). */
export function validateKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new Error(`invalid store key '${key}': ${problem}`);
}

function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** Keeps our own outcome errors, turns everything else into a StoreError that says what happened. */
function storeError(operation: string, key: string, err: unknown): Error {
  if (err instanceof PreconditionFailedError || err instanceof RangeNotSatisfiableError || err instanceof StoreError) {
    return err;
  }
  const code = errno(err);
  const plain = code ? PLAIN_ERRNO[code] : undefined;
  if (!plain) return new StoreError(operation, key, err);
  const where = (err as NodeJS.ErrnoException).path;
  return new StoreError(operation, key, new Error(`${plain}${where ? ` at ${where}` : ''} (${code})`, { cause: err }));
}

async function hashHandle(fh: FileHandle): Promise<{ etag: string; size: number }> {
  const hash = createHash('md5');
  const chunk = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  for (;;) {
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, size);
    if (bytesRead === 0) break;
    hash.update(chunk.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { etag: hash.digest('hex'), size };
}

/**
 * Opens a key's file for reading; null when there is no object (absent, or a directory). Stat and
 * content then come from one inode, even if a concurrent put renames a new file over the name.
 */
async function openObject(file: string, flags: string | number = 'r'): Promise<{ fh: FileHandle; stat: Stats } | null> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, flags);
  } catch (err) {
    // ELOOP: the last component is a symbolic link and O_NOFOLLOW was given.
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR' || errno(err) === 'ELOOP') return null;
    throw err;
  }
  try {
    const stat = await fh.stat();
    if (stat.isFile()) return { fh, stat };
  } catch (err) {
    await fh.close();
    throw err;
  }
  await fh.close();
  return null;
}

/**
 * Where an open descriptor really is: /proc names the file that was opened, so a link swapped in after
 * the open changes nothing. Elsewhere the path is resolved again (a small race, but no /proc to ask).
 */
async function realPathOf(fh: FileHandle, file: string): Promise<string> {
  try {
    return await fs.readlink(`/proc/self/fd/${fh.fd}`);
  } catch {
    return fs.realpath(file);
  }
}

/**
 * Create-if-absent of a content-addressed object with blocking calls, for compression worker threads:
 * async calls from every worker would queue on the one libuv pool, blocking ones run in parallel.
 * Same meaning as put(key, body, {ifNoneMatch: '*'}) without fsync. Returns false if it existed.
 * rename() instead of link()+unlink(): two writers of one content-addressed name write the same
 * bytes, so replacing is as good as refusing, and it saves a directory operation per object.
 * `replace`: write even if it exists (its bytes were found not to match the name).
 */
export function putContentAddressedSync(root: string, key: string, body: Uint8Array, replace = false): boolean {
  validateKey(key);
  const target = path.join(root, key);
  if (!replace && fsSync.existsSync(target)) return false;
  const temp = tempNameFor(target);
  try {
    try {
      fsSync.writeFileSync(temp, body, { flag: 'wx' });
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
      makeDirsBelowRootSync(root, path.dirname(target));
      fsSync.writeFileSync(temp, body, { flag: 'wx' });
    }
    fsSync.renameSync(temp, target);
    return true;
  } catch (err) {
    try { fsSync.unlinkSync(temp); } catch { /* never created */ }
    throw storeError('put', key, err);
  }
}

/** Whether the file under `key` holds exactly `body`, read in bounded pieces with blocking calls. */
export function holdsBytesSync(root: string, key: string, body: Uint8Array): boolean {
  validateKey(key);
  let fd: number;
  try {
    fd = fsSync.openSync(path.join(root, key), 'r');
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw storeError('get', key, err);
  }
  try {
    if (fsSync.fstatSync(fd).size !== body.length) return false;
    const piece = Buffer.alloc(Math.min(body.length, 1 << 20));
    for (let at = 0; at < body.length;) {
      const n = fsSync.readSync(fd, piece, 0, Math.min(piece.length, body.length - at), at);
      if (n === 0 || !piece.subarray(0, n).equals(body.subarray(at, at + n))) return false;
      at += n;
    }
    return true;
  } finally {
    fsSync.closeSync(fd);
  }
}

/**
 * The store's directory is gone (deleted while in use). Recreating it would leave a `data/` without a
 * manifest that looks like a store; only `init` makes a store.
 */
function rootMissing(root: string): Error {
  return new Error(`the store directory ${root} does not exist (deleted while in use?); it is not recreated: ` +
    `only 'scvmfs init' creates a store`);
}

/** The directories from `root` (exclusive) down to `dir`, outermost first. */
function dirsBelow(root: string, dir: string): string[] {
  const rel = path.relative(root, dir);
  if (rel === '') return [];
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${dir} lies outside the store ${root}`);
  const parts = rel.split(path.sep);
  return parts.map((_, i) => path.join(root, ...parts.slice(0, i + 1)));
}

/** mkdir -p of `dir` that never creates `root` itself: each level by a plain mkdir, so a vanished root fails. */
async function makeDirsBelowRoot(root: string, dir: string): Promise<void> {
  const dirs = dirsBelow(root, dir);
  if (dirs.length === 0 && !(await fs.stat(root).then(() => true, () => false))) throw rootMissing(root);
  for (const d of dirs) {
    try {
      await fs.mkdir(d);
    } catch (err) {
      if (errno(err) === 'EEXIST') continue;
      if (errno(err) === 'ENOENT' && path.dirname(d) === root) throw rootMissing(root);
      throw err;
    }
  }
}

function makeDirsBelowRootSync(root: string, dir: string): void {
  const dirs = dirsBelow(root, dir);
  if (dirs.length === 0 && !fsSync.existsSync(root)) throw rootMissing(root);
  for (const d of dirs) {
    try {
      fsSync.mkdirSync(d);
    } catch (err) {
      if (errno(err) === 'EEXIST') continue;
      if (errno(err) === 'ENOENT' && path.dirname(d) === root) throw rootMissing(root);
      throw err;
    }
  }
}

/** Makes a just-created name durable; the file's own fsync does not cover its directory entry. */
async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    if (errno(err) !== 'EINVAL') throw err; // file systems that cannot fsync directories
  } finally {
    await fh.close();
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `sortKey` is what the entry contributes to its keys: a directory's keys all continue `name/`. */
interface Entry { dir: boolean; sortKey: string }

export class FsStore implements ObjectStore {
  readonly root: string;
  readonly description: string;

  /**
   * A directory that did not exist when the store was opened is a new store: its first write creates it
   * (that is `init`). A store directory that existed, or has been created since, is never made again.
   */
  private mayCreateRoot: boolean;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `file://${this.root}`;
    this.mayCreateRoot = !fsSync.existsSync(this.root);
  }

  /** Runs `op`; if it failed because the parent directory of `file` is missing, creates it and retries once. */
  private async withParent<T>(file: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
      if (this.mayCreateRoot) {
        await fs.mkdir(this.root, { recursive: true });
        this.mayCreateRoot = false;
      }
      await makeDirsBelowRoot(this.root, path.dirname(file));
      return await op();
    }
  }

  private file(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  private realRoot?: Promise<string>;

  /**
   * Opens the object of `key` for reading, or null. A symbolic link anywhere on the way is no object:
   * a link under data/ would otherwise serve the control area (.scvmfs/) or any file of the host. The
   * last component is opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO cannot stall the open); the
   * directories above are checked on the opened descriptor, whose real path must be the key's own.
   */
  private async openKey(key: string): Promise<{ fh: FileHandle; stat: Stats } | null> {
    const open = await openObject(this.file(key), fsSync.constants.O_RDONLY | fsSync.constants.O_NOFOLLOW | fsSync.constants.O_NONBLOCK);
    if (!open) return null;
    try {
      this.realRoot ??= fs.realpath(this.root).catch((err: unknown) => { this.realRoot = undefined; throw err; });
      const expected = path.join(await this.realRoot, ...key.split('/'));
      const real = await realPathOf(open.fh, this.file(key));
      // A put that renamed a new file over the name after our open leaves ours unlinked: /proc says so.
      if (real === expected || real === `${expected} (deleted)`) return open;
    } catch (err) {
      await open.fh.close();
      throw err;
    }
    await open.fh.close();
    return null;
  }

  async get(key: string, range?: ByteRange): Promise<GetResult | null> {
    validateKey(key);
    if (range) checkRange(range);
    try {
      const open = await this.openKey(key);
      if (!open) return null;
      const { fh, stat } = open;
      try {
        const whole = await fh.readFile();
        const info = { key, size: whole.length, etag: md5(whole), lastModified: stat.mtime, totalSize: whole.length };
        if (!range) return { ...info, body: whole };
        if (range.start >= whole.length) throw new RangeNotSatisfiableError(key, whole.length);
        const end = Math.min(range.end ?? whole.length - 1, whole.length - 1);
        return { ...info, body: whole.subarray(range.start, end + 1) };
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw storeError('get', key, err);
    }
  }

  /**
   * Reads the file twice, once for the ETag (the MD5 of the content, as put and ifMatch use) and once
   * for the body, both through one descriptor: memory stays at a buffer's worth whatever the size.
   */
  async getStream(key: string, range?: ReadRange): Promise<StreamResult | null> {
    validateKey(key);
    if (range) checkReadRange(range);
    let open: { fh: FileHandle; stat: Stats } | null = null;
    try {
      open = await this.openKey(key);
      if (!open) return null;
      const { fh, stat } = open;
      const { etag, size } = await hashHandle(fh);
      const { start, length } = rangeSpan(key, size, range);
      const info = { key, size, etag, lastModified: stat.mtime, start, length };
      if (length === 0) {
        await fh.close();
        return { ...info, body: Readable.from([]) };
      }
      // The stream owns the handle from here: it closes it on end, error or destroy.
      const body = fh.createReadStream({ start, end: start + length - 1 });
      open = null;
      return { ...info, body };
    } catch (err) {
      await open?.fh.close();
      throw storeError('get', key, err);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    try {
      const open = await this.openKey(key);
      if (!open) return null;
      const { fh, stat } = open;
      try {
        const { etag, size } = await hashHandle(fh);
        return { key, size, etag, lastModified: stat.mtime };
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw storeError('head', key, err);
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    validateKey(key);
    if (options.ifNoneMatch !== undefined && options.ifMatch !== undefined) {
      throw new Error(`put '${key}': ifNoneMatch and ifMatch cannot be combined`);
    }
    const conditional = options.ifNoneMatch !== undefined || options.ifMatch !== undefined;
    // Mutable commit-point objects are synced; content-addressed data objects are not (an fsync per
    // small file would cap a publish at the disk's sync rate; `verify` finds any lost to a power cut).
    const durable = conditional && !key.startsWith('data/');
    const target = this.file(key);
    const temp = tempNameFor(target);
    try {
      await this.withParent(temp, () => writeFile(temp, body, durable));
      if (options.ifNoneMatch === '*') {
        // link() fails if the name exists, so create-if-absent is atomic across processes.
        await this.withParent(target, () => fs.link(temp, target)).catch((err) => {
          if (errno(err) === 'EEXIST') throw new PreconditionFailedError(key, 'the object already exists');
          throw err;
        });
      } else if (options.ifMatch !== undefined) {
        const expected = options.ifMatch;
        await this.withKeyLock(key, async () => {
          const open = await openObject(target);
          if (!open) throw new PreconditionFailedError(key, 'the object does not exist');
          const { etag: current } = await hashHandle(open.fh).finally(() => open.fh.close());
          if (current !== expected) throw new PreconditionFailedError(key, `its etag is ${current}, not ${expected}`);
          await fs.rename(temp, target);
        });
      } else {
        await this.withParent(target, () => fs.rename(temp, target));
      }
      if (durable) await fsyncDir(path.dirname(target));
      return { etag: md5(body) };
    } catch (err) {
      throw storeError('put', key, err);
    } finally {
      // After a successful rename the temp name is gone already; after anything else it must go.
      await fs.rm(temp, { force: true }).catch(() => {});
    }
  }

  /**
   * Serialises compare-and-swap on one key across processes: mkdir is atomic, so exactly one
   * process holds `<root>/.scvmfs/locks/<hash of key>` at a time.
   */
  private async withKeyLock<T>(key: string, critical: () => Promise<T>): Promise<T> {
    const lock = path.join(this.root, LOCK_DIR, createHash('sha1').update(key).digest('hex'));
    const deadline = Date.now() + LOCK_GIVE_UP_MS;
    for (;;) {
      try {
        await this.withParent(lock, () => fs.mkdir(lock));
        break;
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
      }
      const stat = await fs.stat(lock).catch(() => null);
      if (stat && Date.now() - stat.mtimeMs > STALE_LOCK_MS) {
        await fs.rmdir(lock).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the lock on '${key}' (${lock})`);
      await sleep(1 + Math.random() * 5);
    }
    try {
      return await critical();
    } finally {
      await fs.rmdir(lock).catch(() => {});
    }
  }

  async list(prefix: string, options: { after?: string; limit?: number } = {}): Promise<ListPage> {
    // A prefix may end in '/' or mid-segment; it is valid when some key could start with it.
    const problem = keyProblem(prefix + 'x');
    if (problem) throw new Error(`invalid list prefix '${prefix}': no valid key can start with it (${problem.replace('it ', 'a key ')})`);
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`list limit must be a positive integer, got ${limit}`);
    const after = options.after ?? '';
    try {
      const keys: string[] = [];
      let more = false;
      const slash = prefix.lastIndexOf('/');
      const dirKey = prefix.slice(0, slash + 1);
      for await (const key of this.walk(dirKey, prefix.slice(slash + 1), after)) {
        if (!key.startsWith(prefix) || key <= after) continue;
        if (keys.length === limit) {
          more = true;
          break;
        }
        keys.push(key);
      }
      const objects: ObjectInfo[] = [];
      // Hash a few files at a time: parallel enough to be quick, bounded to stay clear of EMFILE.
      for (let i = 0; i < keys.length; i += 32) {
        const infos = await Promise.all(keys.slice(i, i + 32).map((k) => this.head(k)));
        for (const info of infos) if (info) objects.push(info); // deleted meanwhile: skip
      }
      return more ? { objects, next: keys[keys.length - 1]! } : { objects };
    } catch (err) {
      throw storeError('list', prefix, err);
    }
  }

  /**
   * Yields the keys below directory `dirKey` (ends in '/' or is '') whose first segment there starts
   * with `partial`, in lexicographic order, skipping subtrees that hold only keys <= `after`.
   */
  private async *walk(dirKey: string, partial: string, after: string): AsyncGenerator<string> {
    let dirents;
    try {
      dirents = await fs.readdir(path.join(this.root, ...dirKey.split('/')), { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return;
      throw err;
    }
    const entries: Entry[] = [];
    for (const d of dirents) {
      if (!d.name.startsWith(partial)) continue;
      if (d.isDirectory()) {
        if (RESERVED.includes(`${dirKey}${d.name}/`)) continue;
        entries.push({ dir: true, sortKey: `${d.name}/` });
      } else if (d.isFile() && !d.name.startsWith(TEMP_PREFIX)) {
        entries.push({ dir: false, sortKey: d.name });
      }
    }
    // Plain code-unit comparison: equals byte order for the ASCII keys a repository uses.
    entries.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const e of entries) {
      const key = dirKey + e.sortKey;
      if (!e.dir) {
        yield key;
        continue;
      }
      // Every key in this subtree starts with `key`; if `after` is past all of them, skip it.
      if (after > key && !after.startsWith(key)) continue;
      yield* this.walk(key, '', after);
    }
  }

  async delete(keys: string[]): Promise<void> {
    keys.forEach(validateKey);
    for (const key of keys) {
      try {
        await fs.unlink(this.file(key));
      } catch (err) {
        const code = errno(err);
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') continue;
        throw storeError('delete', key, err);
      }
    }
  }
}

/** Throws unless `range` is a well-formed byte range (what an HTTP Range header can say). */
export function checkRange(range: ByteRange): void {
  const ok = Number.isInteger(range.start) && range.start >= 0 &&
    (range.end === undefined || (Number.isInteger(range.end) && range.end >= range.start));
  if (!ok) throw new Error(`invalid byte range ${JSON.stringify(range)}`);
}

export function checkReadRange(range: ReadRange): void {
  if (!('suffix' in range)) return checkRange(range);
  if (!Number.isInteger(range.suffix) || range.suffix < 0) throw new Error(`invalid byte range ${JSON.stringify(range)}`);
}

/** The bytes of an object of `size` that `range` selects, as HTTP does; throws when none are. */
export function rangeSpan(key: string, size: number, range?: ReadRange): { start: number; length: number } {
  if (!range) return { start: 0, length: size };
  if ('suffix' in range) {
    if (range.suffix === 0 || size === 0) throw new RangeNotSatisfiableError(key, size);
    const length = Math.min(range.suffix, size);
    return { start: size - length, length };
  }
  if (range.start >= size) throw new RangeNotSatisfiableError(key, size);
  const end = Math.min(range.end ?? size - 1, size - 1);
  return { start: range.start, length: end - range.start + 1 };
}

async function writeFile(file: string, body: Uint8Array, durable: boolean): Promise<void> {
  const fh = await fs.open(file, 'wx');
  try {
    await fh.writeFile(body);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The directory of a filesystem store, seen through wrappers that only observe (metering), so compression
 * workers may write objects there directly; undefined for any other store.
 */
export function directFsRoot(store: ObjectStore): string | undefined {
  let s: ObjectStore = store;
  while (!(s instanceof FsStore) && 'observed' in s) s = (s as { observed: ObjectStore }).observed;
  return s instanceof FsStore ? s.root : undefined;
}
