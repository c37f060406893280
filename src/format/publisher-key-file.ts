// `<keys>/<name>.publisher`: a publisher's private key with its name and repository. Header lines, then
// the PEM, so `openssl rsa -in alice.publisher` reads it as it is (OpenSSL skips text before BEGIN).
import { createPrivateKey } from 'node:crypto';
import { publicKeyPemOf } from './keys.js';
import { assertPublisherName } from './publisher-policy.js';

export const PUBLISHER_KEY_FORMAT = 'scvmfs-publisher-key-1';

export interface PublisherKey {
  name: string;
  /** The repository the key was made for; the same key may be listed in other policies too. */
  fqrn: string;
  privateKeyPem: string;
  publicKeyPem: string;
}

export function serializePublisherKeyFile(key: { name: string; fqrn: string; privateKeyPem: string }): string {
  assertPublisherName(key.name);
  if (!/^[^\s]+$/.test(key.fqrn)) throw new Error(`invalid repository name ${JSON.stringify(key.fqrn)}`);
  return `# ${PUBLISHER_KEY_FORMAT}: private key of publisher '${key.name}'; keep it private\n` +
    `name: ${key.name}\nfqrn: ${key.fqrn}\n${key.privateKeyPem.trimEnd()}\n`;
}

export function parsePublisherKeyFile(text: string, where: string): PublisherKey {
  const begin = text.indexOf('-----BEGIN ');
  if (!text.startsWith(`# ${PUBLISHER_KEY_FORMAT}`) || begin < 0) {
    throw new Error(`${where} is not a publisher key file (${PUBLISHER_KEY_FORMAT})`);
  }
  const fields = new Map<string, string>();
  for (const line of text.slice(0, begin).split('\n')) {
    const m = /^([a-z]+): (.+)$/.exec(line);
    if (m) fields.set(m[1], m[2].trim());
  }
  const name = fields.get('name');
  const fqrn = fields.get('fqrn');
  if (!name || !fqrn) throw new Error(`${where} lacks its 'name:' or 'fqrn:' line`);
  assertPublisherName(name);
  const privateKeyPem = text.slice(begin);
  let publicKeyPem: string;
  try {
    if (createPrivateKey(privateKeyPem).asymmetricKeyType !== 'rsa') throw new Error('not an RSA key');
    publicKeyPem = publicKeyPemOf(privateKeyPem);
  } catch (e) {
    throw new Error(`${where} holds no readable RSA private key: ${(e as Error).message}`);
  }
  return { name, fqrn, privateKeyPem, publicKeyPem };
}
