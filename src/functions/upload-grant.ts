// The upload-grant function: for a batch of object names, says which the store already has and grants
// uploads for the rest: pre-signed PUT URLs where the store can make them, otherwise "direct" (the
// writer holds store credentials scoped to data objects). Only a live lease holder gets grants. Each
// grant is recorded in the control part (`.scvmfs/grants/<key>`), so that if the bytes uploaded under a
// key turn out not to match its name, the commit can say whose grant it was.
import { checkLease } from '../repo/leases.js';
import { recordGrant } from '../repo/object-verification.js';
import { Slots } from '../store/slots.js';
import { isPublicKey, presigningStore, type ObjectStore } from '../store/object-store.js';
import { MAX_GRANT_KEYS, type UploadGrantAnswer, type UploadGrantRequest } from '../format/upload-grant.js';
import { storeFromEnv } from './env.js';
import type { Handler } from './types.js';

export type { PresigningStore } from '../store/object-store.js';
export type UploadGrantEvent = UploadGrantRequest;
export type UploadGrantResult = UploadGrantAnswer;

const GRANT_SECONDS = 900;

export async function handleUploadGrant(event: UploadGrantEvent, store: ObjectStore, now = new Date()): Promise<UploadGrantResult> {
  if (!Array.isArray(event.keys) || event.keys.length > MAX_GRANT_KEYS) throw new Error(`upload-grant takes a list of at most ${MAX_GRANT_KEYS} object keys`);
  for (const key of event.keys) {
    if (typeof key !== 'string' || !key.startsWith('data/') || !isPublicKey(key)) throw new Error(`'${String(key)}' is not a data object key`);
  }
  const lease = await checkLease(store, event.leaseId, event.token, event.path, now);
  const keys = [...new Set(event.keys)];
  const heads = await Promise.all(keys.map((k) => store.head(k)));
  const present = keys.filter((_, i) => heads[i] !== null);
  const missing = keys.filter((_, i) => heads[i] === null);
  const signer = presigningStore(store);
  const grant = { publisher: lease.publisher, leaseId: lease.leaseId, path: lease.path, grantedAt: now.toISOString(), via: signer ? 'url' as const : 'direct' as const };
  // Recorded before any grant is handed out, so that every upload through a grant has its record.
  const slots = new Slots(32);
  await Promise.all(missing.map((key) => slots.run(() => recordGrant(store, key, grant))));
  if (!signer) return { present, upload: missing.map((key) => ({ key })) };
  const upload = await Promise.all(missing.map(async (key) => ({
    key, url: await signer.presignPut(key, GRANT_SECONDS), headers: signer.presignedPutHeaders(key),
  })));
  return { present, upload, expiresInSeconds: GRANT_SECONDS };
}

export const handler: Handler<UploadGrantEvent, UploadGrantResult> = async (event) => {
  return { result: await handleUploadGrant(event, storeFromEnv('upload-grant')) };
};
