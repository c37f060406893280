// Nothing is signed on top of a head that fails the check against the configured trust anchor (design
// invariant 6): an attacker who can write `.cvmfspublished`, `.cvmfswhitelist` and `data/` but holds no
// key of ours is refused by every writer path, and so is an older, genuinely signed manifest put back.
// An expired whitelist is refused too, and one about to expire warns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys, type RepositoryKeys } from '../src/format/keys.js';
import { initRepository, putIfAbsent, readHead, MANIFEST_KEY, WHITELIST_KEY } from '../src/repo/repository.js';
import { HIGH_WATER_KEY } from '../src/repo/high-water.js';
import { resignWhitelist } from '../src/repo/whitelist-signing.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { ingestTarball } from '../src/publish/ingest-tarball.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { localInvoker } from '../src/runtime/invokers.js';
import { signManifest } from '../src/format/manifest.js';
import { certificateFingerprint, makeWhitelist, signWhitelist } from '../src/format/whitelist.js';
import { prepareObject } from '../src/format/zlib-object.js';
import { serializeSignedDocument, signDocument } from '../src/format/signed-document.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'trust.example.org';
const DAY = 24 * 3600 * 1000;

// Key generation is slow: one foreign key set for every attack.
const foreignKeys = generateRepositoryKeys(FQRN);

async function repository(name: string) {
  const work = tempDir(name);
  const storeDir = join(work, 'store');
  const store = new FsStore(storeDir);
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  const src = join(work, 'src');
  mkdirSync(join(src, 'w1'), { recursive: true });
  writeFileSync(join(src, 'top'), 'top\n');
  writeFileSync(join(src, 'w1', 'file'), 'w1\n');
  await publishDirectory(store, src, { fqrn: FQRN, keys, xattrs: null });
  await addPublisher(store, { keysDir, fqrn: FQRN, name: 'w1', paths: ['/w1'] });
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const manifest = () => readFileSync(join(storeDir, MANIFEST_KEY));
  const whitelist = () => readFileSync(join(storeDir, WHITELIST_KEY));
  return { work, storeDir, store, keysDir, keys, src, publisher, manifest, whitelist };
}
type Repo = Awaited<ReturnType<typeof repository>>;

/**
 * What someone with write access to the public files but none of our keys can do: sign a manifest of
 * their own with a foreign key and store its certificate. 'whitelist': also replace the whitelist with
 * one signed by a foreign master key that lists their certificate and ours (so our keys still "match");
 * 'certificate': keep our genuine whitelist.
 */
async function plantForeignHead(r: Repo, how: 'whitelist' | 'certificate'): Promise<Buffer> {
  const foreign = await foreignKeys;
  const head = (await readHead(r.store))!;
  const cert = prepareObject(head.algorithm, Buffer.from(foreign.certificatePem), 'X');
  await putIfAbsent(r.store, cert);
  const manifest = signManifest({ ...head.manifest, revision: head.manifest.revision + 5, certificate: cert.hash }, foreign.repositoryKeyPem);
  await r.store.put(MANIFEST_KEY, manifest);
  if (how === 'whitelist') {
    const w = makeWhitelist({ fqrn: FQRN, certificatePem: foreign.certificatePem, also: [{ fingerprint: certificateFingerprint(r.keys.certificatePem) }] });
    await r.store.put(WHITELIST_KEY, signWhitelist(w, foreign.masterKeyPem));
  }
  return manifest;
}

/** Every writer path, each expected to refuse; the manifest must stay the attacker's bytes. */
async function everyWriterRefuses(r: Repo, expect: RegExp, code: string, label: string): Promise<void> {
  const planted = r.manifest();
  const whitelist = r.whitelist();
  const refused = (err: unknown) => {
    const e = err as { code?: string; message: string };
    assert.match(e.message, expect, `${label}: message`);
    return e.code === undefined || e.code === code;
  };
  const isCode = (err: unknown) => (err as { code?: string }).code === code && refused(err);

  writeFileSync(join(r.src, 'top'), `changed ${label}\n`);
  await assert.rejects(publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null }), isCode, `${label}: owner publish`);
  assert.ok(r.manifest().equals(planted), `${label}: owner publish left the manifest alone`);

  await assert.rejects(ingestTarball(r.store, null, { fqrn: FQRN, keys: r.keys, deletePaths: ['/top'] }), isCode, `${label}: ingest`);
  assert.ok(r.manifest().equals(planted), `${label}: ingest left the manifest alone`);

  const fns = localInvoker({ env: { SCVMFS_STORE: r.storeDir, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: r.keysDir }, limits: { timeoutMs: 20_000, memoryMb: 256 } });
  try {
    writeFileSync(join(r.src, 'w1', 'file'), `changed ${label}\n`);
    await assert.rejects(publishThroughChain(r.store, join(r.src, 'w1'), { fqrn: FQRN, publisher: r.publisher, path: '/w1', functions: fns, xattrs: null }),
      refused, `${label}: commit chain`);
  } finally {
    await fns.close();
  }
  assert.ok(r.manifest().equals(planted), `${label}: the commit chain left the manifest alone`);

  await assert.rejects(resignWhitelist(r.store, FQRN, r.keys), isCode, `${label}: resign`);
  const cli = await runCli(['resign', FQRN, '--store', r.storeDir, '--keys', r.keysDir]);
  assert.equal(cli.code, 3, `${label}: CLI resign exit status (${cli.stderr})`);
  assert.match(cli.stderr, expect);
  assert.ok(r.manifest().equals(planted), `${label}: resign left the manifest alone`);
  assert.ok(r.whitelist().equals(whitelist), `${label}: resign signed no whitelist`);
}

test('a head signed by a foreign key, under a foreign-signed whitelist, is refused by every writer path', async () => {
  const r = await repository('foreign-whitelist');
  await plantForeignHead(r, 'whitelist');
  await everyWriterRefuses(r, /whitelist.*cannot be trusted: it is not signed by the master key/, 'untrusted-head', 'foreign whitelist');
});

test('a head signed by a foreign key under our own whitelist is refused by every writer path', async () => {
  const r = await repository('foreign-certificate');
  await plantForeignHead(r, 'certificate');
  await everyWriterRefuses(r, /names certificate .* which the whitelist signed by the master key does not list/, 'untrusted-head', 'foreign certificate');
});

test('an older, genuinely signed manifest put back is refused: the revision would go backwards', async () => {
  const r = await repository('replay');
  const old = r.manifest();
  writeFileSync(join(r.src, 'top'), 'revision 3\n');
  await publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null });
  assert.equal((await readHead(r.store))!.manifest.revision, 3);
  await r.store.put(MANIFEST_KEY, old);
  await everyWriterRefuses(r, /revision 2, but revision 3 .* was already published/, 'untrusted-head', 'replay');
});

test('a forged high-water record is refused, and a genuine one is raised by every commit', async () => {
  const r = await repository('high-water');
  const record = () => JSON.parse(readFileSync(join(r.storeDir, HIGH_WATER_KEY), 'utf8'));
  assert.equal(record().body.revision, 2);
  const fns = localInvoker({ env: { SCVMFS_STORE: r.storeDir, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: r.keysDir }, limits: { timeoutMs: 20_000, memoryMb: 256 } });
  try {
    writeFileSync(join(r.src, 'w1', 'file'), 'chain\n');
    const s = await publishThroughChain(r.store, join(r.src, 'w1'), { fqrn: FQRN, publisher: r.publisher, path: '/w1', functions: fns, xattrs: null });
    assert.equal(s.revision, 3);
  } finally {
    await fns.close();
  }
  assert.equal(record().body.revision, 3, 'the commit chain raised the record');

  const foreign = await foreignKeys;
  const head = (await readHead(r.store))!;
  const forged = signDocument('scvmfs-high-water', { fqrn: FQRN, revision: 2, root: head.manifest.rootCatalog.toHex(), publishedAt: 0 },
    foreign.repositoryKeyPem, head.manifest.certificate.toHex());
  await r.store.put(HIGH_WATER_KEY, serializeSignedDocument(forged));
  const before = r.manifest();
  await assert.rejects(publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null }),
    (e: Error & { code?: string }) => e.code === 'untrusted-head' && /high-water record .* signature that does not verify/.test(e.message));
  assert.ok(r.manifest().equals(before));
});

async function resignAt(r: Repo, keys: RepositoryKeys, createdAt: Date): Promise<void> {
  await r.store.put(WHITELIST_KEY, signWhitelist(makeWhitelist({ fqrn: FQRN, certificatePem: keys.certificatePem, now: createdAt }), keys.masterKeyPem));
}

test('an expired whitelist is refused by publish, ingest and the commit chain, saying to run scvmfs resign', async () => {
  const r = await repository('expired');
  await resignAt(r, r.keys, new Date(Date.now() - 40 * DAY));
  const before = r.manifest();
  const expired = (e: Error & { code?: string }) => e.code === 'whitelist-expired' && /expired on .*scvmfs resign trust\.example\.org/.test(e.message);
  writeFileSync(join(r.src, 'top'), 'late\n');
  await assert.rejects(publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null }), expired);
  await assert.rejects(ingestTarball(r.store, null, { fqrn: FQRN, keys: r.keys, deletePaths: ['/top'] }), expired);
  const cli = await runCli(['publish', FQRN, r.src, '--store', r.storeDir, '--keys', r.keysDir, '-q', '--no-cache']);
  assert.equal(cli.code, 3, cli.stderr);
  assert.match(cli.stderr, /whitelist of trust\.example\.org expired .* scvmfs resign/);
  const fns = localInvoker({ env: { SCVMFS_STORE: r.storeDir, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: r.keysDir }, limits: { timeoutMs: 20_000, memoryMb: 256 } });
  try {
    writeFileSync(join(r.src, 'w1', 'file'), 'late w1\n');
    await assert.rejects(publishThroughChain(r.store, join(r.src, 'w1'), { fqrn: FQRN, publisher: r.publisher, path: '/w1', functions: fns, xattrs: null }),
      /expired on .*scvmfs resign/);
  } finally {
    await fns.close();
  }
  assert.ok(r.manifest().equals(before));

  // resign is the repair: it works on an expired whitelist, and then publishing does again.
  await resignWhitelist(r.store, FQRN, r.keys);
  const s = await publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null });
  assert.equal(s.revision, 3);
});

test('publish and ingest warn when fewer than 7 days of whitelist validity remain', async () => {
  const r = await repository('expiring');
  await resignAt(r, r.keys, new Date(Date.now() - 27 * DAY));
  const warnings: string[] = [];
  writeFileSync(join(r.src, 'top'), 'soon\n');
  const s = await publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null, onWarning: (m) => warnings.push(m) });
  assert.equal(s.revision, 3);
  await ingestTarball(r.store, null, { fqrn: FQRN, keys: r.keys, deletePaths: ['/top'], onWarning: (m) => warnings.push(m) });
  const expiring = warnings.filter((w) => /whitelist of trust\.example\.org expires on .* \(in 3\.0 days\).*scvmfs resign/.test(w));
  assert.equal(expiring.length, 2, warnings.join('\n'));
  const cli = await runCli(['publish', FQRN, r.src, '--store', r.storeDir, '--keys', r.keysDir, '-q', '--no-cache']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stderr, /warning: the whitelist of trust\.example\.org expires on/);

  // Far from expiry, no such warning.
  await resignWhitelist(r.store, FQRN, r.keys);
  const quiet: string[] = [];
  writeFileSync(join(r.src, 'top'), 'fresh\n');
  await publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null, onWarning: (m) => quiet.push(m) });
  assert.deepEqual(quiet.filter((w) => /whitelist/.test(w)), []);
});

test('resign refuses a foreign master key or a certificate the whitelist does not list, and signs nothing', async () => {
  const r = await repository('resign-keys');
  const foreign = await foreignKeys;
  const before = r.whitelist();
  await assert.rejects(resignWhitelist(r.store, FQRN, { ...r.keys, masterKeyPem: foreign.masterKeyPem }),
    (e: Error & { code?: string }) => e.code === 'foreign-master-key' && /not the one whose public key/.test(e.message));
  await assert.rejects(resignWhitelist(r.store, FQRN, { masterKeyPem: foreign.masterKeyPem, certificatePem: r.keys.certificatePem }),
    (e: Error & { code?: string }) => e.code === 'untrusted-head' && /not signed by the master key/.test(e.message));
  await assert.rejects(resignWhitelist(r.store, FQRN, { ...r.keys, certificatePem: foreign.certificatePem }),
    (e: Error & { code?: string }) => e.code === 'foreign-certificate' && /not one the current whitelist .* lists.*rotate-key/.test(e.message));
  assert.ok(r.whitelist().equals(before));

  // Through the CLI: a keys directory whose certificate is foreign.
  writeFileSync(join(r.keysDir, `${FQRN}.crt`), foreign.certificatePem);
  writeFileSync(join(r.keysDir, `${FQRN}.key`), foreign.repositoryKeyPem);
  const cli = await runCli(['resign', FQRN, '--store', r.storeDir, '--keys', r.keysDir]);
  assert.equal(cli.code, 3, cli.stderr);
  assert.match(cli.stderr, /is not one the current whitelist/);
  assert.ok(r.whitelist().equals(before));
  const reader = await RepositoryReader.open(r.store, { fqrn: FQRN, publicKeys: [r.keys.masterPublicKeyPem] });
  await verifyRepository(reader);
  reader.close();
});

test('init replaces a high-water record left by an earlier repository in the same place', async () => {
  const r = await repository('reinit');
  writeFileSync(join(r.src, 'top'), 'revision 3\n');
  await publishDirectory(r.store, r.src, { fqrn: FQRN, keys: r.keys, xattrs: null });
  const { rmSync } = await import('node:fs');
  for (const f of [MANIFEST_KEY, WHITELIST_KEY]) rmSync(join(r.storeDir, f));
  const keys = await generateRepositoryKeys(FQRN);
  await initRepository(r.store, { fqrn: FQRN, keys });
  const s = await publishDirectory(r.store, r.src, { fqrn: FQRN, keys, xattrs: null });
  assert.equal(s.revision, 2);
});
