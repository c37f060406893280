// The publisher policy: which publisher keys may write which sub-paths of a repository (design §3).
// Signed by the repository's master key so functions can check a writer with no database.
import { RefusedError } from '../errors.js';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { isWithin, normalizeRepoPath } from './md5path.js';
import {
  openSignedDocument, publicKeyFingerprint, signDocument, SignedDocumentError, type SignedDocument,
} from './signed-document.js';

export const POLICY_DOCUMENT_TYPE = 'scvmfs-publisher-policy';

export interface PublisherEntry {
  /** Safe charset (see PUBLISHER_NAME_RE); the key id of everything this publisher signs. */
  name: string;
  /** SubjectPublicKeyInfo PEM of the publisher key. */
  publicKeyPem: string;
  /** Allowed sub-paths, canonical ('/a/b'; '/' is the whole repository), sorted, without duplicates. */
  paths: string[];
  /** ISO time the publisher was first added. */
  added: string;
}

export interface PublisherPolicy {
  fqrn: string;
  /** Starts at 1 and increases by one with every change. */
  version: number;
  publishers: PublisherEntry[];
}

export class PolicyError extends RefusedError {
  constructor(message: string) {
    super('bad-policy', message);
    this.name = 'PolicyError';
  }
}

/** A publisher asked for a path outside its scope, or is not in the policy. */
export class NotAuthorizedError extends RefusedError {
  constructor(message: string) {
    super('not-authorized', message);
    this.name = 'NotAuthorizedError';
  }
}

/** Safe in file names, key ids and messages: starts with a letter or digit, at most 64 characters. */
export const PUBLISHER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function assertPublisherName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !PUBLISHER_NAME_RE.test(name) || name.endsWith('.') || name.includes('..')) {
    throw new PolicyError(`invalid publisher name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' ` +
      '(at most 64, starting with a letter or digit)');
  }
}

/** '' (the canonical root) is shown and stored as '/'. */
export function displayPath(canonical: string): string {
  return canonical === '' ? '/' : canonical;
}

/** A path as the policy and leases keep it: canonical, root as '/'. Refuses '..' and '.'. */
export function scopePath(input: string): string {
  if (typeof input !== 'string') throw new PolicyError(`a path must be a string, got ${JSON.stringify(input)}`);
  try {
    return displayPath(normalizeRepoPath(input));
  } catch (e) {
    throw new PolicyError((e as Error).message);
  }
}

/** True when `path` is `scope` itself or below it, component-wise ('/w1' does not cover '/w10'). */
export function pathWithin(path: string, scope: string): boolean {
  return isWithin(normalizeRepoPath(path), normalizeRepoPath(scope));
}

/** Two sub-paths overlap when one lies within the other (the gateway's path_busy rule). */
export function pathsOverlap(a: string, b: string): boolean {
  return pathWithin(a, b) || pathWithin(b, a);
}

function normalizedPaths(paths: readonly string[]): string[] {
  if (!Array.isArray(paths) || paths.length === 0) throw new PolicyError('a publisher needs at least one allowed path');
  return [...new Set(paths.map(scopePath))].sort();
}

function publicKeyPem(pem: string, who: string): string {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new PolicyError(`public key of publisher '${who}' is not readable: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new PolicyError(`public key of publisher '${who}' must be RSA with at least 2048 bits`);
  }
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

/** Checks every field of a parsed policy body; the message names the first problem. */
export function validatePolicy(body: unknown): PublisherPolicy {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new PolicyError('publisher policy must be a JSON object');
  const p = body as Record<string, unknown>;
  if (typeof p.fqrn !== 'string' || p.fqrn === '') throw new PolicyError('publisher policy has no fqrn');
  if (!Number.isSafeInteger(p.version) || (p.version as number) < 1) throw new PolicyError('publisher policy version must be a positive integer');
  if (!Array.isArray(p.publishers)) throw new PolicyError('publisher policy has no publishers list');
  const seen = new Set<string>();
  const publishers = p.publishers.map((e: unknown, i: number): PublisherEntry => {
    if (e === null || typeof e !== 'object') throw new PolicyError(`publisher #${i + 1} is not an object`);
    const r = e as Record<string, unknown>;
    assertPublisherName(r.name);
    if (seen.has(r.name)) throw new PolicyError(`publisher '${r.name}' is listed twice`);
    seen.add(r.name);
    if (typeof r.publicKeyPem !== 'string') throw new PolicyError(`publisher '${r.name}' has no public key`);
    if (!Array.isArray(r.paths) || !r.paths.every((x) => typeof x === 'string')) throw new PolicyError(`publisher '${r.name}' has no list of paths`);
    if (typeof r.added !== 'string' || Number.isNaN(Date.parse(r.added))) throw new PolicyError(`publisher '${r.name}' has no valid 'added' time`);
    return { name: r.name, publicKeyPem: publicKeyPem(r.publicKeyPem, r.name), paths: normalizedPaths(r.paths as string[]), added: r.added };
  });
  return { fqrn: p.fqrn, version: p.version as number, publishers };
}

export function emptyPolicy(fqrn: string): PublisherPolicy {
  return { fqrn, version: 0, publishers: [] };
}

/**
 * Adds a publisher, or changes the paths of one already listed with the same key. A different key under
 * a listed name is refused: replacing a key is a remove and an add, on purpose.
 */
export function withPublisher(policy: PublisherPolicy, entry: { name: string; publicKeyPem: string; paths: readonly string[] }, now: Date): PublisherPolicy {
  assertPublisherName(entry.name);
  const pem = publicKeyPem(entry.publicKeyPem, entry.name);
  const paths = normalizedPaths(entry.paths);
  const existing = policy.publishers.find((p) => p.name === entry.name);
  if (existing && publicKeyFingerprint(existing.publicKeyPem) !== publicKeyFingerprint(pem)) {
    throw new PolicyError(`publisher '${entry.name}' is already listed with another key (${publicKeyFingerprint(existing.publicKeyPem)}); ` +
      'remove it first to replace its key');
  }
  const others = policy.publishers.filter((p) => p.name !== entry.name);
  const updated: PublisherEntry = { name: entry.name, publicKeyPem: pem, paths, added: existing?.added ?? now.toISOString() };
  return { ...policy, version: policy.version + 1, publishers: [...others, updated].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}

export function withoutPublisher(policy: PublisherPolicy, name: string): PublisherPolicy {
  assertPublisherName(name);
  if (!policy.publishers.some((p) => p.name === name)) throw new PolicyError(`publisher '${name}' is not in the policy of ${policy.fqrn}`);
  return { ...policy, version: policy.version + 1, publishers: policy.publishers.filter((p) => p.name !== name) };
}

export function findPublisher(policy: PublisherPolicy, name: string): PublisherEntry | undefined {
  return policy.publishers.find((p) => p.name === name);
}

/**
 * The publisher's entry when `path` lies within one of its allowed sub-paths; throws NotAuthorizedError
 * otherwise (unknown publisher, path outside scope, malformed path such as one with '..').
 */
export function authorize(policy: PublisherPolicy, publisherName: string, path: string): PublisherEntry {
  const entry = findPublisher(policy, publisherName);
  if (!entry) throw new NotAuthorizedError(`publisher '${publisherName}' is not in the publisher policy of ${policy.fqrn}`);
  let wanted: string;
  try {
    wanted = scopePath(path);
  } catch (e) {
    throw new NotAuthorizedError(`publisher '${publisherName}' asked for an invalid path: ${(e as Error).message}`);
  }
  if (!entry.paths.some((scope) => pathWithin(wanted, scope))) {
    throw new NotAuthorizedError(`publisher '${publisherName}' may not write ${wanted}: its allowed paths are ${entry.paths.join(', ')}`);
  }
  return entry;
}

export function signPolicy(policy: PublisherPolicy, masterKeyPem: string | KeyObject): SignedDocument<PublisherPolicy> {
  const validated = validatePolicy(policy);
  return signDocument(POLICY_DOCUMENT_TYPE, validated, masterKeyPem, publicKeyFingerprint(createPublicKey(masterKeyPem)));
}

/**
 * Verifies a stored policy against the master public key and that it is the policy of `fqrn`. The key
 * id must be that key's fingerprint, so a policy signed by any other key is refused by name.
 */
export function openPolicy(bytes: Uint8Array | string, fqrn: string, masterPublicKeyPem: string | KeyObject): PublisherPolicy {
  const expectedId = publicKeyFingerprint(masterPublicKeyPem);
  let body: unknown;
  try {
    ({ body } = openSignedDocument(bytes, POLICY_DOCUMENT_TYPE, (id) => (id === expectedId ? masterPublicKeyPem : undefined)));
  } catch (e) {
    if (e instanceof SignedDocumentError) throw new PolicyError(`publisher policy of ${fqrn} refused: ${e.message} (expected the master key ${expectedId})`);
    throw e;
  }
  const policy = validatePolicy(body);
  if (policy.fqrn !== fqrn) throw new PolicyError(`publisher policy is for ${policy.fqrn}, not for ${fqrn}`);
  return policy;
}
