// Configuration from the environment (see types.ts), read on every invocation: a warm sandbox keeps no
// configuration of its own between them.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ObjectStore } from '../store/object-store.js';
import { meterSum, type MeteredStore, type MeterSnapshot } from '../store/metered-store.js';
import { openInvocationStore } from '../store/open-store.js';
import type { FunctionName } from './types.js';

/** The environment variable `name`, without which function `fn` cannot work. */
export function requiredEnv(fn: FunctionName, name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`the ${fn} function needs the environment variable ${name}`);
  return v;
}

/** The meters of the stores opened by the invocation running in this async context. */
const invocationMeters = new AsyncLocalStorage<MeteredStore[]>();

/** How an invocation ended, with the store requests it made either way (they were made, and billed). */
export type MeteredOutcome<T> = { ok: true; value: T; requests: MeterSnapshot } | { ok: false; error: unknown; requests: MeterSnapshot };

/**
 * Runs one invocation and counts the store requests of every store it opened with storeFromEnv, so a
 * runtime can report them beside the answer (the writer adds them to its summary). Never rejects.
 */
export async function meteringInvocation<T>(run: () => Promise<T>): Promise<MeteredOutcome<T>> {
  const meters: MeteredStore[] = [];
  const requests = () => meterSum(meters.map((m) => m.snapshot()));
  try {
    const value = await invocationMeters.run(meters, run);
    return { ok: true, value, requests: requests() };
  } catch (error) {
    return { ok: false, error, requests: requests() };
  }
}

/**
 * The store named by SCVMFS_STORE: the process's shared client (one per process) under a meter of this
 * invocation's own. With SCVMFS_STORE_RECORD set (tests), every request is also appended to that file
 * as (function, action, key), which test/iam-evaluation.test.ts checks against the deployed roles.
 */
export function storeFromEnv(fn: FunctionName, variable = 'SCVMFS_STORE'): ObjectStore {
  const { store, meter } = openInvocationStore(requiredEnv(fn, variable), {
    recordTo: process.env.SCVMFS_STORE_RECORD || undefined, who: fn,
  });
  invocationMeters.getStore()?.push(meter);
  return store;
}
