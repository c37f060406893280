// Chunked files (rows in the chunks table, which references their catalog row) can be removed,
// replaced and added again at any depth, in the root catalog, a nested catalog and an automatic one,
// through owner publish, ingest --delete and the publisher commit chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { catalogRows, tempDir } from './helpers.js';
import { invoker } from './chain-invoker.js';
import { FsStore } from '../src/store/fs-store.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { FLAG } from '../src/format/catalog-entry.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { ingestTarball } from '../src/publish/ingest-tarball.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';

const FQRN = 'chunks.example.org';
const CHUNKING = { minSize: 4096, avgSize: 8192, maxSize: 16384 };
const AUTO = { maxWeight: 20, minWeight: 2 };
const BIG = 60_000;

async function setup(name: string) {
  const work = tempDir(name);
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  const open = () => RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  /** Verifies the repository and that each path holds what `expect` says (null: absent). */
  const check = async (expect: Record<string, Buffer | null>) => {
    const reader = await open();
    try {
      await verifyRepository(reader);
      for (const [path, content] of Object.entries(expect)) {
        if (content === null) assert.equal(await reader.stat(path), null, `${path} is gone`);
        else assert.ok((await reader.readFile(path)).equals(content), `${path} has its content`);
      }
    } finally {
      reader.close();
    }
  };
  /** The mountpoint of the catalog holding `path`, and whether the file is stored chunked. */
  const where = async (path: string) => {
    const head = (await readHead(store))!;
    const mountpoints = [...(await catalogRows(store, head.manifest.rootCatalog)).keys()];
    const reader = await open();
    const entry = await reader.stat(path);
    reader.close();
    const holder = mountpoints.filter((m) => path.startsWith(`${m}/`)).sort((a, b) => b.length - a.length)[0]!;
    return { holder, chunked: entry !== null && (entry.extraFlags & FLAG.chunked) !== 0 };
  };
  return { work, store, keysDir, keys, check, where };
}

function writeFile(root: string, rel: string, content: Buffer | string): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), content);
}

/** A tree with chunked files deep in the root catalog, in a nested catalog and in an automatic one. */
function bigTree(src: string, label: string) {
  const files = { deep: randomBytes(BIG), nested: randomBytes(BIG), auto: randomBytes(BIG) };
  writeFile(src, 'deep/a/b/big', files.deep);
  writeFile(src, 'nest/.cvmfscatalog', '');
  writeFile(src, 'nest/x/y/big', files.nested);
  writeFile(src, 'auto/d/big', files.auto);
  for (let i = 0; i < 30; i++) writeFile(src, `auto/d/small${i}`, `${label} ${i}\n`);
  return files;
}

test('owner publish removes, replaces and re-adds chunked files at depth in root, nested and automatic catalogs', async () => {
  const { work, store, keys, check, where } = await setup('chunked-owner');
  const src = join(work, 'src');
  const publish = () => publishDirectory(store, src, { fqrn: FQRN, keys, chunking: CHUNKING, autocatalogs: AUTO, xattrs: null });
  let files = bigTree(src, 'one');
  await publish();
  assert.deepEqual(await where('/deep/a/b/big'), { holder: '', chunked: true });
  assert.deepEqual(await where('/nest/x/y/big'), { holder: '/nest', chunked: true });
  const auto = await where('/auto/d/big');
  assert.ok(auto.chunked && auto.holder.startsWith('/auto'), `an automatic catalog holds /auto/d/big (${auto.holder})`);

  for (const rel of ['deep/a/b/big', 'nest/x/y/big', 'auto/d/big']) rmSync(join(src, rel));
  const removed = await publish();
  assert.equal(removed.removed, 3);
  await check({ '/deep/a/b/big': null, '/nest/x/y/big': null, '/auto/d/big': null });

  files = bigTree(src, 'two');
  await publish();
  await check({ '/deep/a/b/big': files.deep, '/nest/x/y/big': files.nested, '/auto/d/big': files.auto });

  // Replaced by other chunked content, then by a small file, then whole directories removed.
  const replaced = { deep: randomBytes(BIG + 1), nested: randomBytes(BIG + 2) };
  writeFile(src, 'deep/a/b/big', replaced.deep);
  writeFile(src, 'nest/x/y/big', replaced.nested);
  writeFile(src, 'auto/d/big', 'small now\n');
  await publish();
  await check({ '/deep/a/b/big': replaced.deep, '/nest/x/y/big': replaced.nested, '/auto/d/big': Buffer.from('small now\n') });
  rmSync(join(src, 'deep/a'), { recursive: true });
  rmSync(join(src, 'nest/x'), { recursive: true });
  await publish();
  await check({ '/deep/a': null, '/nest/x': null });
  // The repository is not wedged: an unrelated change still publishes.
  writeFile(src, 'later', 'later\n');
  await publish();
  await check({ '/later': Buffer.from('later\n') });
});

test('ingest --delete removes chunked files and directories holding them, and a tarball adds them back', async () => {
  const { work, store, keys, check } = await setup('chunked-ingest');
  const src = join(work, 'src');
  bigTree(src, 'one');
  await publishDirectory(store, src, { fqrn: FQRN, keys, chunking: CHUNKING, autocatalogs: AUTO, xattrs: null });
  const ingest = (input: string | null, options: { path?: string; deletePaths?: string[] }) =>
    ingestTarball(store, input === null ? null : createReadStream(input), { fqrn: FQRN, keys, chunking: CHUNKING, autocatalogs: AUTO, ...options });

  const gone = await ingest(null, { deletePaths: ['/deep/a/b/big', '/nest/x/y/big', '/auto/d/big'] });
  assert.equal(gone.deleted, 3);
  await check({ '/deep/a/b/big': null, '/nest/x/y/big': null, '/auto/d/big': null });

  const tarSrc = join(work, 'tar-src');
  const again = randomBytes(BIG);
  writeFile(tarSrc, 'y/big', again);
  const tarball = join(work, 'big.tar');
  execFileSync('tar', ['cf', tarball, '-C', tarSrc, 'y']);
  await ingest(tarball, { path: '/nest/x' });
  await ingest(tarball, { path: '/deep/a/b' });
  await check({ '/nest/x/y/big': again, '/deep/a/b/y/big': again });

  // Replaced in place by the same path from another tarball, then the directories removed.
  const other = randomBytes(BIG + 7);
  writeFile(tarSrc, 'y/big', other);
  execFileSync('tar', ['cf', tarball, '-C', tarSrc, 'y']);
  await ingest(tarball, { path: '/nest/x' });
  await check({ '/nest/x/y/big': other });
  await ingest(null, { deletePaths: ['/nest/x', '/deep/a', '/auto/d'] });
  await check({ '/nest/x': null, '/deep/a': null, '/auto/d': null });
});

test('the commit chain removes, replaces and re-adds chunked files, including a first commit into an existing directory', async () => {
  const { work, store, keysDir, keys, check } = await setup('chunked-chain');
  await addPublisher(store, { keysDir, fqrn: FQRN, name: 'w1', paths: ['/w1'] });
  // The owner made /w1 first, so the writer's first commit moves existing rows into its catalog.
  const ownerSrc = join(work, 'owner');
  writeFile(ownerSrc, 'w1/existing/small', 'owner\n');
  await publishDirectory(store, ownerSrc, { fqrn: FQRN, keys, xattrs: null });

  const config: CommitConfig = {
    store, fqrn: FQRN, autocatalogs: AUTO,
    keys: { repositoryKeyPem: keys.repositoryKeyPem, certificatePem: keys.certificatePem, masterPublicKeyPem: keys.masterPublicKeyPem },
  };
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const src = join(work, 'src');
  const publish = () => publishThroughChain(store, src, {
    fqrn: FQRN, publisher, path: '/w1', functions: invoker(config, { commitBudgetMs: 50 }), chunking: CHUNKING, xattrs: null,
  });

  writeFile(src, 'existing/small', 'owner\n');
  const first = randomBytes(BIG);
  writeFile(src, 'existing/big', first);
  await publish();
  await check({ '/w1/existing/big': first });

  let files = bigTree(src, 'one');
  await publish();
  await check({ '/w1/deep/a/b/big': files.deep, '/w1/nest/x/y/big': files.nested, '/w1/auto/d/big': files.auto });

  for (const rel of ['existing/big', 'deep/a/b/big', 'nest/x/y/big', 'auto/d/big']) rmSync(join(src, rel));
  await publish();
  await check({ '/w1/existing/big': null, '/w1/deep/a/b/big': null, '/w1/nest/x/y/big': null, '/w1/auto/d/big': null });

  files = bigTree(src, 'two');
  await publish();
  await check({ '/w1/deep/a/b/big': files.deep, '/w1/nest/x/y/big': files.nested, '/w1/auto/d/big': files.auto });

  const replaced = randomBytes(BIG + 3);
  writeFile(src, 'nest/x/y/big', replaced);
  rmSync(join(src, 'deep'), { recursive: true });
  await publish();
  await check({ '/w1/nest/x/y/big': replaced, '/w1/deep': null });
});
