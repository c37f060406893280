// Configuration from the environment (see types.ts), read on every invocation: a warm sandbox keeps no
// configuration of its own between them.
import type { ObjectStore } from '../store/object-store.js';
import { openSharedStore } from '../store/open-store.js';
import type { FunctionName } from './types.js';

/** The environment variable `name`, without which function `fn` cannot work. */
export function requiredEnv(fn: FunctionName, name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`the ${fn} function needs the environment variable ${name}`);
  return v;
}

/** The store named by SCVMFS_STORE (one client per process, see openSharedStore). */
export function storeFromEnv(fn: FunctionName): ObjectStore {
  return openSharedStore(requiredEnv(fn, 'SCVMFS_STORE'));
}
