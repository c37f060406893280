// The lease function (design §5 step 1): grants, renews, releases and lists leases on sub-paths.
// An acquire must be signed by a publisher key listed in the master-signed publisher policy, for a path
// within that publisher's scope. Renew and release present the lease's secret token instead: it was
// handed only to the signer of the acquire.
//
// Outcomes a writer acts on are results ({status:'ok'|'busy'}); refusals of bad input are thrown errors.
import { readFile } from 'node:fs/promises';
import {
  checkRequestFreshness, LEASE_REQUEST_TYPE, LeaseError, validateLeaseRequest, type LeaseInfo, type LeaseRecord,
} from '../format/lease.js';
import { authorize, findPublisher, NotAuthorizedError } from '../format/publisher-policy.js';
import { openSignedDocument, SignedDocumentError, type SignedDocument } from '../format/signed-document.js';
import { keyFilePaths } from '../repo/keys-dir.js';
import { acquireLease, listLeases, releaseLease, renewLease } from '../repo/leases.js';
import { requirePolicy } from '../repo/publisher-policy.js';
import type { ObjectStore } from '../store/object-store.js';
import { requiredEnv, storeFromEnv } from './env.js';
import type { Handler } from './types.js';

export type LeaseEvent =
  | { action: 'acquire'; request: SignedDocument }
  | { action: 'renew'; leaseId: string; token: string; ttlSeconds?: number }
  | { action: 'release'; leaseId: string; token: string }
  | { action: 'list' };

export type LeaseResult =
  | { status: 'ok'; lease: LeaseRecord; repeated: boolean; tookOver: LeaseInfo[] }
  | { status: 'busy'; message: string; holder: LeaseInfo }
  | { status: 'ok'; lease: LeaseRecord }
  | { status: 'ok'; released: boolean }
  | { status: 'ok'; leases: LeaseInfo[] };

export interface LeaseConfig {
  store: ObjectStore;
  fqrn: string;
  /** `<fqrn>.pub`: verifies the publisher policy. */
  masterPublicKeyPem: string;
}

/** The handler's work with its configuration and clock passed in (tests and other runtimes call this). */
export async function handleLeaseEvent(event: LeaseEvent, config: LeaseConfig, now: Date): Promise<LeaseResult> {
  if (event === null || typeof event !== 'object') throw new LeaseError('bad-request', 'lease event must be an object with an action');
  switch (event.action) {
    case 'acquire': {
      const policy = await requirePolicy(config.store, config.fqrn, config.masterPublicKeyPem);
      let body: unknown;
      let keyId: string;
      try {
        ({ body, keyId } = openSignedDocument(event.request, LEASE_REQUEST_TYPE, (id) => findPublisher(policy, id)?.publicKeyPem));
      } catch (e) {
        if (e instanceof SignedDocumentError) throw new LeaseError('bad-request', `lease request refused: ${e.message}`);
        throw e;
      }
      const request = validateLeaseRequest(body);
      if (request.publisher !== keyId) {
        throw new LeaseError('bad-request', `lease request names publisher '${request.publisher}' but is signed by '${keyId}'`);
      }
      if (request.fqrn !== config.fqrn) throw new LeaseError('bad-request', `lease request is for ${request.fqrn}, this is ${config.fqrn}`);
      checkRequestFreshness(request, now);
      try {
        authorize(policy, request.publisher, request.path);
      } catch (e) {
        if (e instanceof NotAuthorizedError) throw new LeaseError('path-outside', e.message);
        throw e;
      }
      return acquireLease(config.store, request, now);
    }
    case 'renew':
      return { status: 'ok', lease: await renewLease(config.store, event.leaseId, event.token, now, event.ttlSeconds) };
    case 'release':
      return { status: 'ok', released: await releaseLease(config.store, event.leaseId, event.token, now) };
    case 'list':
      return { status: 'ok', leases: await listLeases(config.store, now) };
    default:
      throw new LeaseError('bad-request', `unknown lease action ${JSON.stringify((event as { action?: unknown }).action)}; ` +
        'expected acquire, renew, release or list');
  }
}

/** Reads SCVMFS_STORE, SCVMFS_FQRN and SCVMFS_KEYS (`<fqrn>.pub`) on every call: no module state. */
export async function leaseConfigFromEnv(): Promise<LeaseConfig> {
  const fqrn = requiredEnv('lease', 'SCVMFS_FQRN');
  const pubPath = keyFilePaths(requiredEnv('lease', 'SCVMFS_KEYS'), fqrn).masterPublicKeyPem;
  let masterPublicKeyPem: string;
  try {
    masterPublicKeyPem = await readFile(pubPath, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the master public key ${pubPath}: ${(e as Error).message}`);
  }
  return { store: storeFromEnv('lease'), fqrn, masterPublicKeyPem };
}

export const handler: Handler<LeaseEvent, LeaseResult> = async (event) => {
  return { result: await handleLeaseEvent(event, await leaseConfigFromEnv(), new Date()) };
};
