// The publisher policy object in the control part of a store: read and verified with the master
// public key, changed with compare-and-swap so two owners editing at once never lose an edit.
import { publicKeyPemOf } from '../format/keys.js';
import {
  emptyPolicy, openPolicy, PolicyError, signPolicy, withoutPublisher, withPublisher, type PublisherPolicy,
} from '../format/publisher-policy.js';
import { serializeSignedDocument } from '../format/signed-document.js';
import { CONTROL_PREFIX, PreconditionFailedError, type ObjectStore } from '../store/object-store.js';

export const POLICY_KEY = `${CONTROL_PREFIX}publishers.json`;

const CAS_ATTEMPTS = 8;

export interface LoadedPolicy {
  policy: PublisherPolicy;
  etag: string;
}

/** The verified policy, or null when the store has none yet. Throws PolicyError when it does not verify. */
export async function loadPolicy(store: ObjectStore, fqrn: string, masterPublicKeyPem: string): Promise<LoadedPolicy | null> {
  const got = await store.get(POLICY_KEY);
  if (!got) return null;
  return { policy: openPolicy(got.body, fqrn, masterPublicKeyPem), etag: got.etag };
}

/** Like loadPolicy, but a missing policy is an error that says how to create one. */
export async function requirePolicy(store: ObjectStore, fqrn: string, masterPublicKeyPem: string): Promise<PublisherPolicy> {
  const loaded = await loadPolicy(store, fqrn, masterPublicKeyPem);
  if (!loaded) {
    throw new PolicyError(`${fqrn} in ${store.description} has no publisher policy (${POLICY_KEY}); ` +
      `add a publisher with 'scvmfs publisher add ${fqrn} <name> --path <sub-path>'`);
  }
  return loaded.policy;
}

/**
 * Reads, changes with `edit`, signs with the master key and writes back conditionally (create-only when
 * absent, If-Match otherwise); on a lost race it starts again from the new policy.
 */
export async function updatePolicy(
  store: ObjectStore, fqrn: string, masterKeyPem: string, edit: (current: PublisherPolicy) => PublisherPolicy,
): Promise<PublisherPolicy> {
  const masterPublicKeyPem = publicKeyPemOf(masterKeyPem);
  for (let attempt = 1; ; attempt++) {
    const loaded = await loadPolicy(store, fqrn, masterPublicKeyPem);
    const next = edit(loaded?.policy ?? emptyPolicy(fqrn));
    const bytes = serializeSignedDocument(signPolicy(next, masterKeyPem));
    try {
      await store.put(POLICY_KEY, bytes, loaded ? { ifMatch: loaded.etag } : { ifNoneMatch: '*' });
      return next;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= CAS_ATTEMPTS) throw err;
    }
  }
}

export interface AddPublisherOptions {
  fqrn: string;
  masterKeyPem: string;
  name: string;
  publicKeyPem: string;
  paths: readonly string[];
  now?: Date;
}

export async function addPublisherToPolicy(store: ObjectStore, o: AddPublisherOptions): Promise<PublisherPolicy> {
  return updatePolicy(store, o.fqrn, o.masterKeyPem, (p) => withPublisher(p, o, o.now ?? new Date()));
}

export async function removePublisherFromPolicy(store: ObjectStore, o: { fqrn: string; masterKeyPem: string; name: string }): Promise<PublisherPolicy> {
  return updatePolicy(store, o.fqrn, o.masterKeyPem, (p) => withoutPublisher(p, o.name));
}
