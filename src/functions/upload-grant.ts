// The upload-grant function: for a batch of object names, says which the store already has and grants
// uploads for the rest: pre-signed PUT URLs where the store can make them, otherwise "direct" (the
// writer holds store credentials scoped to data objects). Only a live lease holder gets grants.
import { checkLease } from '../repo/leases.js';
import { isPublicKey, type ObjectStore } from '../store/object-store.js';
import { openStore } from '../store/open-store.js';
import type { Handler } from './types.js';

export interface UploadGrantEvent {
  leaseId: string;
  token: string;
  /** Lease path, as the lease was taken. */
  path: string;
  /** Object keys `data/XX/…[suffix]`, at most 1000. */
  keys: string[];
}

export interface UploadGrantResult {
  present: string[];
  /** Keys to upload, each with a pre-signed PUT URL when the store makes them. */
  upload: { key: string; url?: string }[];
  expiresInSeconds?: number;
}

/** A store that can hand out time-limited upload URLs (S3); others are written directly. */
export interface PresigningStore {
  presignPut(key: string, expiresInSeconds: number): Promise<string>;
}

function canPresign(store: ObjectStore): store is ObjectStore & PresigningStore {
  return typeof (store as Partial<PresigningStore>).presignPut === 'function';
}

const GRANT_SECONDS = 900;

export async function handleUploadGrant(event: UploadGrantEvent, store: ObjectStore, now = new Date()): Promise<UploadGrantResult> {
  if (!Array.isArray(event.keys) || event.keys.length > 1000) throw new Error('upload-grant takes a list of at most 1000 object keys');
  for (const key of event.keys) {
    if (typeof key !== 'string' || !key.startsWith('data/') || !isPublicKey(key)) throw new Error(`'${String(key)}' is not a data object key`);
  }
  await checkLease(store, event.leaseId, event.token, event.path, now);
  const heads = await Promise.all(event.keys.map((k) => store.head(k)));
  const present = event.keys.filter((_, i) => heads[i] !== null);
  const missing = event.keys.filter((_, i) => heads[i] === null);
  if (!canPresign(store)) return { present, upload: missing.map((key) => ({ key })) };
  const upload = await Promise.all(missing.map(async (key) => ({ key, url: await store.presignPut(key, GRANT_SECONDS) })));
  return { present, upload, expiresInSeconds: GRANT_SECONDS };
}

export const handler: Handler<UploadGrantEvent, UploadGrantResult> = async (event) => {
  const spec = process.env.SCVMFS_STORE;
  if (!spec) throw new Error('the upload-grant function needs the environment variable SCVMFS_STORE');
  return { result: await handleUploadGrant(event, openStore(spec)) };
};
