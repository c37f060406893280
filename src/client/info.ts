// What `scvmfs info` and `scvmfs catalogs` report: the manifest's fields, the trust chain (certificate,
// whitelist expiry), the totals the root catalog's statistics keep, the stratum-1 markers, and the tree
// of catalogs (cvmfs_server info / list-catalogs).
import type { ObjectReader } from '../store/object-store.js';
import { ContentHash } from '../format/hash.js';
import { parseManifest, verifyManifestSignature } from '../format/manifest.js';
import { certificateFingerprint, parseWhitelist, isWhitelistExpired } from '../format/whitelist.js';
import { addCounters, type Counters } from '../format/catalog-db.js';
import { fetchCatalog, fetchObjectContent } from '../repo/objects.js';
import { MANIFEST_KEY, MASTER_REPLICA_KEY, WHITELIST_KEY } from '../repo/repository.js';
import { RepositoryReader, VerificationError } from './reader.js';

/** A whitelist with fewer days than this left is reported with a warning (its owner must re-sign it). */
export const WHITELIST_WARNING_DAYS = 7;
export const LAST_SNAPSHOT_KEY = '.cvmfs_last_snapshot';

export interface RepositoryInfo {
  fqrn: string;
  revision: number;
  rootCatalog: string;
  rootCatalogSize: number | null;
  /** Unix seconds. */
  publishedAt: number;
  ttl: number;
  hashAlgorithm: string;
  garbageCollectable: boolean;
  history: string | null;
  certificate: { hash: string; fingerprint: string };
  /** `verified`: the whitelist's signature was checked against the given master keys. */
  whitelist: { expiresAt: number; expired: boolean; daysLeft: number; verified: boolean };
  catalogs: number;
  /** The root catalog's statistics over the whole tree; `dir` counts '/' and each mountpoint once. */
  entries: Counters & { total: number };
  stratum1: { masterReplica: boolean; lastSnapshot: string | null };
  warnings: string[];
}

export interface InfoOptions {
  fqrn: string;
  /** Master public keys; without them the whitelist's signature is not checked (and info says so). */
  publicKeys?: string[];
  now?: Date;
}

export async function repositoryInfo(source: ObjectReader, options: InfoOptions): Promise<RepositoryInfo> {
  const now = options.now ?? new Date();
  const warnings: string[] = [];
  let verified = false;
  if (options.publicKeys && options.publicKeys.length > 0) {
    // The full trust check of a reader; only an expired whitelist is let through, so that info can show it.
    const reader = await RepositoryReader.open(source, { fqrn: options.fqrn, publicKeys: options.publicKeys, allowExpiredWhitelist: true, now });
    reader.close();
    verified = true;
  }
  const got = await source.get(MANIFEST_KEY);
  if (!got) throw new VerificationError(`no ${MANIFEST_KEY} at ${source.description}: not a repository`, MANIFEST_KEY);
  const signed = parseManifest(got.body);
  const m = signed.manifest;
  if (m.fqrn !== options.fqrn) throw new VerificationError(`the repository at ${source.description} is '${m.fqrn}', not '${options.fqrn}'`, MANIFEST_KEY);
  const certificatePem = (await fetchObjectContent(source, m.certificate, 'X')).toString('utf8');
  if (!verifyManifestSignature(signed, certificatePem)) {
    throw new VerificationError(`${MANIFEST_KEY}: signature does not verify against certificate ${m.certificate.toHex()}`, MANIFEST_KEY);
  }
  const wl = await source.get(WHITELIST_KEY);
  if (!wl) throw new VerificationError(`no ${WHITELIST_KEY} at ${source.description}`, WHITELIST_KEY);
  const whitelist = parseWhitelist(wl.body).whitelist;
  const expired = isWhitelistExpired(whitelist, now);
  const daysLeft = Math.floor((whitelist.expiresAt.getTime() - now.getTime()) / 86_400_000);
  if (expired) warnings.push(`the whitelist expired on ${whitelist.expiresAt.toISOString()}: clients refuse to mount; re-sign it (scvmfs resign)`);
  else if (daysLeft < WHITELIST_WARNING_DAYS) warnings.push(`the whitelist expires in ${daysLeft} days (${whitelist.expiresAt.toISOString()}); re-sign it soon (scvmfs resign)`);
  if (!verified) warnings.push('no --pubkey given: the whitelist signature was not checked');

  const { db } = await fetchCatalog(source, m.rootCatalog);
  const counters = db.readCounters();
  db.close();
  const totals = addCounters(counters.self, counters.subtree);
  // The statistics count a mountpoint twice (its row in the parent and the nested catalog's root copy).
  const dir = totals.dir - totals.nested;
  const entries = { ...totals, dir, total: totals.regular + totals.symlink + totals.special + dir };
  const lastSnapshot = await source.get(LAST_SNAPSHOT_KEY);
  return {
    fqrn: m.fqrn, revision: m.revision, rootCatalog: m.rootCatalog.toHex(), rootCatalogSize: m.rootCatalogSize ?? null,
    publishedAt: m.publishedAt, ttl: m.ttl, hashAlgorithm: m.rootCatalog.algorithm, garbageCollectable: m.garbageCollectable,
    history: m.history?.toHex() ?? null,
    certificate: { hash: m.certificate.toHex(), fingerprint: certificateFingerprint(certificatePem) },
    whitelist: { expiresAt: Math.floor(whitelist.expiresAt.getTime() / 1000), expired, daysLeft, verified },
    catalogs: 1 + totals.nested, entries,
    stratum1: { masterReplica: (await source.get(MASTER_REPLICA_KEY)) !== null, lastSnapshot: lastSnapshot ? lastSnapshot.body.toString('utf8').trim() : null },
    warnings,
  };
}

export interface CatalogListing {
  /** Mountpoint, '/' for the root catalog. */
  path: string;
  hash: string;
  /** Rows of this catalog (its own entries, the mountpoint's root copy included). */
  entries: number;
  /** Uncompressed SQLite size in bytes. */
  size: number;
  depth: number;
}

/** Every catalog of the reader's revision, parents before children, in path order (list-catalogs). */
export async function* listCatalogs(reader: RepositoryReader): AsyncGenerator<CatalogListing> {
  const stack: { hash: ContentHash; path: string; depth: number }[] = [{ hash: reader.rootHash, path: '', depth: 0 }];
  while (stack.length > 0) {
    const c = stack.pop()!;
    const { db, size } = await fetchCatalog(reader.source, c.hash).catch((err: Error) => {
      throw new VerificationError(`catalog of ${c.path || '/'}: ${err.message}`, c.hash.objectKey('C'));
    });
    const nested = db.nestedCatalogs().sort((a, b) => (a.path < b.path ? 1 : -1));
    const rows = db.rowCount();
    db.close();
    yield { path: c.path || '/', hash: c.hash.toHex(), entries: rows, size, depth: c.depth };
    for (const n of nested) stack.push({ hash: n.hash, path: n.path, depth: c.depth + 1 });
  }
}

