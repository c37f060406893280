// The master-key-signed certificate whitelist `.cvmfswhitelist` (spec §7.1).
import { constants, createPrivateKey, createPublicKey, KeyObject, privateEncrypt, publicDecrypt, X509Certificate } from 'node:crypto';
import { ContentHash, type HashAlgorithm } from './hash.js';
import { splitSignedLetter } from './manifest.js';

export interface Whitelist {
  createdAt: Date;
  /** Minutes and seconds are written but the client only honours the hour (see isWhitelistExpired). */
  expiresAt: Date;
  fqrn: string;
  /** Uppercase colon hex of the certificate DER hash, e.g. "93:AB:..:15" or "..:EF-SHAKE128". */
  fingerprints: string[];
  /** `Vpkcs7` line: verify via `.cvmfswhitelist.pkcs7` instead. Avoid (spec §1.1). */
  pkcs7?: boolean;
  /** `Wcachain` line: the client also verifies the certificate's CA chain. */
  caChain?: boolean;
  /**
   * Listed certificates on their way out after a key rotation, and until when they stay listed. Written
   * as comment lines after the fingerprints (`# retiring <fingerprint> until <YYYYMMDDHHMMSS>`): the
   * client reads a fingerprint only up to a blank or `#`, so such a line is ignored, but it is signed
   * with the rest, so `resign` can trust it to know when the old certificate may be dropped.
   */
  retiring?: { fingerprint: string; until: Date }[];
}

export interface SignedWhitelist {
  whitelist: Whitelist;
  body: Buffer;
  /** The hash line as printed; its algorithm id decides the algorithm, as in the client's VerifyLetter. */
  bodyHash: string;
  signature: Buffer;
}

const ALGORITHM_ID: Record<HashAlgorithm, string> = { sha1: '', rmd160: '-RMD160', shake128: '-SHAKE128' };

function fingerprintOf(hash: ContentHash): string {
  const pairs = hash.digest.toString('hex').toUpperCase().match(/../g)!;
  return pairs.join(':') + ALGORITHM_ID[hash.algorithm];
}

/**
 * Reads a whitelist fingerprint line as the client's MkFromFingerprint does: up to the first blank or
 * `#`, colons dropped, case folded. Undefined when it is not a hash (the client ignores such lines).
 */
export function parseFingerprint(line: string): ContentHash | undefined {
  const token = line.split(/[ \t#]/, 1)[0]!.replace(/:/g, '').toLowerCase();
  try {
    return ContentHash.fromHex(token);
  } catch {
    return undefined;
  }
}

/** Hash of the certificate's DER encoding in whitelist notation. */
export function certificateFingerprint(certificatePem: string, algorithm: HashAlgorithm = 'sha1'): string {
  let der: Buffer;
  try {
    der = new X509Certificate(certificatePem).raw;
  } catch (e) {
    throw new Error(`not a PEM X.509 certificate: ${(e as Error).message}`);
  }
  return fingerprintOf(ContentHash.of(algorithm, der));
}

/** True when one of the whitelist's fingerprints is this certificate's (each in its own algorithm). */
export function whitelistListsCertificate(w: Whitelist, certificatePem: string): boolean {
  return w.fingerprints.some((f) => {
    const hash = parseFingerprint(f);
    return hash !== undefined && certificateFingerprint(certificatePem, hash.algorithm) === fingerprintOf(hash);
  });
}

function timestamp(d: Date, what: string): string {
  if (Number.isNaN(d.getTime())) throw new Error(`whitelist ${what}: invalid date`);
  const year = d.getUTCFullYear();
  if (year < 1000 || year > 9999) throw new Error(`whitelist ${what}: year ${year} does not fit YYYYMMDDHHMMSS`);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${year}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}`
    + `${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}`;
}

function parseTimestamp(text: string, what: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(text);
  if (!m) throw new Error(`.cvmfswhitelist: ${what} is not a 14-digit UTC timestamp YYYYMMDDHHMMSS: '${text}'`);
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d
    || date.getUTCHours() !== h || date.getUTCMinutes() !== mi || date.getUTCSeconds() !== s) {
    throw new Error(`.cvmfswhitelist: ${what} is not a valid date: '${text}'`);
  }
  return date;
}

export function buildWhitelistBody(w: Whitelist): Buffer {
  if (w.fqrn === '' || /[\s\x00-\x1f\x7f]/.test(w.fqrn)) {
    throw new Error(`whitelist: invalid repository name ${JSON.stringify(w.fqrn)}`);
  }
  if (w.fingerprints.length === 0) throw new Error('whitelist: at least one certificate fingerprint is needed');
  for (const f of w.fingerprints) {
    if (!/^([0-9A-F]{2}:){19}[0-9A-F]{2}(-RMD160|-SHAKE128)?$/.test(f)) {
      throw new Error(`whitelist: malformed fingerprint '${f}' (expected uppercase colon hex, as certificateFingerprint makes)`);
    }
  }
  const lines = [timestamp(w.createdAt, 'creation time'), `E${timestamp(w.expiresAt, 'expiry time')}`, `N${w.fqrn}`];
  if (w.pkcs7) lines.push('Vpkcs7');
  if (w.caChain) lines.push('Wcachain');
  lines.push(...w.fingerprints);
  for (const r of w.retiring ?? []) {
    if (!w.fingerprints.includes(r.fingerprint)) throw new Error(`whitelist: retiring fingerprint ${r.fingerprint} is not listed`);
    lines.push(`# retiring ${r.fingerprint} until ${timestamp(r.until, 'retirement time')}`);
  }
  return Buffer.from(lines.map((l) => l + '\n').join(''), 'utf8');
}

/**
 * The whole `.cvmfswhitelist`. The signature is "raw" RSA PKCS#1 v1.5 type 1 (RSA_private_encrypt, no
 * digest) of the ASCII hex body hash: what `openssl rsautl -sign` makes and the client's VerifyRsa expects.
 */
export function signWhitelist(w: Whitelist, masterKeyPem: string, algorithm: HashAlgorithm = 'sha1'): Buffer {
  const body = buildWhitelistBody(w);
  const hashHex = ContentHash.of(algorithm, body).toHex();
  const signature = privateEncrypt(
    { key: createPrivateKey(masterKeyPem), padding: constants.RSA_PKCS1_PADDING }, Buffer.from(hashHex, 'ascii'));
  return Buffer.concat([body, Buffer.from(`--\n${hashHex}\n`, 'ascii'), signature]);
}

/**
 * A fresh whitelist for one certificate (first in the list), plus any `also` listed (a rotation's
 * previous certificate, with the end of its overlap); stock cvmfs_server refuses validities above 30 days.
 */
export function makeWhitelist(opts: {
  fqrn: string; certificatePem: string; now?: Date; validityDays?: number; algorithm?: HashAlgorithm;
  also?: { fingerprint: string; until?: Date }[];
}): Whitelist {
  const validityDays = opts.validityDays ?? 30;
  if (!(validityDays > 0 && validityDays <= 30)) {
    throw new Error(`whitelist validity must be more than 0 and at most 30 days, got ${validityDays}`);
  }
  const now = opts.now ?? new Date();
  const createdAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const fingerprints = [certificateFingerprint(opts.certificatePem, opts.algorithm ?? 'sha1')];
  const retiring: { fingerprint: string; until: Date }[] = [];
  for (const a of opts.also ?? []) {
    if (!fingerprints.includes(a.fingerprint)) fingerprints.push(a.fingerprint);
    if (a.until && !retiring.some((r) => r.fingerprint === a.fingerprint)) {
      retiring.push({ fingerprint: a.fingerprint, until: new Date(Math.floor(a.until.getTime() / 1000) * 1000) });
    }
  }
  return {
    createdAt,
    expiresAt: new Date(createdAt.getTime() + Math.round(validityDays * 24 * 3600) * 1000),
    fqrn: opts.fqrn,
    fingerprints,
    ...(retiring.length > 0 ? { retiring } : {}),
  };
}

export function parseWhitelist(bytes: Buffer): SignedWhitelist {
  const { body, hashLine, signature } = splitSignedLetter(bytes, '.cvmfswhitelist');
  const lines = body.toString('utf8').split('\n');
  lines.pop(); // the body ends with '\n'
  if (lines.length < 3) throw new Error('.cvmfswhitelist: fewer than the three header lines (created, E expiry, N name)');
  const createdAt = parseTimestamp(lines[0]!, 'line 1 (creation time)');
  if (!lines[1]!.startsWith('E')) throw new Error(`.cvmfswhitelist: line 2 must be 'E' + expiry, got '${lines[1]}'`);
  const expiresAt = parseTimestamp(lines[1]!.slice(1), 'line 2 (expiry)');
  if (!lines[2]!.startsWith('N') || lines[2]!.length < 2) {
    throw new Error(`.cvmfswhitelist: line 3 must be 'N' + repository name, got '${lines[2]}'`);
  }
  const whitelist: Whitelist = { createdAt, expiresAt, fqrn: lines[2]!.slice(1), fingerprints: [] };
  let i = 3;
  // Flag lines are only recognised in this position and order, as in the client's ParseWhitelist.
  if (lines[i] === 'Vpkcs7') { whitelist.pkcs7 = true; i++; }
  if (lines[i] === 'Wcachain') { whitelist.caChain = true; i++; }
  const retiring: { fingerprint: string; until: Date }[] = [];
  for (; i < lines.length; i++) {
    const retire = /^# retiring (\S+) until (\d{14})$/.exec(lines[i]!);
    if (retire) {
      retiring.push({ fingerprint: retire[1]!, until: parseTimestamp(retire[2]!, `retirement time of ${retire[1]}`) });
      continue;
    }
    const hash = parseFingerprint(lines[i]!);
    if (hash) whitelist.fingerprints.push(fingerprintOf(hash));
  }
  const listedRetiring = retiring.filter((r) => whitelist.fingerprints.includes(r.fingerprint));
  if (listedRetiring.length > 0) whitelist.retiring = listedRetiring;
  return { whitelist, body, bodyHash: hashLine, signature };
}

function toPublicKey(pem: string): KeyObject {
  try {
    return createPublicKey(pem);
  } catch (e) {
    throw new Error(`not a readable PEM public key: ${(e as Error).message}`);
  }
}

/** True when the body hash is right and any of the master public keys recovers exactly the hash string. */
export function verifyWhitelistSignature(signed: SignedWhitelist, masterPublicKeysPem: string[]): boolean {
  let printed: ContentHash;
  try {
    printed = ContentHash.fromHex(signed.bodyHash);
  } catch {
    return false;
  }
  if (ContentHash.of(printed.algorithm, signed.body).toHex() !== signed.bodyHash) return false;
  const expected = Buffer.from(signed.bodyHash, 'ascii');
  for (const pem of masterPublicKeysPem) {
    const key = toPublicKey(pem);
    try {
      const recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signed.signature);
      if (recovered.equals(expected)) return true;
    } catch {
      // wrong key or mangled signature: padding check fails; try the next key
    }
  }
  return false;
}

/**
 * The client compares only down to the hour: valid while the current UTC hour is earlier than the
 * expiry's hour, so an expiry at 12:34 already fails at 12:00.
 */
export function isWhitelistExpired(w: Whitelist, now: Date): boolean {
  const HOUR = 3600 * 1000;
  const expiryHour = Math.floor(w.expiresAt.getTime() / HOUR) * HOUR;
  return now.getTime() >= expiryHour;
}
