// The head every writer builds on, checked against the repository's own trust anchor: the master public
// key from configuration (never from the store) must have signed the whitelist, the whitelist must be for
// this repository, unexpired and list the certificate the manifest names, that certificate must have
// signed the manifest, and the manifest must not lie below the high-water record (design invariant 6).
// Someone who can write `.cvmfspublished` and `data/` but holds no key can then make writers refuse,
// never make them sign on top of a tree of their choosing.
import { RefusedError } from '../errors.js';
import { certificateFingerprint, isWhitelistExpired, parseWhitelist, verifyWhitelistSignature, whitelistListsCertificate, type Whitelist } from '../format/whitelist.js';
import { verifyManifestSignature } from '../format/manifest.js';
import { assertKeyMatchesCertificate } from '../format/certificate.js';
import type { ContentHash } from '../format/hash.js';
import type { ObjectStore } from '../store/object-store.js';
import { fetchObjectContent } from './objects.js';
import { readHighWater, HIGH_WATER_KEY, type HighWater } from './high-water.js';
import { readHead, RepositoryMissingError, WHITELIST_KEY, type Head } from './repository.js';

/** What a writer trusts, from its configuration: the key directory's `<fqrn>.pub`, or the function's secret. */
export interface TrustAnchor {
  fqrn: string;
  masterPublicKeyPem: string;
}

export interface TrustedHead extends Head {
  whitelist: Whitelist;
  whitelistEtag: string;
  /** The certificate the manifest names (listed in the whitelist, and its key signed the manifest). */
  certificatePem: string;
  highWater: HighWater | null;
}

export interface TrustOptions {
  now?: Date;
  /** Only for resign, whose job is to renew an expired whitelist. */
  allowExpiredWhitelist?: boolean;
  onWarning?: (message: string) => void;
}

/** Below this many days of whitelist validity, writers warn. */
export const WHITELIST_WARNING_DAYS = 7;
const DAY_MS = 24 * 3600 * 1000;

export type UntrustedReason = 'fqrn' | 'whitelist' | 'certificate' | 'signature' | 'rollback' | 'fork' | 'high-water';

function untrusted(reason: UntrustedReason, message: string): RefusedError {
  return new RefusedError('untrusted-head', message, { reason });
}

/** Re-reads before refusing a head below the high-water record: a store may briefly serve an older one. */
const REREAD_DELAYS_MS = [100, 400, 1600];

/** Reads the head and checks it against `anchor`; throws RefusedError 'untrusted-head' or 'whitelist-expired'. */
export async function openTrustedHead(store: ObjectStore, anchor: TrustAnchor, options: TrustOptions = {}): Promise<TrustedHead> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await checkHead(store, anchor, options);
    } catch (err) {
      const reason = (err as RefusedError).data?.reason;
      if (!(err instanceof RefusedError) || (reason !== 'rollback' && reason !== 'fork') || attempt >= REREAD_DELAYS_MS.length) throw err;
      await new Promise((r) => setTimeout(r, REREAD_DELAYS_MS[attempt]));
    }
  }
}

async function checkHead(store: ObjectStore, anchor: TrustAnchor, options: TrustOptions): Promise<TrustedHead> {
  const now = options.now ?? new Date();
  const head = await readHead(store);
  if (!head) throw new RepositoryMissingError(store);
  const where = store.description;
  const refuse = 'refusing to sign anything on top of it; restore the repository from a trusted copy';
  if (head.manifest.fqrn !== anchor.fqrn) {
    throw untrusted('fqrn', `the repository in ${where} is '${head.manifest.fqrn}', not '${anchor.fqrn}'`);
  }

  const got = await store.get(WHITELIST_KEY);
  if (!got) throw untrusted('whitelist', `${where} has no ${WHITELIST_KEY}; ${refuse}`);
  let whitelist: Whitelist;
  try {
    const signed = parseWhitelist(got.body);
    if (!verifyWhitelistSignature(signed, [anchor.masterPublicKeyPem])) {
      throw new Error(`it is not signed by the master key of ${anchor.fqrn} (the configured ${anchor.fqrn}.pub)`);
    }
    whitelist = signed.whitelist;
  } catch (err) {
    throw untrusted('whitelist', `${WHITELIST_KEY} in ${where} cannot be trusted: ${(err as Error).message}; ${refuse}`);
  }
  if (whitelist.fqrn !== anchor.fqrn) {
    throw untrusted('whitelist', `${WHITELIST_KEY} in ${where} is for '${whitelist.fqrn}', not '${anchor.fqrn}'; ${refuse}`);
  }

  let certificatePem: string;
  try {
    certificatePem = (await fetchObjectContent(store, head.manifest.certificate, 'X')).toString('utf8');
    certificateFingerprint(certificatePem);
  } catch (err) {
    throw untrusted('certificate', `the certificate the manifest in ${where} names cannot be read: ${(err as Error).message}; ${refuse}`);
  }
  if (!whitelistListsCertificate(whitelist, certificatePem)) {
    throw untrusted('certificate', `the manifest in ${where} names certificate ${certificateFingerprint(certificatePem)}, ` +
      `which the whitelist signed by the master key does not list (a manifest signed by a foreign key); ${refuse}`);
  }
  if (!verifyManifestSignature(head.signed, certificatePem)) {
    throw untrusted('signature', `the manifest in ${where} does not verify against the certificate it names; ${refuse}`);
  }

  checkExpiry(whitelist, anchor.fqrn, now, options);

  const certificateFor = async (hash: ContentHash): Promise<string | undefined> => {
    if (hash.equals(head.manifest.certificate)) return certificatePem;
    const pem = await fetchObjectContent(store, hash, 'X').then((b) => b.toString('utf8'), () => undefined);
    return pem !== undefined && whitelistListsCertificate(whitelist, pem) ? pem : undefined;
  };
  const stored = await readHighWater(store, certificateFor);
  const high = stored?.record ?? null;
  if (high) {
    const m = head.manifest;
    if (high.fqrn !== anchor.fqrn) throw untrusted('high-water', `${HIGH_WATER_KEY} in ${where} is for '${high.fqrn}', not '${anchor.fqrn}'`);
    if (m.revision < high.revision) {
      throw untrusted('rollback', `the manifest in ${where} is revision ${m.revision}, but revision ${high.revision} ` +
        `(root catalog ${high.root}) was already published: an older manifest was put back. Publishing on it would make ` +
        `the revision go backwards; refusing. Put the newest manifest back (the reflog lists every published root catalog)`);
    }
    if (m.revision === high.revision && m.rootCatalog.toHex() !== high.root) {
      throw untrusted('fork', `the manifest in ${where} is revision ${m.revision} with root catalog ${m.rootCatalog.toHex()}, ` +
        `but revision ${high.revision} was published with root catalog ${high.root}; refusing to build on it`);
    }
  }
  return { ...head, whitelist, whitelistEtag: got.etag, certificatePem, highWater: high };
}

function checkExpiry(whitelist: Whitelist, fqrn: string, now: Date, options: TrustOptions): void {
  if (isWhitelistExpired(whitelist, now)) {
    if (options.allowExpiredWhitelist) return;
    throw new RefusedError('whitelist-expired', `the whitelist of ${fqrn} expired on ${whitelist.expiresAt.toISOString()}, ` +
      `so clients refuse the repository; refusing to publish. Re-sign it first: scvmfs resign ${fqrn} --store <store> --keys <dir>`,
    { expiresAt: whitelist.expiresAt.toISOString() });
  }
  const left = whitelist.expiresAt.getTime() - now.getTime();
  if (left < WHITELIST_WARNING_DAYS * DAY_MS) {
    options.onWarning?.(`the whitelist of ${fqrn} expires on ${whitelist.expiresAt.toISOString()} ` +
      `(in ${(left / DAY_MS).toFixed(1)} days); clients refuse the repository after that: run 'scvmfs resign ${fqrn}'`);
  }
}

/** Throws unless `keys` belong together and the head's (trusted) whitelist lists their certificate. */
export function assertSigningKeys(head: TrustedHead, keys: { repositoryKeyPem: string; certificatePem: string }): void {
  assertKeyMatchesCertificate(keys.repositoryKeyPem, keys.certificatePem);
  if (!whitelistListsCertificate(head.whitelist, keys.certificatePem)) {
    throw new RefusedError('foreign-certificate', `the repository key and certificate given (fingerprint ` +
      `${certificateFingerprint(keys.certificatePem)}) are not the ones this repository's whitelist trusts; ` +
      'use the keys the repository was created with (or rotate to new ones with scvmfs rotate-key)');
  }
}
