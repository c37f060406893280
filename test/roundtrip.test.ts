// Publish a tree full of awkward cases, serve it over HTTP, read every entry back through the reader and
// compare with the source; then change it, publish again and compare again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tempDir } from './helpers.js';
import { freshBucket } from './s3-env.js';
import { FsStore } from '../src/store/fs-store.js';
import { openStore } from '../src/store/open-store.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { HttpSource } from '../src/client/sources.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { kindOfMode } from '../src/format/catalog-entry.js';

const FQRN = 'roundtrip.example.org';

export function buildAwkwardTree(root: string): void {
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'regular.txt'), 'hello, world\n');
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'one-byte'), 'x');
  writeFileSync(join(root, 'tool.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'tool.sh'), 0o755);
  writeFileSync(join(root, 'secret'), 'private');
  chmodSync(join(root, 'secret'), 0o600);
  writeFileSync(join(root, 'large.bin'), Buffer.concat([randomBytes(3 << 20), Buffer.alloc(2 << 20, 7)]));
  writeFileSync(join(root, 'name with spaces'), 'spaces');
  writeFileSync(join(root, 'ünïcødé-名前'), 'utf8');
  writeFileSync(join(root, '-leading-dash'), 'dash');
  writeFileSync(join(root, `quote's "double"`), 'quotes');
  writeFileSync(join(root, 'n'.repeat(250)), 'long name');
  symlinkSync('regular.txt', join(root, 'rel-link'));
  symlinkSync('/etc/hostname', join(root, 'abs-link'));
  symlinkSync('does/not/exist', join(root, 'dangling'));
  mkdirSync(join(root, 'empty-dir'));
  mkdirSync(join(root, 'sw/pkg/lib/deep'), { recursive: true });
  writeFileSync(join(root, 'sw/.cvmfscatalog'), '');
  writeFileSync(join(root, 'sw/README'), 'software');
  writeFileSync(join(root, 'sw/pkg/.cvmfscatalog'), '');
  writeFileSync(join(root, 'sw/pkg/lib/libx.so'), randomBytes(5000));
  writeFileSync(join(root, 'sw/pkg/lib/deep/data'), 'deep');
  utimesSync(join(root, 'regular.txt'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
}

/** Every source entry is in the repository with the same type, mode, size, mtime, content or target. */
export async function assertSameTree(reader: RepositoryReader, source: string, repoPath = ''): Promise<void> {
  let compared = 0;
  const walk = async (dir: string, path: string) => {
    const names = readdirSync(dir).sort();
    const listed = (await reader.list(path || '/')).map((e) => e.name).sort();
    assert.deepEqual(listed, names, `listing of ${path || '/'}`);
    for (const name of names) {
      const src = join(dir, name);
      const p = `${path}/${name}`;
      const st = lstatSync(src);
      const e = await reader.stat(p);
      assert.ok(e, `${p} missing from the repository`);
      assert.equal(e.mode, st.mode, `mode of ${p}`);
      assert.equal(e.mtime, Math.floor(st.mtimeMs / 1000), `mtime of ${p}`);
      assert.equal(e.uid, st.uid, `uid of ${p}`);
      const kind = kindOfMode(st.mode);
      if (kind === 'file') {
        assert.equal(e.size, st.size, `size of ${p}`);
        assert.ok((await reader.readFile(p)).equals(readFileSync(src)), `content of ${p}`);
        assert.equal(e.linkcount, 1);
      } else if (kind === 'symlink') {
        assert.equal(e.symlink, readlinkSync(src), `target of ${p}`);
        assert.equal(e.size, Buffer.byteLength(readlinkSync(src)));
      } else {
        const subdirs = readdirSync(src, { withFileTypes: true }).filter((d) => d.isDirectory()).length;
        assert.equal(e.linkcount, 2 + subdirs, `link count of ${p}`);
        await walk(src, p);
      }
      compared++;
    }
  };
  await walk(source, repoPath);
  assert.ok(compared > 0);
}

/** A fresh empty store and the base URL an anonymous HTTP client reads it from. */
interface Backend {
  open(label: string): Promise<{ store: ObjectStore; url: string; close(): Promise<void> }>;
}

const bucket = await freshBucket('roundtrip');
let prefixes = 0;

const BACKENDS: Record<string, Backend> = {
  // A directory, served by our own HTTP server as a web server would.
  fs: {
    async open(label) {
      const store = new FsStore(join(tempDir(label), 'store'));
      const server = await serveStore(store, { port: 0 });
      return { store, url: server.url, close: () => server.close() };
    },
  },
  // An S3 bucket through openStore (retries included), read anonymously straight from the gateway.
  s3: {
    async open(label) {
      const prefix = `${label}/${++prefixes}/${FQRN}`;
      return { store: openStore(bucket.url(prefix)), url: bucket.publicUrl(prefix), close: async () => {} };
    },
  },
};

for (const [name, backend] of Object.entries(BACKENDS)) {
  test(`${name}: a tree of awkward entries round-trips through publish, serve and the HTTP reader, twice`, async () => {
    const work = tempDir('roundtrip');
    const src = join(work, 'src');
    buildAwkwardTree(src);
    const { store, url, close } = await backend.open('roundtrip');
    const keys = await generateRepositoryKeys(FQRN);
    await initRepository(store, { fqrn: FQRN, keys });
    try {
      const first = await publishDirectory(store, src, { fqrn: FQRN, keys });
      assert.equal(first.revision, 2);
      assert.ok(first.changed);
      const open = () => RepositoryReader.open(new HttpSource(url), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
      let reader = await open();
      assert.equal(reader.manifest.revision, 2);
      await assertSameTree(reader, src);
      assert.ok(await reader.isMountpoint('/sw'));
      assert.ok(await reader.isMountpoint('/sw/pkg'));
      const report = await verifyRepository(reader);
      assert.equal(report.catalogs, 3);
      const firstRoot = reader.manifest.rootCatalog;
      reader.close();

      // Change, add, remove; move a nested catalog boundary away; make a file a directory.
      writeFileSync(join(src, 'regular.txt'), 'changed content\n');
      writeFileSync(join(src, 'added'), 'new file');
      rmSync(join(src, 'one-byte'));
      rmSync(join(src, 'empty-dir'), { recursive: true });
      rmSync(join(src, 'sw/pkg/.cvmfscatalog'));
      writeFileSync(join(src, 'sw/pkg/lib/deep/more'), 'more');
      rmSync(join(src, 'secret'));
      mkdirSync(join(src, 'secret'));
      writeFileSync(join(src, 'secret/inside'), 'in');
      chmodSync(join(src, 'tool.sh'), 0o700);
      const second = await publishDirectory(store, src, { fqrn: FQRN, keys });
      assert.equal(second.revision, 3, 'revision goes up by exactly one');
      reader = await open();
      await assertSameTree(reader, src);
      assert.equal(await reader.isMountpoint('/sw/pkg'), false);
      assert.equal(await reader.stat('/one-byte'), null);
      assert.equal((await verifyRepository(reader)).catalogs, 2);

      // The previous root catalog is still there and readable.
      assert.ok(reader.rootCatalogPrevious?.equals(firstRoot));
      const old = await reader.atRoot(firstRoot);
      assert.equal((await old.readFile('/one-byte')).toString(), 'x');
      assert.equal((await old.readFile('/regular.txt')).toString(), 'hello, world\n');
      reader.close();

      const third = await publishDirectory(store, src, { fqrn: FQRN, keys });
      assert.equal(third.changed, false, 'a publish with no change makes no revision');
      assert.equal((await readHead(store))!.manifest.revision, 3);
    } finally {
      await close();
    }
  });

  test(`${name}: publishing into a sub-path leaves the rest of the repository alone`, async () => {
    const work = tempDir('subpath');
    const a = join(work, 'a');
    const b = join(work, 'b');
    mkdirSync(join(a, 'x'), { recursive: true });
    writeFileSync(join(a, 'x/file'), 'a');
    mkdirSync(b);
    writeFileSync(join(b, 'other'), 'b');
    const { store, url, close } = await backend.open('subpath');
    try {
      const keys = await generateRepositoryKeys(FQRN);
      await initRepository(store, { fqrn: FQRN, keys, algorithm: 'shake128' });
      await publishDirectory(store, a, { fqrn: FQRN, keys, path: '/top' });
      await publishDirectory(store, b, { fqrn: FQRN, keys, path: '/deep/er/sub' });
      // The store itself as the reader here; the first test reads over HTTP.
      const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
      await assertSameTree(reader, a, '/top');
      await assertSameTree(reader, b, '/deep/er/sub');
      assert.equal(reader.manifest.rootCatalog.algorithm, 'shake128');
      await verifyRepository(reader);
      reader.close();
      // Over HTTP too: the published part is public.
      const overHttp = await RepositoryReader.open(new HttpSource(url), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
      await assertSameTree(overHttp, b, '/deep/er/sub');
      overHttp.close();
    } finally {
      await close();
    }
  });
}
