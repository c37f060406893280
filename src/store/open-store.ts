// Turns a --store argument into a store. The embedded default is a local directory.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectStore } from './object-store.js';
import { FsStore } from './fs-store.js';

export function openStore(spec: string): ObjectStore {
  if (spec === '') throw new Error('empty --store');
  if (spec.startsWith('file://')) return new FsStore(fileURLToPath(spec));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new Error(`unsupported store '${spec}': give a directory path or a file:// URL`);
  }
  return new FsStore(resolve(spec));
}
