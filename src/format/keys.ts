// Key material of a repository, as cvmfs_server keeps it in /etc/cvmfs/keys (spec §7.3).
import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { createSelfSignedCertificate } from './certificate.js';

export interface RepositoryKeys {
  /** `<fqrn>.masterkey`: signs the whitelist. PKCS#1 PEM when generated here; PKCS#8 loads as well. */
  masterKeyPem: string;
  /** `<fqrn>.pub`: SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), the form the client's PEM_read_PUBKEY loads. */
  masterPublicKeyPem: string;
  /** `<fqrn>.key`: signs the manifest. PKCS#1 PEM when generated here; PKCS#8 loads as well. */
  repositoryKeyPem: string;
  /** `<fqrn>.crt`: self-signed PEM certificate of the repository key. */
  certificatePem: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * RSA-2048, e = 65537. Private keys are written as PKCS#1 (`BEGIN RSA PRIVATE KEY`), the format of the
 * stock tools' `openssl genrsa` output and of the test vector, readable by every OpenSSL version the
 * server tools might use; node:crypto and OpenSSL's PEM_read_*PrivateKey read PKCS#8 too.
 */
export async function rsaKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  return generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
}

export async function generateRepositoryKeys(fqrn: string, now: Date = new Date()): Promise<RepositoryKeys> {
  const [master, repository] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);
  return {
    masterKeyPem: master.privateKey,
    masterPublicKeyPem: master.publicKey,
    repositoryKeyPem: repository.privateKey,
    certificatePem: await createSelfSignedCertificate(fqrn, repository.privateKey, now),
  };
}

/** The SPKI PEM public key of a private key, for a missing `.pub` or a consistency check. */
export function publicKeyPemOf(privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
}
