// Rotating the repository key: every revision verifies with our reader before, during and after the
// overlap; the next manifest names the new certificate (stored before it is named); the local commit
// function picks up the new key from its keys directory; a function still holding the old key keeps
// working during the overlap; the old certificate leaves at the first resign after the overlap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, runCli, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { loadKeys } from '../src/repo/keys-dir.js';
import { readHead, WHITELIST_KEY } from '../src/repo/repository.js';
import { resignWhitelist } from '../src/repo/whitelist-signing.js';
import { rotateRepositoryKey } from '../src/repo/rotate-key.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { localInvoker } from '../src/runtime/invokers.js';
import { fetchObjectContent } from '../src/repo/objects.js';
import { certificateFingerprint, parseWhitelist } from '../src/format/whitelist.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'rotate.example.org';
const HOUR = 3600 * 1000;

test('rotate-key: every revision verifies before, during and after the overlap, and the old certificate then leaves', async () => {
  const work = tempDir('rotate');
  const storeDir = join(work, 'store');
  const keysDir = join(work, 'keys');
  const src = join(work, 'src');
  mkdirSync(join(src, 'w1'), { recursive: true });
  writeFileSync(join(src, 'top'), 'before\n');
  writeFileSync(join(src, 'w1', 'file'), 'w1 before\n');
  await cliOk(['init', FQRN, '--store', storeDir, '--keys', keysDir]);
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  const store = new FsStore(storeDir);
  await addPublisher(store, { keysDir, fqrn: FQRN, name: 'w1', paths: ['/w1'] });
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const pub = readFileSync(join(keysDir, `${FQRN}.pub`), 'utf8');
  const oldCrt = readFileSync(join(keysDir, `${FQRN}.crt`), 'utf8');
  // A function sandbox that has not picked up the new key yet (e.g. a warm Lambda before its refresh).
  const staleKeysDir = join(work, 'stale-keys');
  cpSync(keysDir, staleKeysDir, { recursive: true });

  const verified: number[] = [];
  const verifyNow = async () => {
    const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [pub] });
    try {
      await verifyRepository(reader);
      verified.push(reader.manifest.revision);
      return reader.manifest;
    } finally {
      reader.close();
    }
  };
  const namedCertificate = async () => {
    const head = (await readHead(store))!;
    return (await fetchObjectContent(store, head.manifest.certificate, 'X')).toString('utf8');
  };
  const listed = () => parseWhitelist(readFileSync(join(storeDir, WHITELIST_KEY))).whitelist;
  const chain = async (dir: string, content: string) => {
    writeFileSync(join(src, 'w1', 'file'), content);
    const fns = localInvoker({ env: { SCVMFS_STORE: storeDir, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: dir }, limits: { timeoutMs: 20_000, memoryMb: 256 } });
    try {
      return await publishThroughChain(store, join(src, 'w1'), { fqrn: FQRN, publisher, path: '/w1', functions: fns, xattrs: null });
    } finally {
      await fns.close();
    }
  };

  await verifyNow(); // revision 2, before the rotation

  const rotated = await cliOk(['rotate-key', FQRN, '--store', storeDir, '--keys', keysDir, '--overlap', '2h']);
  assert.match(rotated.stdout, /rotated the repository key of rotate\.example\.org: new certificate [0-9A-F:]+/);
  const newCrt = readFileSync(join(keysDir, `${FQRN}.crt`), 'utf8');
  assert.notEqual(newCrt, oldCrt);
  const retired = /old key kept as (\S+) and (\S+)/.exec(rotated.stdout)!;
  assert.ok(existsSync(retired[1]!) && readFileSync(retired[2]!, 'utf8') === oldCrt, 'the old pair is kept under a retired name');
  await loadKeys(keysDir, FQRN, { need: ['master', 'repository', 'anchor'] });
  const during = listed();
  assert.deepEqual(during.fingerprints, [certificateFingerprint(newCrt), certificateFingerprint(oldCrt)]);
  assert.equal(during.retiring?.[0]?.fingerprint, certificateFingerprint(oldCrt));
  const overlapEnd = during.retiring![0]!.until;
  assert.ok(Math.abs(overlapEnd.getTime() - Date.now() - 2 * HOUR) < 60_000, 'the overlap ends in two hours');

  assert.equal((await verifyNow()).revision, 2, 'the head signed with the old key still verifies during the overlap');
  assert.equal(await namedCertificate(), oldCrt);

  // The owner's next publish signs with the new key, and its manifest names the new certificate.
  writeFileSync(join(src, 'top'), 'after\n');
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  assert.equal((await verifyNow()).revision, 3);
  assert.equal(await namedCertificate(), newCrt);

  // The local commit function reads its keys directory on every invocation: it signs with the new key.
  assert.equal((await chain(keysDir, 'w1 new key\n')).revision, 4);
  assert.equal((await verifyNow()).revision, 4);
  assert.equal(await namedCertificate(), newCrt);

  // One still holding the old key is accepted during the overlap.
  assert.equal((await chain(staleKeysDir, 'w1 stale key\n')).revision, 5);
  assert.equal((await verifyNow()).revision, 5);
  assert.equal(await namedCertificate(), oldCrt);

  // Past the overlap, the old certificate stays while the head names it (with a warning) ...
  const keys = await loadKeys(keysDir, FQRN, { need: ['master', 'repository', 'anchor'] });
  const later = new Date(overlapEnd.getTime() + HOUR);
  const warnings: string[] = [];
  const kept = await resignWhitelist(store, FQRN, keys, { now: later, onWarning: (m) => warnings.push(m) });
  assert.deepEqual(kept.dropped, []);
  assert.equal(kept.fingerprints.length, 2);
  assert.match(warnings.join('\n'), /stays listed past the end of its overlap .* still names it/);
  assert.equal((await verifyNow()).revision, 5);

  // ... and leaves at the first resign after a manifest signed with the new key.
  assert.equal((await chain(keysDir, 'w1 new key again\n')).revision, 6);
  const dropped = await resignWhitelist(store, FQRN, keys, { now: later });
  assert.deepEqual(dropped.dropped, [certificateFingerprint(oldCrt)]);
  assert.deepEqual(listed().fingerprints, [certificateFingerprint(newCrt)]);
  assert.equal(listed().retiring, undefined);
  assert.equal((await verifyNow()).revision, 6, 'after the rotation');

  // The old key is no longer trusted: the stale function is refused and signs nothing.
  const before = readFileSync(join(storeDir, '.cvmfspublished'));
  await assert.rejects(chain(staleKeysDir, 'w1 too late\n'), /not the ones this repository's whitelist trusts/);
  assert.ok(readFileSync(join(storeDir, '.cvmfspublished')).equals(before));
  const resignOld = await runCli(['resign', FQRN, '--store', storeDir, '--keys', staleKeysDir]);
  assert.equal(resignOld.code, 3, resignOld.stderr);
  assert.match(resignOld.stderr, /is not one the current whitelist/);
  assert.deepEqual(verified, [2, 2, 3, 4, 5, 5, 6]);
});

test('rotate-key refuses an overlap too short for client caches, and keys that are not the repository\'s', async () => {
  const work = tempDir('rotate-refuse');
  const storeDir = join(work, 'store');
  const keysDir = join(work, 'keys');
  await cliOk(['init', FQRN, '--store', storeDir, '--keys', keysDir]);
  const whitelist = () => readFileSync(join(storeDir, WHITELIST_KEY));
  const before = whitelist();
  const crt = readFileSync(join(keysDir, `${FQRN}.crt`), 'utf8');
  const short = await runCli(['rotate-key', FQRN, '--store', storeDir, '--keys', keysDir, '--overlap', '10m']);
  assert.equal(short.code, 3, short.stderr);
  assert.match(short.stderr, /overlap must be between 60 minutes .* and 30 days/);
  assert.equal(readFileSync(join(keysDir, `${FQRN}.crt`), 'utf8'), crt);

  // Someone else's key directory cannot rotate this repository.
  const otherKeys = join(work, 'other-keys');
  await cliOk(['init', FQRN, '--store', join(work, 'other-store'), '--keys', otherKeys]);
  await assert.rejects(rotateRepositoryKey(new FsStore(storeDir), { fqrn: FQRN, keysDir: otherKeys }),
    (e: Error & { code?: string }) => e.code === 'untrusted-head');
  assert.ok(whitelist().equals(before));
});

test('rotations within one second keep every retired key under its own name, and the last key signs', async () => {
  const work = tempDir('rotate-same-second');
  const storeDir = join(work, 'store');
  const keysDir = join(work, 'keys');
  await cliOk(['init', FQRN, '--store', storeDir, '--keys', keysDir]);
  const store = new FsStore(storeDir);
  const now = new Date();
  const replaced: string[] = [];
  const retired: { key: string; crt: string }[] = [];
  for (let i = 0; i < 3; i++) {
    replaced.push(readFileSync(join(keysDir, `${FQRN}.key`), 'utf8'));
    retired.push((await rotateRepositoryKey(store, { fqrn: FQRN, keysDir, now })).retired);
  }
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  assert.deepEqual(retired.map((r) => r.key), ['', '-2', '-3'].map((n) => join(keysDir, `${FQRN}.retired-${stamp}${n}.key`)));
  for (const [i, r] of retired.entries()) {
    assert.equal(readFileSync(r.key, 'utf8'), replaced[i], `retired pair ${i + 1} holds the key it replaced`);
    assert.ok(existsSync(r.crt));
  }
  // A leftover certificate alone under the next name is not overwritten either: that name is skipped.
  writeFileSync(join(keysDir, `${FQRN}.retired-${stamp}-4.crt`), 'leftover\n');
  const fourth = await rotateRepositoryKey(store, { fqrn: FQRN, keysDir, now });
  assert.equal(fourth.retired.key, join(keysDir, `${FQRN}.retired-${stamp}-5.key`));
  assert.equal(readFileSync(join(keysDir, `${FQRN}.retired-${stamp}-4.crt`), 'utf8'), 'leftover\n');
  assert.ok(!existsSync(join(keysDir, `${FQRN}.retired-${stamp}-4.key`)));
  const src = join(work, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'after four rotations\n');
  await cliOk(['publish', FQRN, src, '--store', storeDir, '--keys', keysDir, '-q', '--no-cache']);
  // The publish signed with the last key: the manifest names its certificate, and the reader verifies it.
  const head = (await readHead(store))!;
  const named = (await fetchObjectContent(store, head.manifest.certificate, 'X')).toString('utf8');
  assert.equal(named, readFileSync(join(keysDir, `${FQRN}.crt`), 'utf8'));
  const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [readFileSync(join(keysDir, `${FQRN}.pub`), 'utf8')] });
  try {
    await verifyRepository(reader);
    assert.equal(reader.manifest.revision, head.manifest.revision);
  } finally {
    reader.close();
  }
});
