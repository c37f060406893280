// Publisher management as the owner does it: publisher key files in a keys directory, and their public
// keys with allowed sub-paths in the signed policy of the repository.
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rsaKeyPair } from '../format/keys.js';
import { parsePublisherKeyFile, serializePublisherKeyFile, type PublisherKey } from '../format/publisher-key-file.js';
import { assertPublisherName, PolicyError, scopePath, type PublisherPolicy } from '../format/publisher-policy.js';
import { publicKeyFingerprint } from '../format/signed-document.js';
import type { ObjectStore } from '../store/object-store.js';
import { loadKeys } from './keys-dir.js';
import { addPublisherToPolicy, loadPolicy, removePublisherFromPolicy } from './publisher-policy.js';

export function publisherKeyPath(keysDir: string, name: string): string {
  assertPublisherName(name);
  return join(keysDir, `${name}.publisher`);
}

/** Reads `<keys>/<name>.publisher`; the name inside must match the file name. */
export async function loadPublisherKey(keysDir: string, name: string): Promise<PublisherKey> {
  const path = publisherKeyPath(keysDir, name);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`no publisher key ${path}; create it with 'scvmfs publisher add'`);
    throw new Error(`cannot read publisher key ${path}: ${(e as Error).message}`);
  }
  const key = parsePublisherKeyFile(text, path);
  if (key.name !== name) throw new Error(`${path} belongs to publisher '${key.name}', not '${name}'`);
  return key;
}

/** Reuses `<keys>/<name>.publisher` when present; otherwise makes a new RSA-2048 key, file mode 0600. */
export async function loadOrCreatePublisherKey(keysDir: string, name: string, fqrn: string): Promise<{ key: PublisherKey; created: boolean }> {
  const path = publisherKeyPath(keysDir, name);
  try {
    return { key: await loadPublisherKey(keysDir, name), created: false };
  } catch (e) {
    if (!(e instanceof Error) || !e.message.startsWith('no publisher key')) throw e;
  }
  const pair = await rsaKeyPair();
  try {
    // 'wx': a concurrent `publisher add` of the same name must not overwrite the key we are about to list.
    await writeFile(path, serializePublisherKeyFile({ name, fqrn, privateKeyPem: pair.privateKey }), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return { key: await loadPublisherKey(keysDir, name), created: false };
    throw new Error(`cannot write publisher key ${path}: ${(e as Error).message}`);
  }
  await chmod(path, 0o600);
  return { key: { name, fqrn, privateKeyPem: pair.privateKey, publicKeyPem: pair.publicKey }, created: true };
}

export interface AddedPublisher {
  policy: PublisherPolicy;
  keyPath: string;
  keyCreated: boolean;
  fingerprint: string;
}

/**
 * Creates (or reuses) the publisher's key file and lists its public key with `paths` in the policy,
 * signed with `<keys>/<fqrn>.masterkey`. A key equal to the repository's master or signing key is refused.
 */
export async function addPublisher(store: ObjectStore, o: { keysDir: string; fqrn: string; name: string; paths: readonly string[]; now?: Date }): Promise<AddedPublisher> {
  assertPublisherName(o.name);
  if (o.paths.length === 0) throw new PolicyError('give at least one --path the publisher may write');
  // Checked before any file is written: bad input changes nothing.
  for (const p of o.paths) scopePath(p);
  const keys = await loadKeys(o.keysDir, o.fqrn, { need: ['master'] });
  const { key, created } = await loadOrCreatePublisherKey(o.keysDir, o.name, o.fqrn);
  const fingerprint = publicKeyFingerprint(key.publicKeyPem);
  // publicKeyFingerprint derives the public half of a private key PEM too.
  const reserved = [keys.masterPublicKeyPem, keys.repositoryKeyPem].filter((k): k is string => k !== undefined).map(publicKeyFingerprint);
  if (reserved.includes(fingerprint)) {
    throw new PolicyError(`${publisherKeyPath(o.keysDir, o.name)} holds a repository key; a publisher needs a key of its own`);
  }
  const policy = await addPublisherToPolicy(store, { fqrn: o.fqrn, masterKeyPem: keys.masterKeyPem, name: o.name, publicKeyPem: key.publicKeyPem, paths: o.paths, now: o.now });
  return { policy, keyPath: publisherKeyPath(o.keysDir, o.name), keyCreated: created, fingerprint };
}

/** Removes the publisher from the policy; its key file stays (it may be listed in other repositories). */
export async function removePublisher(store: ObjectStore, o: { keysDir: string; fqrn: string; name: string }): Promise<PublisherPolicy> {
  const keys = await loadKeys(o.keysDir, o.fqrn, { need: ['master'] });
  return removePublisherFromPolicy(store, { fqrn: o.fqrn, masterKeyPem: keys.masterKeyPem, name: o.name });
}

export interface PublisherListing {
  version: number;
  publishers: Array<{ name: string; paths: string[]; fingerprint: string; added: string }>;
}

/** The verified policy, checked with `<keys>/<fqrn>.pub` (the master key itself is not needed). */
export async function listPublishers(store: ObjectStore, o: { keysDir: string; fqrn: string }): Promise<PublisherListing> {
  const keys = await loadKeys(o.keysDir, o.fqrn, { need: [] });
  if (!keys.masterPublicKeyPem) throw new Error(`missing master public key ${join(o.keysDir, `${o.fqrn}.pub`)} (needed to verify the publisher policy)`);
  const loaded = await loadPolicy(store, o.fqrn, keys.masterPublicKeyPem);
  if (!loaded) return { version: 0, publishers: [] };
  return {
    version: loaded.policy.version,
    publishers: loaded.policy.publishers.map((p) => ({ name: p.name, paths: p.paths, fingerprint: publicKeyFingerprint(p.publicKeyPem), added: p.added })),
  };
}
