// The high-water record `.scvmfs/high-water.json`: the highest revision this repository has published
// and its root catalog, signed with the repository key that signed that revision. Every commit raises it
// after its manifest swap; a writer refuses a head below it (an older, genuinely signed manifest put
// back) or at its revision with another root, so revisions never go backwards (docs/storage.md).
import { RefusedError } from '../errors.js';
import { ContentHash } from '../format/hash.js';
import { certificatePublicKey } from '../format/certificate.js';
import type { Manifest } from '../format/manifest.js';
import { parseSignedDocument, serializeSignedDocument, signDocument, verifySignedDocument } from '../format/signed-document.js';
import { CONTROL_PREFIX, PreconditionFailedError, type ObjectStore } from '../store/object-store.js';

export const HIGH_WATER_KEY = `${CONTROL_PREFIX}high-water.json`;
const RECORD_TYPE = 'scvmfs-high-water';
const CAS_ATTEMPTS = 30;

export interface HighWater {
  fqrn: string;
  revision: number;
  /** Root catalog hash of that revision (hex, as in the manifest's `C`). */
  root: string;
  /** The manifest's `T`. */
  publishedAt: number;
}

/** The record as stored: its body and the certificate object (`X` hash) whose key signed it. */
export interface StoredHighWater {
  record: HighWater;
  certificate: ContentHash;
  etag: string;
}

function isHighWater(x: unknown): x is HighWater {
  const r = x as Partial<HighWater> | null;
  return typeof r === 'object' && r !== null && typeof r.fqrn === 'string' && Number.isSafeInteger(r.revision)
    && typeof r.root === 'string' && Number.isSafeInteger(r.publishedAt);
}

/**
 * Reads the record and checks its signature with `certificateFor` (which must return only certificates
 * the repository's trust anchor vouches for, or undefined). Null when there is none.
 */
export async function readHighWater(store: ObjectStore,
  certificateFor: (hash: ContentHash) => Promise<string | undefined>): Promise<StoredHighWater | null> {
  const got = await store.get(HIGH_WATER_KEY);
  if (!got) return null;
  const bad = (why: string) => new RefusedError('untrusted-head',
    `the high-water record ${HIGH_WATER_KEY} in ${store.description} ${why}; it was not written by this repository's commits. ` +
    'Refusing to publish: restore it from a backup (or remove it only if you are sure the current manifest is the newest one published)',
    { reason: 'high-water' });
  let doc;
  let certificate: ContentHash;
  try {
    doc = parseSignedDocument(got.body, RECORD_TYPE);
    certificate = ContentHash.fromHex(doc.keyId);
  } catch (err) {
    throw bad(`is malformed (${(err as Error).message})`);
  }
  const pem = await certificateFor(certificate);
  if (pem === undefined) throw bad(`is signed by certificate ${doc.keyId}, which the whitelist does not list`);
  if (!verifySignedDocument(doc, certificatePublicKey(pem))) throw bad('has a signature that does not verify');
  if (!isHighWater(doc.body)) throw bad('has a malformed body');
  return { record: doc.body, certificate, etag: got.etag };
}

/** The record's revision without checking it: only to decide whether ours is higher. */
function storedRevision(bytes: Buffer): number {
  try {
    const body = parseSignedDocument(bytes, RECORD_TYPE).body;
    return isHighWater(body) ? body.revision : -1;
  } catch {
    return -1;
  }
}

/**
 * Raises the record to `manifest` (compare-and-swap; never lowers it: concurrent commits may finish in
 * any order). Signed with the key that signed the manifest; its key id is the manifest's certificate `X`.
 */
export async function raiseHighWater(store: ObjectStore, manifest: Manifest, repositoryKeyPem: string,
  options: { newRepository?: boolean } = {}): Promise<void> {
  const record: HighWater = {
    fqrn: manifest.fqrn, revision: manifest.revision, root: manifest.rootCatalog.toHex(), publishedAt: manifest.publishedAt,
  };
  const bytes = serializeSignedDocument(signDocument(RECORD_TYPE, record, repositoryKeyPem, manifest.certificate.toHex()));
  if (options.newRepository) {
    // A record left by an earlier repository in the same place speaks for a history that is gone.
    await store.put(HIGH_WATER_KEY, bytes);
    return;
  }
  for (let attempt = 1; ; attempt++) {
    const current = await store.get(HIGH_WATER_KEY);
    if (current && storedRevision(current.body) >= record.revision) return;
    try {
      await store.put(HIGH_WATER_KEY, bytes, current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      // Still losing after many tries: others are committing right now, and each raises it past ours.
      if (attempt >= CAS_ATTEMPTS) return;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(attempt, 10)));
    }
  }
}
