// The signed repository manifest `.cvmfspublished` (spec §6).
import { createHash, createPrivateKey, sign, verify } from 'node:crypto';
import { ContentHash } from './hash.js';
import { certificatePublicKey } from './certificate.js';

/** MD5 of the root path "" — the only value the client accepts in `R`. */
export const ROOT_PATH_HASH = createHash('md5').update('').digest('hex');

export interface Manifest {
  /** `C`: root catalog hash, no suffix. Its algorithm is the manifest's hash algorithm. */
  rootCatalog: ContentHash;
  /** `B`: uncompressed size of the root catalog. */
  rootCatalogSize?: number;
  /** `R`: always md5("") = d41d8cd98f00b204e9800998ecf8427e. */
  rootPathHash: string;
  /** `D`: TTL in seconds. */
  ttl: number;
  /** `S`: revision; must strictly increase per publish. */
  revision: number;
  /** `G`: yes/no. */
  garbageCollectable: boolean;
  /**
   * `A`: yes/no. Optional because manifests written by cvmfs 2.1 (the test vector) carry no `A` line;
   * keeping it undefined lets such a manifest re-serialize byte for byte. New manifests should set false.
   */
  alternativeName?: boolean;
  /** `N`: fully qualified repository name. */
  fqrn: string;
  /** `X`: certificate object hash, no suffix. */
  certificate: ContentHash;
  /** `H`: history object hash, no suffix. */
  history?: ContentHash;
  /** `T`: publish time, unix seconds. */
  publishedAt: number;
  /** `M`: meta-info object hash, no suffix. */
  metainfo?: ContentHash;
  /** `Y`: hash of the raw `.cvmfsreflog`. */
  reflog?: ContentHash;
}

export interface SignedManifest {
  manifest: Manifest;
  /** Every byte up to and including the `\n` before the `--` line: what the hash covers. */
  body: Buffer;
  /** The hash line as printed (hex plus algorithm id). */
  bodyHash: string;
  /** All bytes after the hash line. */
  signature: Buffer;
}

const SEPARATOR = Buffer.from('\n--\n');

function checkCount(name: string, value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`manifest ${name} must be a non-negative integer, got ${value}`);
  }
  return String(value);
}

function checkFqrn(fqrn: string, where: string): void {
  // A control character or whitespace would split or corrupt the line-oriented format.
  if (fqrn === '' || /[\s\x00-\x1f\x7f]/.test(fqrn)) {
    throw new Error(`${where}: invalid repository name ${JSON.stringify(fqrn)}`);
  }
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

export function serializeManifestBody(m: Manifest): Buffer {
  if (m.rootPathHash !== ROOT_PATH_HASH) {
    throw new Error(`manifest R must be md5("") = ${ROOT_PATH_HASH}, got '${m.rootPathHash}'`);
  }
  checkFqrn(m.fqrn, 'manifest N');
  // Order as cvmfs' Manifest::ExportString writes it; readers do not care, byte-identity does.
  const lines: string[] = [`C${m.rootCatalog.toHex()}`];
  if (m.rootCatalogSize !== undefined) lines.push(`B${checkCount('B (root catalog size)', m.rootCatalogSize)}`);
  lines.push(`R${m.rootPathHash}`);
  lines.push(`D${checkCount('D (ttl)', m.ttl)}`);
  lines.push(`S${checkCount('S (revision)', m.revision)}`);
  lines.push(`G${yesNo(m.garbageCollectable)}`);
  if (m.alternativeName !== undefined) lines.push(`A${yesNo(m.alternativeName)}`);
  lines.push(`N${m.fqrn}`);
  lines.push(`X${m.certificate.toHex()}`);
  if (m.history) lines.push(`H${m.history.toHex()}`);
  lines.push(`T${checkCount('T (publish time)', m.publishedAt)}`);
  if (m.metainfo) lines.push(`M${m.metainfo.toHex()}`);
  if (m.reflog) lines.push(`Y${m.reflog.toHex()}`);
  return Buffer.from(lines.map((l) => l + '\n').join(''), 'utf8');
}

/** The whole `.cvmfspublished`: body, `--`, hex body hash, SHA-1/RSA PKCS#1 v1.5 signature of that hex string. */
export function signManifest(m: Manifest, repositoryKeyPem: string): Buffer {
  const body = serializeManifestBody(m);
  const hashHex = ContentHash.of(m.rootCatalog.algorithm, body).toHex();
  const key = createPrivateKey(repositoryKeyPem);
  // The client verifies with EVP_sha1 over the ASCII hex string, whatever the repository hash algorithm.
  const signature = sign('sha1', Buffer.from(hashHex, 'ascii'), key);
  return Buffer.concat([body, Buffer.from(`--\n${hashHex}\n`, 'ascii'), signature]);
}

/**
 * Splits a signed letter the way cvmfs' SignatureManager::CutLetter does: the body ends with the `\n`
 * that precedes the first `--\n` line; the next line is the hash; everything after it is the signature.
 * Shared by manifest and whitelist.
 */
export function splitSignedLetter(bytes: Buffer, what: string): { body: Buffer; hashLine: string; signature: Buffer } {
  const sep = bytes.indexOf(SEPARATOR);
  if (sep < 0) throw new Error(`${what}: no '--' separator line, so it is not signed`);
  const body = bytes.subarray(0, sep + 1);
  const hashStart = sep + SEPARATOR.length;
  const hashEnd = bytes.indexOf(0x0a, hashStart);
  if (hashEnd < 0) throw new Error(`${what}: truncated after the '--' line (no complete hash line)`);
  const hashLine = bytes.subarray(hashStart, hashEnd).toString('latin1');
  try {
    ContentHash.fromHex(hashLine);
  } catch {
    throw new Error(`${what}: the line after '--' is not a body hash: '${hashLine}'`);
  }
  const signature = bytes.subarray(hashEnd + 1);
  if (signature.length === 0) throw new Error(`${what}: empty signature after the hash line`);
  return { body: Buffer.from(body), hashLine, signature: Buffer.from(signature) };
}

function parseHashField(value: string, key: string): ContentHash {
  try {
    return ContentHash.fromHex(value);
  } catch {
    throw new Error(`manifest ${key}: not a content hash (hex with optional -rmd160/-shake128, no suffix): '${value}'`);
  }
}

function parseCountField(value: string, key: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`manifest ${key}: not a decimal number: '${value}'`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`manifest ${key}: number out of range: '${value}'`);
  return n;
}

function parseBoolField(value: string, key: string): boolean {
  if (value === 'yes') return true;
  if (value === 'no') return false;
  throw new Error(`manifest ${key}: expected 'yes' or 'no', got '${value}'`);
}

/** Parses the key/value body of a manifest (no signature needed). */
export function parseManifestBody(body: Buffer): Manifest {
  const fields = new Map<string, string>();
  for (const line of body.toString('utf8').split('\n')) {
    if (line === '') continue;
    // Last occurrence wins, as in cvmfs' ParseKeyvalMem; unknown keys (L, Z, ...) are ignored below.
    fields.set(line[0]!, line.slice(1));
  }
  const required = (key: string, meaning: string): string => {
    const v = fields.get(key);
    if (v === undefined) throw new Error(`manifest: missing required ${key} line (${meaning})`);
    return v;
  };
  const rootPathHash = required('R', 'root path hash');
  if (rootPathHash !== ROOT_PATH_HASH) {
    throw new Error(`manifest R: must be md5("") = ${ROOT_PATH_HASH}, got '${rootPathHash}'`);
  }
  const fqrn = required('N', 'repository name');
  checkFqrn(fqrn, 'manifest N');
  const m: Manifest = {
    rootCatalog: parseHashField(required('C', 'root catalog hash'), 'C'),
    rootPathHash,
    ttl: parseCountField(required('D', 'TTL'), 'D'),
    revision: parseCountField(required('S', 'revision'), 'S'),
    garbageCollectable: fields.has('G') ? parseBoolField(fields.get('G')!, 'G') : false,
    fqrn,
    certificate: parseHashField(required('X', 'certificate hash'), 'X'),
    publishedAt: parseCountField(required('T', 'publish timestamp'), 'T'),
  };
  if (fields.has('B')) m.rootCatalogSize = parseCountField(fields.get('B')!, 'B');
  if (fields.has('A')) m.alternativeName = parseBoolField(fields.get('A')!, 'A');
  if (fields.has('H')) m.history = parseHashField(fields.get('H')!, 'H');
  if (fields.has('M')) m.metainfo = parseHashField(fields.get('M')!, 'M');
  if (fields.has('Y')) m.reflog = parseHashField(fields.get('Y')!, 'Y');
  return m;
}

export function parseManifest(bytes: Buffer): SignedManifest {
  const { body, hashLine, signature } = splitSignedLetter(bytes, '.cvmfspublished');
  return { manifest: parseManifestBody(body), body, bodyHash: hashLine, signature };
}

/**
 * True when the printed hash is the hash of the body (with the root catalog's algorithm) and the
 * signature over that hex string verifies with the certificate's public key.
 */
export function verifyManifestSignature(signed: SignedManifest, certificatePem: string): boolean {
  const expected = ContentHash.of(signed.manifest.rootCatalog.algorithm, signed.body).toHex();
  if (expected !== signed.bodyHash) return false;
  const publicKey = certificatePublicKey(certificatePem);
  try {
    return verify('sha1', Buffer.from(signed.bodyHash, 'ascii'), publicKey, signed.signature);
  } catch {
    return false;
  }
}
