// The repository certificate (spec §7.2, §7.3): a self-signed X.509 certificate over the repository key.
import { createPrivateKey, createPublicKey, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';

/** Stock `create_cert` truncates long names so the subject stays readable. */
export function certificateCommonName(fqrn: string): string {
  const name = fqrn.length > 30 ? `${fqrn.slice(0, 30)}[...]` : fqrn;
  return `${name} CernVM-FS Release Managers`;
}

type X509Module = typeof import('@peculiar/x509');
let x509Loaded: Promise<X509Module> | undefined;

// Loaded on first use so that readers of manifests never pay for (or depend on) the x509/tsyringe stack.
function loadX509(): Promise<X509Module> {
  x509Loaded ??= (async () => {
    // tsyringe inside @peculiar/x509 throws at import time without a Reflect polyfill.
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return x509Loaded;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * A self-signed certificate for the repository key: CN as cvmfs_server's `create_cert`, valid 365 days
 * from `now`, signed sha256WithRSAEncryption (the OpenSSL default digest that `openssl x509 -req -signkey`
 * uses, and what the test vector's certificate carries). The client never checks its validity dates.
 * Returns PEM with a trailing newline.
 */
export async function createSelfSignedCertificate(fqrn: string, repositoryKeyPem: string, now: Date = new Date()): Promise<string> {
  if (fqrn === '') throw new Error('cannot create a certificate for an empty repository name');
  const privateKey = createPrivateKey(repositoryKeyPem);
  if (privateKey.asymmetricKeyType !== 'rsa') {
    throw new Error(`the repository key must be RSA (the client verifies with RSA/SHA-1), got ${privateKey.asymmetricKeyType}`);
  }
  const x509 = await loadX509();
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const subtle = webcrypto.subtle;
  // Node 20 has no KeyObject.toCryptoKey; go through DER.
  const keys = {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign']),
    publicKey: await subtle.importKey(
      'spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), algorithm, true, ['verify']),
  };
  const serial = randomBytes(8);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and without a leading zero byte, as DER INTEGER wants
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: [{ CN: [certificateCommonName(fqrn)] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + 365 * DAY_MS),
    signingAlgorithm: algorithm,
    keys: keys as unknown as CryptoKeyPair,
    // The library always writes a v3 extensions field, and RFC 5280 forbids an empty one.
    extensions: [await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as CryptoKey)],
  });
  const pem = cert.toString('pem').replace(/\r\n/g, '\n').trimEnd();
  return pem + '\n';
}

export function certificatePublicKey(certificatePem: string): KeyObject {
  try {
    return new X509Certificate(certificatePem).publicKey;
  } catch (e) {
    throw new Error(`not a PEM X.509 certificate: ${(e as Error).message}`);
  }
}

/** Throws unless the private key's public half is the certificate's public key. */
export function assertKeyMatchesCertificate(repositoryKeyPem: string, certificatePem: string): void {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(repositoryKeyPem);
  } catch (e) {
    throw new Error(`the repository key is not a readable PEM private key: ${(e as Error).message}`);
  }
  const fromKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const fromCert = certificatePublicKey(certificatePem).export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new Error(
      'the repository private key does not belong to the repository certificate (their public keys differ); '
      + 'manifests signed with it would fail verification on every client');
  }
}
