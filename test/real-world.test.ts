// Real-world trees: hardlink farms, special files, and catalogs balanced automatically.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { catalogRows, tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { HttpSource } from '../src/client/sources.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { entryFlags, FLAG } from '../src/format/catalog-entry.js';

const FQRN = 'realworld.example.org';

async function setup(name: string) {
  const work = tempDir(name);
  const src = join(work, 'src');
  mkdirSync(src);
  const store = new FsStore(join(work, 'store'));
  const keys = await generateRepositoryKeys(FQRN);
  await initRepository(store, { fqrn: FQRN, keys });
  const open = (source: FsStore | HttpSource = store) =>
    RepositoryReader.open(source, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  return { work, src, store, keys, open };
}

test('a hardlink group in one directory keeps its link count; a link across directories becomes a copy', async () => {
  const { src, store, keys, open } = await setup('hardlinks');
  mkdirSync(join(src, 'bin'));
  mkdirSync(join(src, 'other'));
  writeFileSync(join(src, 'bin/tool'), 'the tool\n');
  linkSync(join(src, 'bin/tool'), join(src, 'bin/tool-alias'));
  linkSync(join(src, 'bin/tool'), join(src, 'bin/tool-old'));
  writeFileSync(join(src, 'bin/lib'), 'a library\n');
  linkSync(join(src, 'bin/lib'), join(src, 'other/lib-copy'));
  const warnings: string[] = [];
  const server = await serveStore(store, { port: 0 });
  try {
    await publishDirectory(store, src, { fqrn: FQRN, keys, onWarning: (m) => warnings.push(m) });
    const reader = await open(new HttpSource(server.url));
    const group = await Promise.all(['tool', 'tool-alias', 'tool-old'].map((n) => reader.stat(`/bin/${n}`)));
    for (const e of group) {
      assert.ok(e);
      assert.equal(e.linkcount, 3, `link count of ${e.name}`);
      assert.ok(e.hardlinkGroup > 0);
      assert.equal(e.hardlinkGroup, group[0]!.hardlinkGroup, 'one group');
      assert.equal((await reader.readFile(`/bin/${e.name}`)).toString(), 'the tool\n');
    }
    const lib = (await reader.stat('/bin/lib'))!;
    const copy = (await reader.stat('/other/lib-copy'))!;
    assert.equal(lib.linkcount, 1);
    assert.equal(copy.linkcount, 1);
    assert.equal(copy.hardlinkGroup, 0);
    assert.equal((await reader.readFile('/other/lib-copy')).toString(), 'a library\n');
    assert.equal(warnings.filter((w) => w.includes('hardlink')).length, 1, warnings.join('\n'));
    await verifyRepository(reader);
    reader.close();

    // Unchanged groups are left alone; dropping a name shrinks the group.
    const again = await publishDirectory(store, src, { fqrn: FQRN, keys, onWarning: () => {} });
    assert.equal(again.changed, false);
    rmSync(join(src, 'bin/tool-old'));
    await publishDirectory(store, src, { fqrn: FQRN, keys, onWarning: () => {} });
    const after = await open();
    assert.equal((await after.stat('/bin/tool'))!.linkcount, 2);
    assert.equal((await after.stat('/bin/tool-alias'))!.linkcount, 2);
    assert.equal(await after.stat('/bin/tool-old'), null);
    after.close();
  } finally {
    await server.close();
  }
});

test('FIFOs, sockets and devices are published as special files with the stock flags', async () => {
  const { src, store, keys, open } = await setup('specials');
  execFileSync('mkfifo', [join(src, 'pipe')]);
  const sock = createServer();
  await new Promise<void>((resolve) => sock.listen(join(src, 'socket'), resolve));
  const isRoot = process.getuid?.() === 0;
  if (isRoot) execFileSync('mknod', [join(src, 'null-dev'), 'c', '1', '3']);
  try {
    await publishDirectory(store, src, { fqrn: FQRN, keys });
  } finally {
    sock.close();
  }
  const reader = await open();
  const pipe = (await reader.stat('/pipe'))!;
  assert.equal(pipe.mode & 0o170000, 0o010000);
  assert.equal(pipe.size, 0);
  assert.equal(entryFlags(pipe), FLAG.file | FLAG.special, 'flags 20');
  const socket = (await reader.stat('/socket'))!;
  assert.equal(socket.mode & 0o170000, 0o140000);
  if (isRoot) {
    const dev = (await reader.stat('/null-dev'))!;
    assert.equal(dev.mode & 0o170000, 0o020000);
    assert.equal(dev.size, 259, 'rdev of makedev(1, 3)');
  }
  const report = await verifyRepository(reader);
  assert.ok(report.entries >= 2);
  reader.close();
});


test('catalogs over the maximum weight are split, and light automatic ones merged back', async () => {
  const { src, store, keys, open } = await setup('balance');
  for (let a = 0; a < 4; a++) {
    for (let b = 0; b < 3; b++) {
      const dir = join(src, `area${a}`, `pkg${b}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 30; f++) writeFileSync(join(dir, `f${f}`), `${a}/${b}/${f}`);
    }
  }
  writeFileSync(join(src, 'top'), 'top');
  const weights = { maxWeight: 100, minWeight: 20 };
  const first = await publishDirectory(store, src, { fqrn: FQRN, keys, autocatalogs: weights });
  assert.ok(first.catalogsSplit.length > 0, 'the 380-entry root catalog is split');
  const reader = await open();
  const sizes = await catalogRows(store, reader.manifest.rootCatalog);
  for (const [mountpoint, rows] of sizes) assert.ok(rows <= weights.maxWeight, `catalog ${mountpoint || '/'} has ${rows} rows`);
  assert.ok(sizes.size > 1);
  for (const m of first.catalogsSplit) {
    assert.ok(await reader.stat(`${m}/.cvmfscatalog`), `marker in ${m}`);
    assert.ok(await reader.stat(`${m}/.cvmfsautocatalog`), `auto marker in ${m}`);
  }
  const report = await verifyRepository(reader);
  assert.equal(report.catalogs, sizes.size);
  reader.close();

  // The source has no markers: publishing it again changes nothing.
  const same = await publishDirectory(store, src, { fqrn: FQRN, keys, autocatalogs: weights });
  assert.equal(same.changed, false, 'automatic markers are kept, not removed');

  // Emptying most packages makes their automatic catalogs light: merged into the parent.
  for (let a = 0; a < 4; a++) for (let b = 0; b < 3; b++) for (let f = 2; f < 30; f++) rmSync(join(src, `area${a}`, `pkg${b}`, `f${f}`));
  const shrunk = await publishDirectory(store, src, { fqrn: FQRN, keys, autocatalogs: weights });
  assert.ok(shrunk.catalogsMerged.length > 0);
  const after = await open();
  const left = await catalogRows(store, after.manifest.rootCatalog);
  assert.ok(left.size < sizes.size, `${left.size} catalogs after merging, ${sizes.size} before`);
  for (const m of shrunk.catalogsMerged) {
    assert.equal(await after.isMountpoint(m), false);
    assert.equal(await after.stat(`${m}/.cvmfsautocatalog`), null);
  }
  assert.equal((await after.readFile('/area3/pkg2/f1')).toString(), '3/2/1');
  await verifyRepository(after);
  after.close();
});

test('user extended attributes are published into the catalog and read back; changing one republishes', async (t) => {
  const { src, store, keys, open } = await setup('xattrs');
  writeFileSync(join(src, 'tagged'), 'content');
  mkdirSync(join(src, 'dir'));
  try {
    execFileSync('setfattr', ['-n', 'user.origin', '-v', 'lhcb', join(src, 'tagged')]);
    execFileSync('setfattr', ['-n', 'user.a', '-v', '0x00ff', join(src, 'dir')]);
  } catch {
    t.skip('setfattr (Debian package attr) is not installed');
    return;
  }
  await publishDirectory(store, src, { fqrn: FQRN, keys });
  let reader = await open();
  assert.equal((await reader.xattrs('/tagged')).get('user.origin')?.toString(), 'lhcb');
  assert.deepEqual([...(await reader.xattrs('/dir')).get('user.a')!], [0, 255]);
  assert.equal((await reader.xattrs('/')).size, 0);
  const report = await verifyRepository(reader);
  assert.ok(report.entries > 0);
  reader.close();
  execFileSync('setfattr', ['-n', 'user.origin', '-v', 'atlas', join(src, 'tagged')]);
  const second = await publishDirectory(store, src, { fqrn: FQRN, keys });
  assert.ok(second.changed, 'an xattr-only change is a change');
  reader = await open();
  assert.equal((await reader.xattrs('/tagged')).get('user.origin')?.toString(), 'atlas');
  reader.close();
});
