// Names whose bytes are not UTF-8 cannot be stored in a catalog as they are: ingest and publish refuse
// them by name, bytes escaped, instead of renaming (or merging) them; the manifest stays as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, runCli, tempDir } from './helpers.js';
import { invoker } from './chain-invoker.js';
import { FsStore } from '../src/store/fs-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { ingestTarball } from '../src/publish/ingest-tarball.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { escapeNameBytes } from '../src/format/utf8-name.js';

const FQRN = 'names.example.org';

async function setup(name: string) {
  const work = tempDir(name);
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  const manifest = async () => (await readHead(store))!.bytes;
  return { work, store, keysDir, keys, manifest };
}

/** A path below `dir` whose last component is `bytes` (not necessarily UTF-8). */
function bytePath(dir: string, bytes: number[] | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(bytes)]);
}

test('escapeNameBytes shows valid UTF-8 as text and every other byte as \\xNN', () => {
  assert.equal(escapeNameBytes(Buffer.from([0x61, 0xff, 0x62])), 'a\\xffb');
  assert.equal(escapeNameBytes(Buffer.from('é\ufffd', 'utf8')), 'é\ufffd');
  assert.equal(escapeNameBytes(Buffer.from([0xc3])), '\\xc3');
  assert.equal(escapeNameBytes(Buffer.from([0x0a, 0x5c])), '\\x0a\\\\');
});

for (const format of ['gnu', 'posix'] as const) {
  test(`ingest refuses a ${format} tarball with two distinct non-UTF-8 names instead of merging them`, async () => {
    const { work, store, keys, manifest } = await setup(`non-utf8-tar-${format}`);
    const src = join(work, 'src');
    mkdirSync(join(src, 'dir'), { recursive: true });
    writeFileSync(bytePath(join(src, 'dir'), [0x61, 0xff]), 'first\n');
    writeFileSync(bytePath(join(src, 'dir'), [0x61, 0xfe]), 'second\n');
    const tarball = join(work, 'names.tar');
    execFileSync('tar', ['cf', tarball, `--format=${format}`, '-C', src, 'dir']);
    const before = await manifest();
    await assert.rejects(ingestTarball(store, createReadStream(tarball), { fqrn: FQRN, keys, path: '/sw' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'bad-tarball');
      assert.match(err.message, /tar entry 'dir\/a\\x(ff|fe)': the name is not valid UTF-8/);
      return true;
    });
    assert.ok((await manifest()).equals(before), 'manifest unchanged');

    // A symlink whose target is not UTF-8 is refused the same way.
    const linkSrc = join(work, 'link-src');
    mkdirSync(linkSrc);
    symlinkSync(bytePath('.', [0x62, 0xff]), join(linkSrc, 'l'));
    execFileSync('tar', ['cf', tarball, `--format=${format}`, '-C', linkSrc, 'l']);
    await assert.rejects(ingestTarball(store, createReadStream(tarball), { fqrn: FQRN, keys, path: '/sw' }),
      /tar entry 'l': the symlink target '\.\/b\\xff' is not valid UTF-8/);
    assert.ok((await manifest()).equals(before), 'manifest unchanged');

    // UTF-8 names, a real U+FFFD among them, still go in.
    const good = join(work, 'good');
    mkdirSync(join(good, 'dir'), { recursive: true });
    writeFileSync(join(good, 'dir', 'é\ufffd'), 'ok\n');
    execFileSync('tar', ['cf', tarball, `--format=${format}`, '-C', good, 'dir']);
    await ingestTarball(store, createReadStream(tarball), { fqrn: FQRN, keys, path: '/sw' });
    const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
    assert.equal((await reader.readFile('/sw/dir/é\ufffd')).toString(), 'ok\n');
    await verifyRepository(reader);
    reader.close();
  });
}

test('publish refuses a directory holding a non-UTF-8 file name, naming it with the bytes escaped', async () => {
  const { work, store, keys, manifest } = await setup('non-utf8-dir');
  const src = join(work, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'sub', 'fine'), 'fine\n');
  writeFileSync(bytePath(join(src, 'sub'), [0x78, 0xff, 0x79]), 'bad\n');
  const before = await manifest();
  await assert.rejects(publishDirectory(store, src, { fqrn: FQRN, keys, xattrs: null }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'non-utf8-name');
    assert.equal(err.message.split(':')[0], join(src, 'sub', 'x\\xffy'));
    assert.match(err.message, /the name is not valid UTF-8/);
    return true;
  });
  assert.ok((await manifest()).equals(before), 'manifest unchanged');

  // The command line says the same and fails.
  const cli = await runCli(['publish', FQRN, src, '--store', join(work, 'store'), '--keys', join(work, 'keys'), '-q', '--no-cache', '--no-xattrs']);
  assert.notEqual(cli.code, 0, cli.stderr);
  assert.ok(cli.stderr.includes('x\\xffy'), cli.stderr);
  assert.ok((await manifest()).equals(before), 'manifest unchanged');

  // A symlink target that is not UTF-8 is refused as well.
  unlinkSync(bytePath(join(src, 'sub'), [0x78, 0xff, 0x79]));
  await cliOk(['publish', FQRN, src, '--store', join(work, 'store'), '--keys', join(work, 'keys'), '-q', '--no-cache', '--no-xattrs']);
  const published = await manifest();
  symlinkSync(bytePath('.', [0xfe]), join(src, 'link'));
  await assert.rejects(publishDirectory(store, src, { fqrn: FQRN, keys, xattrs: null }),
    (err: Error & { code?: string }) => err.code === 'non-utf8-name' && err.message.includes(`${join(src, 'link')}: the symlink target './\\xfe'`));
  assert.ok((await manifest()).equals(published), 'manifest unchanged');
});

test('a publisher with a non-UTF-8 name in its tree fails before uploading a changeset', async () => {
  const { work, store, keysDir, keys, manifest } = await setup('non-utf8-chain');
  await addPublisher(store, { keysDir, fqrn: FQRN, name: 'w1', paths: ['/w1'] });
  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: false,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const src = join(work, 'src');
  mkdirSync(src);
  writeFileSync(bytePath(src, [0xe9]), 'latin-1 é\n');
  const before = await manifest();
  const publisher = await loadPublisherKey(keysDir, 'w1');
  await assert.rejects(publishThroughChain(store, src, { fqrn: FQRN, publisher, path: '/w1', functions: invoker(config), xattrs: null }),
    (err: Error & { code?: string }) => err.code === 'non-utf8-name' && err.message.startsWith(`${src}/\\xe9: `));
  assert.ok((await manifest()).equals(before), 'manifest unchanged');
  assert.deepEqual((await store.list('.scvmfs/txn/')).objects.filter((o) => !o.key.endsWith('state.json')), [], 'no changeset left behind');
});
