// Rotating the repository key: a new key and certificate, trusted next to the old ones for an overlap,
// after which the old certificate leaves the whitelist at the next re-sign. Order of writes, so that a
// crash anywhere leaves a repository every client still verifies and a keys directory that still signs:
//   1. the new certificate object `X` in data/ (nothing names it yet);
//   2. the whitelist listing new and old, the old one marked with the end of its overlap;
//   3. the keys directory: old pair kept as <fqrn>.retired-<stamp>.key/.crt, new pair in place.
// The next commit signs with the new key and its manifest names the new certificate (commitRevision).
// A crash before 3 only loses the new key: the old one is still listed, and rotate-key can run again.
import { RefusedError } from '../errors.js';
import { createSelfSignedCertificate } from '../format/certificate.js';
import { rsaKeyPair } from '../format/keys.js';
import { certificateFingerprint } from '../format/whitelist.js';
import { prepareObject } from '../format/zlib-object.js';
import type { ObjectStore } from '../store/object-store.js';
import { loadKeys, replaceRepositoryKey } from './keys-dir.js';
import { putIfAbsent } from './repository.js';
import { assertSigningKeys } from './trusted-head.js';
import { headForMasterKey, storeWhitelist } from './whitelist-signing.js';

const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;
/**
 * A week: longer than any cache between the bucket and a client (`.cvmfs*` 61 s, the root catalog TTL,
 * default 240 s), than a stratum 1 snapshot cycle, and than the owner needs to put the new key in the
 * functions' secret and refresh their sandboxes; shorter than a whitelist's 30 days, so the old key
 * leaves at the next scheduled re-sign.
 */
export const DEFAULT_OVERLAP_MS = 7 * DAY_MS;
const MAX_OVERLAP_MS = 30 * DAY_MS;
/** The slowest cache in front of a client: `.cvmfs*` files are cached 61 s (spec §11.1). */
const MANIFEST_CACHE_MS = 61 * 1000;

export interface RotateOptions {
  fqrn: string;
  keysDir: string;
  overlapMs?: number;
  /** Validity of the whitelist signed now, in days (at most 30). */
  whitelistDays?: number;
  now?: Date;
  onWarning?: (message: string) => void;
}

export interface RotateOutcome {
  oldFingerprint: string;
  newFingerprint: string;
  /** Where the previous key and certificate were kept. */
  retired: { key: string; crt: string };
  overlapUntil: Date;
  whitelistExpiresAt: Date;
}

export async function rotateRepositoryKey(store: ObjectStore, options: RotateOptions): Promise<RotateOutcome> {
  const now = options.now ?? new Date();
  const { fqrn, keysDir } = options;
  const keys = await loadKeys(keysDir, fqrn, { need: ['master', 'repository', 'anchor'] });
  const head = await headForMasterKey(store, fqrn, keys, now, options.onWarning);
  assertSigningKeys(head, keys);

  const overlapMs = options.overlapMs ?? DEFAULT_OVERLAP_MS;
  // Clients must have fetched a manifest naming the new certificate before the old one is dropped.
  const minimum = Math.max(HOUR_MS, (head.manifest.ttl * 1000 + MANIFEST_CACHE_MS) * 2);
  if (!(overlapMs >= minimum && overlapMs <= MAX_OVERLAP_MS)) {
    throw new RefusedError('bad-overlap', `the overlap must be between ${Math.ceil(minimum / 60_000)} minutes ` +
      `(twice the catalog TTL of ${head.manifest.ttl} s plus the 61 s manifest cache, and at least an hour) and 30 days`);
  }
  const overlapUntil = new Date(now.getTime() + overlapMs);

  const pair = await rsaKeyPair();
  const next = { repositoryKeyPem: pair.privateKey, certificatePem: await createSelfSignedCertificate(fqrn, pair.privateKey, now) };
  await putIfAbsent(store, prepareObject(head.algorithm, Buffer.from(next.certificatePem), 'X'));

  const oldFingerprint = certificateFingerprint(keys.certificatePem);
  const whitelist = await storeWhitelist(store, head, keys.masterKeyPem, next.certificatePem, {
    now, days: options.whitelistDays ?? 30, add: [{ fingerprint: oldFingerprint, until: overlapUntil }], onWarning: options.onWarning,
  });
  const retired = await replaceRepositoryKey(keysDir, fqrn, next, now);
  return {
    oldFingerprint, newFingerprint: certificateFingerprint(next.certificatePem), retired, overlapUntil, whitelistExpiresAt: whitelist.expiresAt,
  };
}
