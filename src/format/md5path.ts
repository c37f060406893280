// Catalog rows are keyed by MD5 of the repository path, split into two little-endian int64 (spec §4.3).
import { hash } from 'node:crypto';

export interface PathHash {
  h1: bigint;
  h2: bigint;
}

export function md5Path(path: string): PathHash {
  // One-shot hash: a Hash object per row cost more than the digest itself on big publishes.
  const d = hash('md5', path, 'buffer');
  return { h1: d.readBigInt64LE(0), h2: d.readBigInt64LE(8) };
}

/** The parent of '/a/b' is '/a'; of '/a' it is '' (the root); the root has no parent. */
export function parentPath(path: string): string {
  if (path === '') throw new Error('the repository root has no parent');
  return path.slice(0, path.lastIndexOf('/'));
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return `${dir}/${name}`;
}

/**
 * Turns user input like 'sw/pkg/', '/sw//pkg' or '/' into the canonical form ('' or '/a/b').
 * Refuses '.', '..', NUL and over-long names, which could escape or corrupt the tree.
 */
export function normalizeRepoPath(input: string): string {
  if (input.includes('\0')) throw new Error('path contains a NUL byte');
  const parts = input.split('/').filter((p) => p !== '');
  for (const p of parts) {
    if (p === '.' || p === '..') throw new Error(`path '${input}' contains '${p}'; give a plain path inside the repository`);
    if (Buffer.byteLength(p) > 255) throw new Error(`path component '${p.slice(0, 40)}…' is longer than 255 bytes`);
  }
  return parts.length === 0 ? '' : '/' + parts.join('/');
}

/** True when `path` is `ancestor` itself or lies below it. */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === '' || path === ancestor || path.startsWith(ancestor + '/');
}
