// Content hashes as CernVM-FS names them (spec §1.2–§1.4).
import { createHash, hash } from 'node:crypto';

export type HashAlgorithm = 'sha1' | 'rmd160' | 'shake128';
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['sha1', 'rmd160', 'shake128'];

/** Object suffixes of spec §1.3; '' is a plain file object. */
export type ObjectSuffix = '' | 'C' | 'H' | 'X' | 'P' | 'M';

const ID: Record<HashAlgorithm, string> = { sha1: '', rmd160: '-rmd160', shake128: '-shake128' };
/** Value stored in catalog flag bits 8–10 is this number minus one (spec §4.4). */
export const ALGORITHM_NUMBER: Record<HashAlgorithm, number> = { sha1: 1, rmd160: 2, shake128: 3 };

export function parseHashAlgorithm(name: string): HashAlgorithm {
  if ((HASH_ALGORITHMS as readonly string[]).includes(name)) return name as HashAlgorithm;
  throw new Error(`unknown hash algorithm '${name}' (expected one of ${HASH_ALGORITHMS.join(', ')})`);
}

export function algorithmFromNumber(n: number): HashAlgorithm {
  const found = HASH_ALGORITHMS.find((a) => ALGORITHM_NUMBER[a] === n);
  if (!found) throw new Error(`unsupported hash algorithm number ${n}`);
  return found;
}

/** Node's name of each algorithm; shake128 also needs its output length, which one-shot hash() cannot take. */
const NODE_NAME: Record<HashAlgorithm, string> = { sha1: 'sha1', rmd160: 'ripemd160', shake128: 'shake128' };

/** A streaming hasher for one algorithm, with the 20-byte output every supported algorithm has. */
export function createHasher(algorithm: HashAlgorithm) {
  return createHash(NODE_NAME[algorithm], algorithm === 'shake128' ? { outputLength: 20 } : undefined);
}

/**
 * The digest of bytes held whole. One-shot where Node has it (every small file of a publish is hashed
 * once, and a Hash object per object measured as much as the digest).
 */
export function digestOf(algorithm: HashAlgorithm, data: Uint8Array | string): Buffer {
  if (algorithm === 'shake128') return createHasher(algorithm).update(data).digest();
  return hash(NODE_NAME[algorithm], data, 'buffer');
}

/** A content digest: raw bytes plus the algorithm that made them. */
export class ContentHash {
  constructor(readonly algorithm: HashAlgorithm, readonly digest: Buffer) {
    if (digest.length !== 20) throw new Error(`a ${algorithm} digest has 20 bytes, got ${digest.length}`);
  }

  static of(algorithm: HashAlgorithm, data: Uint8Array | string): ContentHash {
    return new ContentHash(algorithm, digestOf(algorithm, data));
  }

  /** Parses `hex[-rmd160|-shake128]` with no object suffix. */
  static fromHex(text: string): ContentHash {
    const m = /^([0-9a-f]{40})(-rmd160|-shake128)?$/.exec(text);
    if (!m) throw new Error(`not a content hash: '${text}'`);
    const algorithm: HashAlgorithm = m[2] === '-rmd160' ? 'rmd160' : m[2] === '-shake128' ? 'shake128' : 'sha1';
    return new ContentHash(algorithm, Buffer.from(m[1]!, 'hex'));
  }

  /** Parses an object name `hex[-algo][suffix]` as used below data/. */
  static fromObjectName(name: string): { hash: ContentHash; suffix: ObjectSuffix } {
    const m = /^([0-9a-f]{40}(?:-rmd160|-shake128)?)([CHXPM]?)$/.exec(name);
    if (!m) throw new Error(`not an object name: '${name}'`);
    return { hash: ContentHash.fromHex(m[1]!), suffix: m[2] as ObjectSuffix };
  }

  /** Lowercase hex plus algorithm id, no suffix: the form of manifests, nested_catalogs.sha1, tags. */
  toHex(): string {
    return this.digest.toString('hex') + ID[this.algorithm];
  }

  /** `data/XX/rest[suffix]`, the object's key in the repository. */
  objectKey(suffix: ObjectSuffix = ''): string {
    const hex = this.toHex();
    return `data/${hex.slice(0, 2)}/${hex.slice(2)}${suffix}`;
  }

  equals(other: ContentHash): boolean {
    return this.algorithm === other.algorithm && this.digest.equals(other.digest);
  }

  toString(): string {
    return this.toHex();
  }
}
