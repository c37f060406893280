// User extended attributes of a source tree. Node has no xattr API, so one `getfattr` process (Debian
// package `attr`) walks the whole tree and its output is parsed as it streams; only files that carry
// attributes take memory. Only `user.*` is read: other namespaces (security, trusted, system) describe
// the publishing machine, not the software being published.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { encodeXattrs, xattrProblem, type Xattrs } from '../format/xattr.js';

/** Absolute source path (as `path.resolve` gives it) to that file's `user.*` attributes. */
export type TreeXattrs = Map<string, Xattrs>;

/** What a caller tells the user, once, when `getfattr` is not installed. */
export const XATTR_TOOL_MISSING = 'xattrs not published: install the attr package (getfattr)';

const BASE_ARGS = ['-P', '-h', '-d', '-m', '^user\\.', '-e', 'hex', '--absolute-names'];

/**
 * `user.*` attributes of every file, directory and symlink under `root` (itself included), keyed by
 * absolute path; files without attributes are absent. Null when `getfattr` is not installed.
 */
export function readTreeXattrs(root: string): Promise<TreeXattrs | null> {
  return runGetfattr(['-R', ...BASE_ARGS, '--', resolve(root)]);
}

/** `user.*` attributes of one path (not following a symlink); null when `getfattr` is not installed. */
export async function readPathXattrs(path: string): Promise<Xattrs | null> {
  const absolute = resolve(path);
  const tree = await runGetfattr([...BASE_ARGS, '--', absolute]);
  return tree === null ? null : tree.get(absolute) ?? new Map();
}

/** One path's attributes read with a blocking getfattr (for the few paths a scoped walk did not read ahead). */
function readPathXattrsSync(absolute: string): TreeXattrs | null {
  const r = spawnSync('getfattr', [...BASE_ARGS, '--', absolute], { env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 64 << 20 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot run getfattr: ${r.error.message}`);
  }
  if (r.status !== 0) throw new Error(`getfattr failed reading extended attributes of ${absolute} (exit ${r.status}): ${r.stderr.toString('utf8').trim().split('\n')[0]}`);
  const parser = new GetfattrParser();
  parser.push(r.stdout);
  return parser.end();
}

/**
 * The attributes of the parts of a tree a scoped walk reads: `whole` paths with everything under them,
 * `single` paths by themselves (missing paths are skipped). Paths outside come from `covered: false`.
 */
async function readScopedXattrs(whole: string[], single: string[]): Promise<TreeXattrs | null> {
  const tree: TreeXattrs = new Map();
  for (const [args, paths] of [[['-R', ...BASE_ARGS], whole], [BASE_ARGS, single]] as const) {
    const existing = paths.filter((p) => existsSync(p));
    if (existing.length === 0) continue;
    const part = await runGetfattr([...args, '--', ...existing]);
    if (part === null) return null;
    for (const [k, v] of part) tree.set(k, v);
  }
  return tree;
}

function runGetfattr(args: string[]): Promise<TreeXattrs | null> {
  return new Promise((resolvePromise, reject) => {
    // The C locale keeps getfattr's quoting independent of the user's settings.
    const child = spawn('getfattr', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const parser = new GetfattrParser();
    let stderr = '';
    let spawnFailed = false;
    child.stdout.on('data', (chunk: Buffer) => parser.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => { if (stderr.length < 4000) stderr += chunk.toString('utf8'); });
    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnFailed = true;
      if (err.code === 'ENOENT') resolvePromise(null);
      else reject(new Error(`cannot run getfattr: ${err.message}`));
    });
    child.on('close', (code) => {
      if (spawnFailed) return;
      try {
        const result = parser.end();
        if (code !== 0) {
          reject(new Error(`getfattr failed reading extended attributes (exit ${code}): ${stderr.trim().split('\n').slice(0, 3).join('; ')}`));
        } else {
          resolvePromise(result);
        }
      } catch (err) {
        reject(err);
      }
    });
  });
}

/**
 * Parses `getfattr -d -e hex` output: blocks of `# file: PATH` followed by `NAME=0xHEX` lines (or a bare
 * `NAME` for an empty value). getfattr escapes newline, CR, backslash and `=` (in names) as `\ooo`, so a
 * raw newline always ends a line and the first raw `=` ends the name.
 */
export class GetfattrParser {
  private readonly result: TreeXattrs = new Map();
  private pending: Buffer = Buffer.alloc(0);
  private file: string | null = null;

  push(chunk: Buffer): void {
    const data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let start = 0;
    for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
      this.line(data.subarray(start, nl));
      start = nl + 1;
    }
    this.pending = Buffer.from(data.subarray(start));
  }

  end(): TreeXattrs {
    if (this.pending.length > 0) this.line(this.pending);
    this.pending = Buffer.alloc(0);
    return this.result;
  }

  private line(raw: Buffer): void {
    if (raw.length === 0) return;
    const FILE_PREFIX = '# file: ';
    if (raw.subarray(0, FILE_PREFIX.length).toString('latin1') === FILE_PREFIX) {
      this.file = unescapeOctal(raw.subarray(FILE_PREFIX.length)).toString('utf8');
      return;
    }
    if (this.file === null) throw new Error(`unexpected getfattr output before any '# file:' line: ${raw.toString('utf8').slice(0, 80)}`);
    const eq = raw.indexOf(0x3d);
    const name = unescapeOctal(eq === -1 ? raw : raw.subarray(0, eq)).toString('utf8');
    const value = eq === -1 ? Buffer.alloc(0) : decodeValue(raw.subarray(eq + 1).toString('latin1'), name, this.file);
    if (!name.startsWith('user.')) return;
    let attrs = this.result.get(this.file);
    if (!attrs) {
      attrs = new Map();
      this.result.set(this.file, attrs);
    }
    attrs.set(name, value);
  }
}

function decodeValue(text: string, name: string, file: string): Buffer {
  if (!/^0x([0-9a-fA-F]{2})*$/.test(text)) throw new Error(`getfattr printed a value that is not hex for ${name} of ${file}`);
  return Buffer.from(text.slice(2), 'hex');
}

/** Undoes getfattr's `\ooo` quoting; other bytes pass through. */
export function unescapeOctal(raw: Buffer): Buffer {
  if (!raw.includes(0x5c)) return raw;
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === 0x5c && isOctal(raw[i + 1]) && isOctal(raw[i + 2]) && isOctal(raw[i + 3])) {
      out.push(((raw[i + 1]! - 48) << 6) | ((raw[i + 2]! - 48) << 3) | (raw[i + 3]! - 48));
      i += 3;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out);
}

function isOctal(c: number | undefined): boolean {
  return c !== undefined && c >= 48 && c <= 55;
}

/**
 * The xattr blob of each source path, read once for the whole tree. Attributes the catalog cannot hold
 * are skipped with a warning, as the stock publisher skips them; a missing getfattr is one warning.
 */
export async function sourceXattrs(root: string, warn: (message: string) => void,
  given?: ((path: string) => Buffer | null) | null, scope?: { whole: string[]; single: string[] }): Promise<((path: string) => Buffer | null) | undefined> {
  // A publisher's option: a lookup of its own, or null for none; absent means read the tree.
  if (given === null) return undefined;
  if (given !== undefined) return given;
  // A scoped walk reads its scope ahead; a path outside it (a directory the walk widened to) is read
  // on its own when the walk asks.
  const whole = scope?.whole.map((p) => resolve(root, p));
  const single = new Set(scope?.single.map((p) => resolve(root, p)));
  const tree = whole ? await readScopedXattrs(whole, [...single]) : await readTreeXattrs(root);
  if (tree === null) {
    warn(XATTR_TOOL_MISSING);
    return () => null;
  }
  const covered = (absolute: string) => !whole || single.has(absolute) ||
    whole.some((w) => absolute === w || absolute.startsWith(w + sep));
  // Most trees carry none: then no path needs resolving on the walk's hot path.
  if (tree.size === 0 && !whole) return () => null;
  return (path: string) => {
    const absolute = resolve(path);
    if (!covered(absolute)) {
      for (const [k, v] of readPathXattrsSync(absolute) ?? []) tree.set(k, v);
      single.add(absolute);
    }
    const attrs = tree.get(absolute);
    if (!attrs || attrs.size === 0) return null;
    const kept = new Map<string, Buffer>();
    for (const [key, value] of attrs) {
      const problem = xattrProblem(key, value);
      if (problem) warn(`${path}: extended attribute ${key} not published: ${problem}`);
      else kept.set(key, value);
    }
    try {
      return encodeXattrs(kept);
    } catch (err) {
      warn(`${path}: extended attributes not published: ${(err as Error).message}`);
      return null;
    }
  };
}
