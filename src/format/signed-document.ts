// A JSON document signed with an RSA key: the publisher policy (master key), lease requests and
// changesets (publisher keys). The envelope carries the body as JSON; the signature covers canonical
// bytes (below), so re-serialising the envelope (pretty-printing, key order) never breaks it.
import { RefusedError } from '../errors.js';
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const SIGNED_DOCUMENT_FORMAT = 'scvmfs-signed-document-1';

/** `type` and `keyId` are signed with the body: a lease request cannot pass for a changeset. */
export interface SignedDocument<T = unknown> {
  format: typeof SIGNED_DOCUMENT_FORMAT;
  /** What the body is, e.g. 'scvmfs-publisher-policy', 'scvmfs-lease-request'. */
  type: string;
  /** Names the key that signed: a publisher name, or the master key's fingerprint. */
  keyId: string;
  body: T;
  /** base64 RSA PKCS#1 v1.5 signature, SHA-256, over signedBytes(type, keyId, body). */
  signature: string;
}

export class SignedDocumentError extends RefusedError {
  constructor(message: string) {
    super('bad-signed-document', message);
    this.name = 'SignedDocumentError';
  }
}

const TYPE_RE = /^[a-z][a-z0-9-]{0,63}$/;
const KEY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MIN_RSA_BITS = 2048;

/**
 * JSON with object keys sorted (by UTF-16 code units, as RFC 8785), no whitespace, numbers and strings
 * as JSON.stringify writes them. Refuses what JSON cannot carry faithfully, rather than dropping it.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown, where: string, depth: number): void => {
    if (depth > 64) throw new SignedDocumentError(`${where}: nested deeper than 64 levels`);
    if (v === null || typeof v === 'boolean' || typeof v === 'string') {
      out.push(JSON.stringify(v));
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new SignedDocumentError(`${where}: ${v} is not a JSON number`);
      out.push(JSON.stringify(v));
    } else if (Array.isArray(v)) {
      out.push('[');
      v.forEach((item, i) => { if (i > 0) out.push(','); walk(item, `${where}[${i}]`, depth + 1); });
      out.push(']');
    } else if (typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
      out.push('{');
      Object.keys(v as object).sort().forEach((k, i) => {
        if (i > 0) out.push(',');
        out.push(JSON.stringify(k), ':');
        walk((v as Record<string, unknown>)[k], `${where}.${k}`, depth + 1);
      });
      out.push('}');
    } else {
      throw new SignedDocumentError(`${where}: a ${typeof v === 'object' ? 'non-plain object' : typeof v} cannot be signed as JSON`);
    }
  };
  walk(value, 'body', 0);
  return out.join('');
}

/** What the signature covers: a version line, the type, the key id and the canonical body. */
export function signedBytes(type: string, keyId: string, body: unknown): Buffer {
  return Buffer.from(`${SIGNED_DOCUMENT_FORMAT}\n${type}\n${keyId}\n${canonicalJson(body)}`, 'utf8');
}

function rsaKey(pem: string | KeyObject, kind: 'private' | 'public', what: string): KeyObject {
  let key: KeyObject;
  try {
    key = typeof pem !== 'string' ? pem : kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (e) {
    throw new SignedDocumentError(`${what} is not a readable PEM ${kind} key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new SignedDocumentError(`${what} is a ${key.asymmetricKeyType ?? key.type} key; an RSA key is needed`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new SignedDocumentError(`${what} has ${bits} bits; at least ${MIN_RSA_BITS} are needed`);
  return key;
}

function checkLabels(type: string, keyId: string): void {
  if (typeof type !== 'string' || !TYPE_RE.test(type)) throw new SignedDocumentError(`invalid document type ${JSON.stringify(type)}`);
  if (typeof keyId !== 'string' || !KEY_ID_RE.test(keyId)) throw new SignedDocumentError(`invalid key id ${JSON.stringify(keyId)}`);
}

export function signDocument<T>(type: string, body: T, privateKeyPem: string | KeyObject, keyId: string): SignedDocument<T> {
  checkLabels(type, keyId);
  const signature = sign('sha256', signedBytes(type, keyId, body), rsaKey(privateKeyPem, 'private', 'the signing key'));
  return { format: SIGNED_DOCUMENT_FORMAT, type, keyId, body, signature: signature.toString('base64') };
}

/** Pretty JSON with a final newline: signed documents are small and people read them. */
export function serializeSignedDocument(doc: SignedDocument): Buffer {
  return Buffer.from(JSON.stringify(doc, null, 2) + '\n', 'utf8');
}

/**
 * Checks the envelope's shape (not the signature) and that it is of `expectedType`. Accepts bytes, a
 * string or an already-parsed value (a handler's event).
 */
export function parseSignedDocument(input: Uint8Array | string | unknown, expectedType: string): SignedDocument<unknown> {
  let value: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new SignedDocumentError(`signed ${expectedType} is not JSON: ${(e as Error).message}`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SignedDocumentError(`signed ${expectedType} must be a JSON object`);
  }
  const d = value as Record<string, unknown>;
  if (d.format !== SIGNED_DOCUMENT_FORMAT) {
    throw new SignedDocumentError(`signed ${expectedType} has format ${JSON.stringify(d.format)}, expected '${SIGNED_DOCUMENT_FORMAT}'`);
  }
  if (d.type !== expectedType) throw new SignedDocumentError(`expected a signed '${expectedType}', got a signed ${JSON.stringify(d.type)}`);
  checkLabels(d.type as string, d.keyId as string);
  if (typeof d.signature !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(d.signature)) {
    throw new SignedDocumentError(`signed ${expectedType} has no base64 signature`);
  }
  if (!('body' in d)) throw new SignedDocumentError(`signed ${expectedType} has no body`);
  const extra = Object.keys(d).filter((k) => !['format', 'type', 'keyId', 'body', 'signature'].includes(k));
  if (extra.length > 0) throw new SignedDocumentError(`signed ${expectedType} has unknown fields: ${extra.join(', ')}`);
  return d as unknown as SignedDocument<unknown>;
}

/** True when `doc`'s signature verifies with `publicKeyPem` (any shape problem of the body throws). */
export function verifySignedDocument(doc: SignedDocument, publicKeyPem: string | KeyObject): boolean {
  const key = rsaKey(publicKeyPem, 'public', 'the verification key');
  return verify('sha256', signedBytes(doc.type, doc.keyId, doc.body), key, Buffer.from(doc.signature, 'base64'));
}

/**
 * Parses, looks up the key by the document's key id and verifies. `keyFor` returns the public key PEM
 * for a key id, or undefined when that key is unknown. Throws SignedDocumentError on any failure.
 */
export function openSignedDocument(
  input: Uint8Array | string | unknown, expectedType: string, keyFor: (keyId: string) => string | KeyObject | undefined,
): { body: unknown; keyId: string; document: SignedDocument } {
  const doc = parseSignedDocument(input, expectedType);
  const key = keyFor(doc.keyId);
  if (key === undefined) throw new SignedDocumentError(`signed ${expectedType} is signed by unknown key '${doc.keyId}'`);
  if (!verifySignedDocument(doc, key)) {
    throw new SignedDocumentError(`signature of the ${expectedType} does not verify with the key of '${doc.keyId}' (forged or altered)`);
  }
  return { body: doc.body, keyId: doc.keyId, document: doc };
}

/** SHA-256 of the SubjectPublicKeyInfo DER, 'SHA256:' + hex: stable across PEM flavours of one key. */
export function publicKeyFingerprint(publicKeyPem: string | KeyObject): string {
  let key: KeyObject;
  try {
    key = typeof publicKeyPem === 'string' ? createPublicKey(publicKeyPem) : publicKeyPem;
  } catch (e) {
    throw new SignedDocumentError(`not a readable PEM public key: ${(e as Error).message}`);
  }
  const der = key.export({ type: 'spki', format: 'der' });
  return 'SHA256:' + createHash('sha256').update(der).digest('hex');
}
