// The catalog's xattr blob (spec §4.7): version 1, a count, then (key length, value length, key, value)
// entries sorted by key bytes. The stock client reads this layout; all lengths are single bytes.

/** Extended attributes of one entry: full name (e.g. 'user.origin') to raw value. */
export type Xattrs = Map<string, Buffer>;

const VERSION = 1;
export const MAX_XATTR_KEY_BYTES = 255;
export const MAX_XATTR_VALUE_BYTES = 255;
export const MAX_XATTR_COUNT = 255;

/** Why `key`/`value` cannot go into a catalog, or null when they can. */
export function xattrProblem(key: string, value: Buffer): string | null {
  const keyBytes = Buffer.byteLength(key);
  if (keyBytes === 0) return 'empty attribute name';
  if (key.includes('\0')) return `attribute name '${key}' contains a NUL byte`;
  if (keyBytes > MAX_XATTR_KEY_BYTES) return `attribute name '${key.slice(0, 40)}…' is longer than ${MAX_XATTR_KEY_BYTES} bytes`;
  if (value.length > MAX_XATTR_VALUE_BYTES) {
    return `value of attribute '${key}' has ${value.length} bytes; a catalog holds at most ${MAX_XATTR_VALUE_BYTES}`;
  }
  return null;
}

/** The blob for the catalog's xattr column; null for no attributes (the client reads non-NULL as "has xattrs"). */
export function encodeXattrs(xattrs: ReadonlyMap<string, Buffer>): Buffer | null {
  if (xattrs.size === 0) return null;
  if (xattrs.size > MAX_XATTR_COUNT) throw new Error(`${xattrs.size} extended attributes; a catalog entry holds at most ${MAX_XATTR_COUNT}`);
  const entries = [...xattrs].map(([key, value]) => {
    const problem = xattrProblem(key, value);
    if (problem) throw new Error(problem);
    return { key: Buffer.from(key, 'utf8'), value };
  });
  entries.sort((a, b) => Buffer.compare(a.key, b.key));
  const parts: Buffer[] = [Buffer.from([VERSION, entries.length])];
  for (const e of entries) parts.push(Buffer.from([e.key.length, e.value.length]), e.key, e.value);
  return Buffer.concat(parts);
}

/** Reads a blob back; null or empty means no attributes. Throws on a malformed blob. */
export function decodeXattrs(blob: Buffer | null): Xattrs {
  const out: Xattrs = new Map();
  if (blob === null || blob.length === 0) return out;
  if (blob.length < 2) throw new Error('xattr blob is shorter than its 2-byte header');
  if (blob[0] !== VERSION) throw new Error(`xattr blob has version ${blob[0]}; only version ${VERSION} is understood`);
  const count = blob[1]!;
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > blob.length) throw new Error(`xattr blob ends inside entry ${i + 1} of ${count}`);
    const keyLength = blob[pos]!;
    const valueLength = blob[pos + 1]!;
    pos += 2;
    if (keyLength === 0) throw new Error(`xattr blob entry ${i + 1} has an empty name`);
    if (pos + keyLength + valueLength > blob.length) throw new Error(`xattr blob ends inside entry ${i + 1} of ${count}`);
    const key = blob.subarray(pos, pos + keyLength).toString('utf8');
    out.set(key, Buffer.from(blob.subarray(pos + keyLength, pos + keyLength + valueLength)));
    pos += keyLength + valueLength;
  }
  return out;
}
