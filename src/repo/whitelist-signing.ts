// Re-signing the whitelist, only with this repository's own keys and only over a trusted head: the
// master key must be the one the configured `.pub` names and the current whitelist verifies with, and the
// certificate must be one that whitelist lists. A certificate on its way out after a key rotation stays
// listed until its overlap ends, and past that as long as the head still names it.
import { BusyError, RefusedError } from '../errors.js';
import { certificateFingerprint, makeWhitelist, signWhitelist, whitelistListsCertificate, type Whitelist } from '../format/whitelist.js';
import { publicKeyPemOf } from '../format/keys.js';
import { createPublicKey } from 'node:crypto';
import { PreconditionFailedError, type ObjectStore } from '../store/object-store.js';
import { WHITELIST_KEY } from './repository.js';
import { openTrustedHead, type TrustedHead } from './trusted-head.js';

export interface ResignKeys {
  masterKeyPem: string;
  /** The configured trust anchor (`<fqrn>.pub`); derived from the master key when not given. */
  masterPublicKeyPem?: string;
  certificatePem: string;
}

export interface ResignOptions {
  now?: Date;
  /** Validity in days, at most 30 (the stock limit). */
  days?: number;
  onWarning?: (message: string) => void;
}

export interface WhitelistOutcome {
  expiresAt: Date;
  fingerprints: string[];
  /** Fingerprints the previous whitelist listed and this one does not (retired after their overlap). */
  dropped: string[];
}

function samePublicKey(a: string, b: string): boolean {
  const der = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' });
  return der(a).equals(der(b));
}

/** The head, checked against the master key's own public half (which must be the configured anchor). */
export async function headForMasterKey(store: ObjectStore, fqrn: string, keys: ResignKeys, now: Date,
  onWarning?: (m: string) => void): Promise<TrustedHead> {
  const derived = publicKeyPemOf(keys.masterKeyPem);
  if (keys.masterPublicKeyPem !== undefined && !samePublicKey(keys.masterPublicKeyPem, derived)) {
    throw new RefusedError('foreign-master-key', `the master key given is not the one whose public key (${fqrn}.pub) ` +
      'clients trust; a whitelist signed with it would make the repository unverifiable. Use the repository\'s own master key');
  }
  return openTrustedHead(store, { fqrn, masterPublicKeyPem: derived }, { now, allowExpiredWhitelist: true, onWarning });
}

/**
 * Signs and stores a whitelist with `certificatePem` first, then every other certificate `head`'s whitelist
 * lists, except retiring ones past their overlap that the head no longer names. Compare-and-swap on the
 * whitelist read with the head, so two re-signs at once cannot drop each other's certificate.
 */
export async function storeWhitelist(store: ObjectStore, head: TrustedHead, masterKeyPem: string, certificatePem: string,
  options: { now: Date; days: number; add?: { fingerprint: string; until?: Date }[]; onWarning?: (m: string) => void }): Promise<WhitelistOutcome> {
  const previous = head.whitelist;
  const headFingerprints = previous.fingerprints.filter((f) => whitelistListsCertificate({ ...previous, fingerprints: [f] }, head.certificatePem));
  const retiring = new Map((previous.retiring ?? []).map((r) => [r.fingerprint, r.until]));
  const also: { fingerprint: string; until?: Date }[] = [...(options.add ?? [])];
  const dropped: string[] = [];
  for (const fingerprint of previous.fingerprints) {
    const until = retiring.get(fingerprint);
    if (until && until.getTime() <= options.now.getTime()) {
      if (!headFingerprints.includes(fingerprint)) {
        dropped.push(fingerprint);
        continue;
      }
      options.onWarning?.(`certificate ${fingerprint} stays listed past the end of its overlap (${until.toISOString()}) ` +
        'because the current manifest still names it; publish once with the new key, then re-sign again to drop it');
    }
    also.push({ fingerprint, until });
  }
  const whitelist: Whitelist = makeWhitelist({ fqrn: previous.fqrn, certificatePem, now: options.now, validityDays: options.days, also });
  try {
    await store.put(WHITELIST_KEY, signWhitelist(whitelist, masterKeyPem), { ifMatch: head.whitelistEtag });
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      throw new BusyError('whitelist-changed', `the whitelist of ${previous.fqrn} changed while it was being re-signed; run the command again`);
    }
    throw err;
  }
  return { expiresAt: whitelist.expiresAt, fingerprints: whitelist.fingerprints, dropped };
}

/** Re-signs the whitelist (it expires; the stock default validity is 30 days). */
export async function resignWhitelist(store: ObjectStore, fqrn: string, keys: ResignKeys, options: ResignOptions = {}): Promise<WhitelistOutcome> {
  const now = options.now ?? new Date();
  const days = options.days ?? 30;
  const head = await headForMasterKey(store, fqrn, keys, now, options.onWarning);
  const fingerprint = certificateFingerprint(keys.certificatePem);
  if (!whitelistListsCertificate(head.whitelist, keys.certificatePem)) {
    throw new RefusedError('foreign-certificate', `the certificate given (fingerprint ${fingerprint}) is not one the ` +
      `current whitelist of ${fqrn} lists; resign only renews the certificates already trusted. To move to a new ` +
      `repository key use: scvmfs rotate-key ${fqrn}`);
  }
  const retired = head.whitelist.retiring?.find((r) => r.fingerprint === fingerprint);
  if (retired && retired.until.getTime() <= now.getTime()) {
    throw new RefusedError('retired-certificate', `the certificate given (fingerprint ${fingerprint}) was rotated out; ` +
      `its overlap ended on ${retired.until.toISOString()}. Use the current repository key and certificate`);
  }
  return storeWhitelist(store, head, keys.masterKeyPem, keys.certificatePem, { now, days, onWarning: options.onWarning });
}
