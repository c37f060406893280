import { TEST_SOURCE_DIR } from './helpers.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentHash } from '../src/format/hash.js';
import {
  parseManifest, ROOT_PATH_HASH, serializeManifestBody, signManifest, verifyManifestSignature, type Manifest,
} from '../src/format/manifest.js';
import {
  buildWhitelistBody, certificateFingerprint, isWhitelistExpired, makeWhitelist, parseWhitelist, signWhitelist,
  verifyWhitelistSignature, whitelistListsCertificate, type Whitelist,
} from '../src/format/whitelist.js';
import { assertKeyMatchesCertificate, certificateCommonName, certificatePublicKey } from '../src/format/certificate.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { keyFilePaths, loadKeys, loadOrCreateKeys, writeKeys } from '../src/repo/keys-dir.js';

const TESTDATA = join(TEST_SOURCE_DIR, 'fixtures');
const VECTOR = join(TESTDATA, 'legacy_aufs_repo_21');
const FQRN = 'legacy_aufs.cern.ch';

const work = mkdtempSync(join(tmpdir(), 'scvmfs-signing-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
execFileSync('tar', ['xzf', join(VECTOR, 'legacy_aufs_repo.tar.gz'), '-C', work]);
execFileSync('tar', ['xzf', join(VECTOR, 'keys.tar.gz'), '-C', work]);
const repoDir = join(work, 'srv/cvmfs', FQRN);
const keyFile = (suffix: string) => readFileSync(join(work, 'etc/cvmfs/keys', `${FQRN}.${suffix}`), 'utf8');

const manifestBytes = readFileSync(join(repoDir, '.cvmfspublished'));
const whitelistBytes = readFileSync(join(repoDir, '.cvmfswhitelist'));
const vectorCrt = keyFile('crt');
const vectorKey = keyFile('key');
const vectorMasterKey = keyFile('masterkey');
const vectorPub = keyFile('pub');

// One generated key set for the tests that need foreign or fresh keys (RSA generation is slow).
const fresh = generateRepositoryKeys('fresh.example.org', new Date(Date.UTC(2024, 0, 2, 3, 4, 5)));

test('vector manifest: fields, body hash and signature', () => {
  const signed = parseManifest(manifestBytes);
  const m = signed.manifest;
  assert.equal(m.revision, 2);
  assert.equal(m.publishedAt, 1445428515);
  assert.equal(m.fqrn, FQRN);
  assert.equal(m.rootCatalog.toHex(), '6ed3d49a5c64f21f36936ab350d49aaf57585b9a');
  assert.equal(m.rootCatalogSize, 14336);
  assert.equal(m.rootPathHash, 'd41d8cd98f00b204e9800998ecf8427e');
  assert.equal(m.ttl, 900);
  assert.equal(m.garbageCollectable, false);
  assert.equal(m.alternativeName, undefined);
  assert.equal(m.certificate.toHex(), '65133968f581abad1e75489c92a634e44929cbd7');
  assert.equal(m.history?.toHex(), '365d5083b27d67e2caeff6d66e5fe3f2d104a6bd');
  assert.equal(m.metainfo, undefined);
  assert.equal(m.reflog, undefined);
  assert.equal(signed.bodyHash, 'a7c0345bd49103a80f2341c0319e020d1acf454b');
  assert.equal(createHash('sha1').update(signed.body).digest('hex'), 'a7c0345bd49103a80f2341c0319e020d1acf454b');
  assert.equal(signed.signature.length, 256);
  assert.equal(verifyManifestSignature(signed, vectorCrt), true);
});

test('vector manifest: re-serializing and re-signing reproduce the file byte for byte', () => {
  const signed = parseManifest(manifestBytes);
  assert.deepEqual(serializeManifestBody(signed.manifest), signed.body);
  assert.deepEqual(signManifest(signed.manifest, vectorKey), manifestBytes);
  // The same key as PKCS#8 must load and give the same (deterministic PKCS#1 v1.5) signature.
  const pkcs8 = createPrivateKey(vectorKey).export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.match(pkcs8, /BEGIN PRIVATE KEY/);
  assert.deepEqual(signManifest(signed.manifest, pkcs8), manifestBytes);
});

test('manifest: tampering, a wrong certificate and a trailing newline fail verification', async () => {
  const signed = parseManifest(manifestBytes);
  const at = manifestBytes.indexOf('\nS2\n') + 2;
  const tampered = Buffer.from(manifestBytes);
  tampered[at] = '3'.charCodeAt(0);
  assert.equal(verifyManifestSignature(parseManifest(tampered), vectorCrt), false);

  // A forger who also fixes the hash line still lacks the signature.
  const body = Buffer.from(signed.body);
  body[at] = '3'.charCodeAt(0);
  const rehashed = Buffer.concat([body, Buffer.from(`--\n${createHash('sha1').update(body).digest('hex')}\n`), signed.signature]);
  assert.equal(verifyManifestSignature(parseManifest(rehashed), vectorCrt), false);

  assert.equal(verifyManifestSignature(signed, (await fresh).certificatePem), false);
  const trailing = Buffer.concat([manifestBytes, Buffer.from('\n')]);
  assert.equal(verifyManifestSignature(parseManifest(trailing), vectorCrt), false);
});

test('manifest: malformed input gives clear errors', () => {
  const text = manifestBytes.toString('latin1');
  const without = (key: string) => Buffer.from(text.replace(new RegExp(`^${key}[^\\n]*\\n`, 'm'), ''), 'latin1');
  for (const key of ['C', 'R', 'N', 'S', 'X', 'D', 'T']) {
    assert.throws(() => parseManifest(without(key)), new RegExp(`missing required ${key} line`));
  }
  assert.throws(() => parseManifest(Buffer.from(text.replace('\n--\n', '\n-X\n'), 'latin1')), /no '--' separator/);
  assert.throws(() => parseManifest(Buffer.from(text.replace('Rd41d8', 'Rd41d9'), 'latin1')), /R: must be md5/);
  assert.throws(() => parseManifest(Buffer.from(text.replace('C6ed3d49a', 'C6ed3d49'), 'latin1')), /manifest C: not a content hash/);
  assert.throws(() => parseManifest(Buffer.from(text.replace('S2\n', 'Stwo\n'), 'latin1')), /manifest S: not a decimal number/);
  assert.throws(() => parseManifest(Buffer.from(text.replace('Gno', 'Gmaybe'), 'latin1')), /manifest G: expected 'yes' or 'no'/);
  const cut = manifestBytes.indexOf('\n--\n') + 4;
  assert.throws(() => parseManifest(manifestBytes.subarray(0, cut + 10)), /no complete hash line/);
  assert.throws(() => parseManifest(manifestBytes.subarray(0, cut + 41)), /empty signature/);
  assert.throws(() => parseManifest(Buffer.concat([manifestBytes.subarray(0, cut), Buffer.from('nothex\nsig')])), /not a body hash/);
});

test('vector whitelist: parse, verify, re-sign byte for byte, fingerprint listed', () => {
  const signed = parseWhitelist(whitelistBytes);
  const w = signed.whitelist;
  assert.equal(w.fqrn, FQRN);
  assert.equal(w.createdAt.toISOString(), '2015-10-21T11:55:13.000Z');
  assert.equal(w.expiresAt.toISOString(), '2015-11-20T11:55:13.000Z');
  assert.deepEqual(w.fingerprints, ['93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15']);
  assert.equal(signed.bodyHash, '929b0716d322e6b740352c7e67da1058454cc4d2');
  assert.equal(verifyWhitelistSignature(signed, [vectorPub]), true);
  assert.deepEqual(buildWhitelistBody(w), signed.body);
  assert.deepEqual(signWhitelist(w, vectorMasterKey), whitelistBytes);
  assert.equal(certificateFingerprint(vectorCrt), '93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15');
  assert.ok(w.fingerprints.includes(certificateFingerprint(vectorCrt)));
  assert.equal(whitelistListsCertificate(w, vectorCrt), true);
});

test('whitelist expiry is hour-granular', async () => {
  const w = parseWhitelist(whitelistBytes).whitelist;
  assert.equal(isWhitelistExpired(w, new Date()), true);
  assert.equal(isWhitelistExpired(w, new Date(Date.UTC(2015, 10, 1))), false);
  assert.equal(isWhitelistExpired(w, new Date(Date.UTC(2015, 10, 20, 10, 59, 59))), false);
  assert.equal(isWhitelistExpired(w, new Date(Date.UTC(2015, 10, 20, 11, 0, 0))), true);
  const edge: Whitelist = { ...w, expiresAt: new Date(Date.UTC(2030, 0, 1, 12, 34, 56)) };
  assert.equal(isWhitelistExpired(edge, new Date(Date.UTC(2030, 0, 1, 11, 59, 59, 999))), false);
  assert.equal(isWhitelistExpired(edge, new Date(Date.UTC(2030, 0, 1, 12, 0, 0))), true);
  assert.equal(isWhitelistExpired(edge, new Date(Date.UTC(2030, 0, 1, 12, 33))), true);
});

test('whitelist: wrong master key, tampering and a trailing newline fail; malformed input is rejected', async () => {
  const signed = parseWhitelist(whitelistBytes);
  const keys = await fresh;
  assert.equal(verifyWhitelistSignature(signed, [keys.masterPublicKeyPem]), false);
  assert.equal(verifyWhitelistSignature(signed, [keys.masterPublicKeyPem, vectorPub]), true, 'any listed key may match');
  const resignedByOther = parseWhitelist(signWhitelist(signed.whitelist, keys.masterKeyPem));
  assert.equal(verifyWhitelistSignature(resignedByOther, [vectorPub]), false);
  const trailing = Buffer.concat([whitelistBytes, Buffer.from('\n')]);
  assert.equal(verifyWhitelistSignature(parseWhitelist(trailing), [vectorPub]), false);
  const tampered = Buffer.from(whitelistBytes);
  tampered[whitelistBytes.indexOf('E2015') + 4] = '6'.charCodeAt(0); // push expiry a year out
  assert.equal(verifyWhitelistSignature(parseWhitelist(tampered), [vectorPub]), false);

  const text = whitelistBytes.toString('latin1');
  assert.throws(() => parseWhitelist(Buffer.from(text.replace('20151021115513\n', '2015102111551\n'), 'latin1')), /line 1/);
  assert.throws(() => parseWhitelist(Buffer.from(text.replace('E20151120', 'X20151120'), 'latin1')), /line 2/);
  assert.throws(() => parseWhitelist(Buffer.from(text.replace('E20151120', 'E20151320'), 'latin1')), /not a valid date/);
  assert.throws(() => parseWhitelist(Buffer.from(text.replace('\n--\n', '\n-\n'), 'latin1')), /no '--' separator/);
  assert.throws(() => buildWhitelistBody({ ...signed.whitelist, fingerprints: ['93:ab'] }), /malformed fingerprint/);
});

test('generated keys: formats, certificate subject, sign and verify round trips', async () => {
  const keys = await fresh;
  assert.match(keys.masterPublicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
  assert.match(keys.masterKeyPem, /^-----BEGIN RSA PRIVATE KEY-----\n/);
  assert.match(keys.repositoryKeyPem, /^-----BEGIN RSA PRIVATE KEY-----\n/);
  assert.match(keys.certificatePem, /^-----BEGIN CERTIFICATE-----\n[\s\S]*-----END CERTIFICATE-----\n$/);
  for (const pem of [keys.masterKeyPem, keys.repositoryKeyPem]) {
    const k = createPrivateKey(pem);
    assert.equal(k.asymmetricKeyDetails?.modulusLength, 2048);
    assert.equal(k.asymmetricKeyDetails?.publicExponent, 65537n);
  }
  const cert = new X509Certificate(keys.certificatePem);
  assert.equal(cert.subject, 'CN=fresh.example.org CernVM-FS Release Managers');
  assert.equal(cert.issuer, cert.subject);
  assert.equal(cert.verify(cert.publicKey), true, 'self-signed');
  assert.equal(new Date(cert.validFrom).toISOString(), '2024-01-02T03:04:05.000Z');
  assert.equal(new Date(cert.validTo).toISOString(), '2025-01-01T03:04:05.000Z'); // 365 days, in a leap year
  assert.equal(certificateCommonName('a'.repeat(31)), `${'a'.repeat(30)}[...] CernVM-FS Release Managers`);
  assert.equal(certificateCommonName('a'.repeat(30)), `${'a'.repeat(30)} CernVM-FS Release Managers`);
  assertKeyMatchesCertificate(keys.repositoryKeyPem, keys.certificatePem);
  assert.throws(() => assertKeyMatchesCertificate(vectorKey, keys.certificatePem), /does not belong to the repository certificate/);
  assert.throws(() => assertKeyMatchesCertificate(keys.masterKeyPem, keys.certificatePem), /does not belong/);
  assert.equal(certificatePublicKey(keys.certificatePem).asymmetricKeyType, 'rsa');

  for (const algorithm of ['sha1', 'shake128'] as const) {
    const manifest: Manifest = {
      rootCatalog: ContentHash.of(algorithm, 'root'),
      rootCatalogSize: 4096,
      rootPathHash: ROOT_PATH_HASH,
      ttl: 240,
      revision: 7,
      garbageCollectable: true,
      alternativeName: false,
      fqrn: 'fresh.example.org',
      certificate: ContentHash.of(algorithm, 'cert'),
      history: ContentHash.of(algorithm, 'history'),
      publishedAt: 1700000000,
      metainfo: ContentHash.of(algorithm, 'meta'),
      reflog: ContentHash.of(algorithm, 'reflog'),
    };
    const bytes = signManifest(manifest, keys.repositoryKeyPem);
    const parsed = parseManifest(bytes);
    assert.deepEqual(parsed.manifest, manifest);
    assert.equal(parsed.bodyHash, ContentHash.of(algorithm, parsed.body).toHex());
    assert.deepEqual(parsed.body.toString().split('\n').map((l) => l[0]).join(''), 'CBRDSGANXHTMY');
    assert.equal(verifyManifestSignature(parsed, keys.certificatePem), true);
    assert.equal(verifyManifestSignature(parsed, vectorCrt), false);

    const w = makeWhitelist({
      fqrn: 'fresh.example.org', certificatePem: keys.certificatePem, algorithm,
      now: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)),
    });
    assert.equal(w.expiresAt.toISOString(), '2024-02-01T03:04:05.000Z');
    const wbytes = signWhitelist(w, keys.masterKeyPem, algorithm);
    const wparsed = parseWhitelist(wbytes);
    assert.deepEqual(wparsed.whitelist, w);
    assert.equal(verifyWhitelistSignature(wparsed, [keys.masterPublicKeyPem]), true);
    assert.equal(whitelistListsCertificate(wparsed.whitelist, keys.certificatePem), true);
    assert.equal(whitelistListsCertificate(wparsed.whitelist, vectorCrt), false);
  }
  assert.match(certificateFingerprint(keys.certificatePem, 'shake128'), /^([0-9A-F]{2}:){19}[0-9A-F]{2}-SHAKE128$/);
  assert.throws(() => makeWhitelist({ fqrn: 'x', certificatePem: keys.certificatePem, validityDays: 31 }), /at most 30 days/);
});

test('keys directory: write/load round trip, no overwrite, partial sets refused', async () => {
  const keys = await fresh;
  const dir = join(work, 'keys-a');
  await writeKeys(dir, 'fresh.example.org', keys);
  const paths = keyFilePaths(dir, 'fresh.example.org');
  assert.equal(statSync(paths.masterKeyPem).mode & 0o777, 0o600);
  assert.equal(statSync(paths.repositoryKeyPem).mode & 0o777, 0o600);
  assert.equal(readFileSync(paths.masterPublicKeyPem, 'utf8'), keys.masterPublicKeyPem);
  assert.ok(paths.certificatePem.endsWith('/fresh.example.org.crt'));
  assert.deepEqual(await loadKeys(dir, 'fresh.example.org', { need: ['master', 'repository'] }), keys);
  await assert.rejects(writeKeys(dir, 'fresh.example.org', keys), /refusing to overwrite existing key files/);
  await writeKeys(dir, 'fresh.example.org', keys, { overwrite: true });
  assert.deepEqual((await loadOrCreateKeys(dir, 'fresh.example.org')), { keys, created: false });

  unlinkSync(paths.certificatePem);
  await assert.rejects(loadKeys(dir, 'fresh.example.org', { need: ['repository'] }), /missing certificate file .*fresh\.example\.org\.crt/);
  const masterOnly = await loadKeys(dir, 'fresh.example.org', { need: ['master'] });
  assert.equal(masterOnly.masterKeyPem, keys.masterKeyPem);
  await assert.rejects(loadOrCreateKeys(dir, 'fresh.example.org'), /incomplete key set .*missing .*fresh\.example\.org\.crt/);

  // A certificate of another key is caught when loading, not when clients fail to verify.
  writeFileSync(paths.certificatePem, vectorCrt);
  await assert.rejects(loadKeys(dir, 'fresh.example.org', { need: ['repository'] }), /does not belong/);
  unlinkSync(paths.masterPublicKeyPem);
  const derived = await loadKeys(dir, 'fresh.example.org', { need: ['master'] });
  assert.equal(derived.masterPublicKeyPem, keys.masterPublicKeyPem);
  unlinkSync(paths.masterKeyPem);
  await assert.rejects(loadKeys(dir, 'fresh.example.org', { need: ['master'] }), /missing master key file .*fresh\.example\.org\.masterkey/);
});

test('keys directory: loadOrCreateKeys creates a full set once, then reuses it', async () => {
  const dir = join(work, 'keys-b');
  const first = await loadOrCreateKeys(dir, 'new.example.org');
  assert.equal(first.created, true);
  const second = await loadOrCreateKeys(dir, 'new.example.org');
  assert.equal(second.created, false);
  assert.deepEqual(second.keys, first.keys);
  assertKeyMatchesCertificate(second.keys.repositoryKeyPem, second.keys.certificatePem);
  // A vector key set copied in as PKCS#1 files loads too.
  const vdir = join(work, 'keys-vector');
  await writeKeys(vdir, FQRN, { masterKeyPem: vectorMasterKey, masterPublicKeyPem: vectorPub, repositoryKeyPem: vectorKey, certificatePem: vectorCrt });
  const loaded = await loadOrCreateKeys(vdir, FQRN);
  assert.equal(loaded.created, false);
  assert.deepEqual(signManifest(parseManifest(manifestBytes).manifest, loaded.keys.repositoryKeyPem), manifestBytes);
});
