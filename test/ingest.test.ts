// `scvmfs ingest`: a tarball published into a sub-path must give the same entries as the same tree
// published from disk; stdin through the real CLI; --delete; bad archives refused with the manifest
// bytes untouched; and the result verifies end to end over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, MANIFEST_KEY } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { ingestTarball } from '../src/publish/ingest-tarball.js';
import { HttpSource } from '../src/client/sources.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { FLAG, kindOfMode, makedev } from '../src/format/catalog-entry.js';
import { TEST_SOURCE_DIR } from './helpers.js';

const FQRN = 'ingest.example.org';
const MiB = 1024 * 1024;
const CHUNKING = { minSize: 1 * MiB, avgSize: 2 * MiB, maxSize: 4 * MiB };
const CLI = join(TEST_SOURCE_DIR, '..', 'dist', 'src', 'cli', 'main.js');

function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}
const XATTRS = hasTool('setfattr');

/** A tree with everything a tarball can carry that a catalog records. */
function buildTree(src: string): void {
  mkdirSync(join(src, 'bin'), { recursive: true });
  mkdirSync(join(src, 'lib/deep/er'), { recursive: true });
  mkdirSync(join(src, 'data'));
  mkdirSync(join(src, 'empty-dir'));
  mkdirSync(join(src, 'nest/sub'), { recursive: true });
  writeFileSync(join(src, 'README'), 'read me\n');
  writeFileSync(join(src, 'bin/tool'), '#!/bin/sh\necho tool\n');
  chmodSync(join(src, 'bin/tool'), 0o755);
  linkSync(join(src, 'bin/tool'), join(src, 'bin/tool-alias'));
  linkSync(join(src, 'bin/tool'), join(src, 'bin/tool-old'));
  writeFileSync(join(src, 'lib/libx.so'), randomBytes(70_000));
  linkSync(join(src, 'lib/libx.so'), join(src, 'data/libx-copy.so'));
  writeFileSync(join(src, 'lib/deep/er/empty'), '');
  writeFileSync(join(src, 'data/empty'), '');
  writeFileSync(join(src, 'data/private'), 'secret\n');
  chmodSync(join(src, 'data/private'), 0o600);
  writeFileSync(join(src, 'data/big.bin'), randomBytes(20 * MiB));
  symlinkSync('tool', join(src, 'bin/tool-link'));
  symlinkSync('/cvmfs/elsewhere.org/x', join(src, 'lib/absolute-link'));
  execFileSync('mkfifo', [join(src, 'data/pipe')]);
  writeFileSync(join(src, 'nest/.cvmfscatalog'), '');
  writeFileSync(join(src, 'nest/sub/inside'), 'inside a nested catalog\n');
  if (XATTRS) {
    execFileSync('setfattr', ['-n', 'user.origin', '-v', 'ingest-test', join(src, 'README')]);
    execFileSync('setfattr', ['-n', 'user.bin', '-v', '0x00ff10', join(src, 'lib/libx.so')]);
    execFileSync('setfattr', ['-n', 'user.dir', '-v', 'a directory', join(src, 'lib')]);
  }
  // Whole seconds with a fraction on one file: pax keeps nanoseconds, and both publishers must agree.
  utimesSync(join(src, 'README'), 1_700_000_000.25, 1_700_000_000.25);
}

function tarOf(src: string, file: string, gzip = false): string {
  const args = ['--format=posix', ...(XATTRS ? ['--xattrs', '--xattrs-include=user.*'] : []), '-C', src, gzip ? '-czf' : '-cf', file, '.'];
  execFileSync('tar', args);
  return file;
}

async function newRepo(dir: string) {
  const store = new FsStore(dir);
  const keys = await generateRepositoryKeys(FQRN);
  await initRepository(store, { fqrn: FQRN, keys });
  return { store, keys };
}

async function readerFor(url: string, publicKey: string) {
  return RepositoryReader.open(new HttpSource(url), { fqrn: FQRN, publicKeys: [publicKey] });
}

/** Every entry below `path`, with content and xattrs, hardlink groups as sets of names. */
async function snapshot(reader: RepositoryReader, path: string) {
  const out = new Map<string, Record<string, unknown>>();
  const groups = new Map<number, string[]>();
  for await (const { path: p, entry } of reader.walk(path)) {
    const rel = p.slice(path.length) || '/';
    const kind = kindOfMode(entry.mode);
    const content = kind === 'file' ? await reader.readFile(p) : null;
    if (entry.hardlinkGroup !== 0) groups.set(entry.hardlinkGroup, [...(groups.get(entry.hardlinkGroup) ?? []), rel]);
    out.set(rel, {
      name: entry.name, mode: entry.mode.toString(8), size: entry.size, mtime: entry.mtime, mtimeNs: entry.mtimeNs,
      uid: entry.uid, gid: entry.gid, linkcount: entry.linkcount, symlink: entry.symlink,
      chunked: Boolean(entry.extraFlags & FLAG.chunked), content: content?.toString('base64'),
      xattrs: JSON.stringify([...(await reader.xattrs(p))].map(([k, v]) => [k, v.toString('hex')])),
      mountpoint: await reader.isMountpoint(p),
    });
  }
  const groupSets = [...groups.values()].map((g) => g.sort().join(' ')).sort();
  return { entries: out, groups: groupSets };
}

test('a tarball ingested into /sw/pkg equals the same tree published from disk', async (t) => {
  if (!XATTRS) t.diagnostic('xattrs not covered: setfattr (package attr) is not installed');
  const work = tempDir('ingest-equal');
  const src = join(work, 'src');
  buildTree(src);
  const tarball = tarOf(src, join(work, 'tree.tar'));
  const a = await newRepo(join(work, 'from-disk'));
  const b = await newRepo(join(work, 'from-tar'));

  const diskWarnings: string[] = [];
  await publishDirectory(a.store, src, { fqrn: FQRN, keys: a.keys, path: '/sw/pkg', chunking: CHUNKING, onWarning: (m) => diskWarnings.push(m) });
  const warnings: string[] = [];
  const progress: string[] = [];
  const summary = await ingestTarball(b.store, Readable.from(readFileSync(tarball)), {
    fqrn: FQRN, keys: b.keys, path: '/sw/pkg', chunking: CHUNKING, onWarning: (m) => warnings.push(m), onProgress: (p) => progress.push(p.phase),
  });
  assert.equal(summary.changed, true);
  assert.equal(summary.revision, 2);
  assert.equal(summary.hardlinks, 3, 'two extra names of bin/tool and one of lib/libx.so');
  assert.equal(summary.specials, 1);
  assert.deepEqual(summary.nestedCatalogs, ['/sw/pkg/nest']);
  assert.ok(summary.bytesRead >= 20 * MiB);
  assert.ok(progress.includes('commit'));
  assert.equal(warnings.length, 1, `one cross-directory hardlink warning: ${warnings.join('; ')}`);
  assert.match(warnings[0]!, /data\/libx-copy\.so.*different directories|different directories.*libx/);
  assert.equal(diskWarnings.filter((w) => /hardlink/.test(w)).length, 1);

  const serverA = await serveStore(a.store, { port: 0 });
  const serverB = await serveStore(b.store, { port: 0 });
  try {
    const readerA = await readerFor(serverA.url, a.keys.masterPublicKeyPem);
    const readerB = await readerFor(serverB.url, b.keys.masterPublicKeyPem);
    const fromDisk = await snapshot(readerA, '/sw/pkg');
    const fromTar = await snapshot(readerB, '/sw/pkg');
    assert.deepEqual([...fromTar.entries.keys()].sort(), [...fromDisk.entries.keys()].sort(), 'same names');
    for (const [path, expected] of fromDisk.entries) assert.deepEqual(fromTar.entries.get(path), expected, `entry ${path}`);
    assert.deepEqual(fromTar.groups, fromDisk.groups);
    assert.deepEqual(fromTar.groups, ['/bin/tool /bin/tool-alias /bin/tool-old']);

    // What the comparison covers, checked once directly so a blind spot in both cannot pass.
    const tool = fromTar.entries.get('/bin/tool-old')!;
    assert.equal(tool.linkcount, 3);
    assert.equal(tool.mode, '100755');
    assert.equal(fromTar.entries.get('/data/libx-copy.so')!.linkcount, 1);
    assert.equal(fromTar.entries.get('/data/big.bin')!.chunked, true);
    assert.equal(fromTar.entries.get('/data/pipe')!.mode, '10644');
    assert.equal(fromTar.entries.get('/bin/tool-link')!.symlink, 'tool');
    assert.equal(fromTar.entries.get('/nest')!.mountpoint, true);
    assert.equal(fromTar.entries.get('/README')!.mtimeNs, 250_000_000);
    if (XATTRS) {
      assert.equal(fromTar.entries.get('/lib/libx.so')!.xattrs, JSON.stringify([['user.bin', '00ff10']]));
      assert.equal(fromTar.entries.get('/lib')!.xattrs, JSON.stringify([['user.dir', Buffer.from('a directory').toString('hex')]]));
    }

    const report = await verifyRepository(readerB);
    assert.equal(report.revision, 2);
    assert.ok(report.catalogs >= 2);
  } finally {
    await serverA.close();
    await serverB.close();
  }
});

test('character and block devices get glibc makedev sizes', async () => {
  const work = tempDir('ingest-dev');
  const { store, keys } = await newRepo(join(work, 'store'));
  const pack = tarStream.pack();
  pack.entry({ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 });
  pack.entry({ name: 'dev/big', type: 'block-device', devmajor: 4100, devminor: 70000, mode: 0o660 });
  pack.finalize();
  await ingestTarball(store, pack as unknown as Readable, { fqrn: FQRN, keys, path: '/d' });
  const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  assert.equal((await reader.stat('/d/dev/null'))!.size, 0x103);
  assert.equal((await reader.stat('/d/dev/big'))!.size, makedev(4100, 70000));
  // glibc: major 0x1004 splits into 0x1000 << 32 and 0x004 << 8; minor 0x11170 into 0x11100 << 12 and 0x70.
  assert.equal(makedev(4100, 70000), (0x1000 * 2 ** 32) + (0x004 << 8) + (0x11100 << 12) + 0x70);
  assert.equal((await reader.stat('/d/dev'))!.mode & 0o777, 0o755, 'a parent the archive does not list: mode 0755');
});

// ---- through the real command line ----------------------------------------------------------------

interface CliRepo {
  dir: string;
  store: string;
  keys: string;
  cli: (args: string[], input?: Buffer) => { status: number | null; stdout: string; stderr: string };
  manifest: () => Buffer;
  reader: () => Promise<RepositoryReader>;
}

function cliRepo(name: string): CliRepo {
  const dir = tempDir(name);
  const store = join(dir, 'store');
  const keys = join(dir, 'keys');
  const cli = (args: string[], input?: Buffer) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { input: input ?? Buffer.alloc(0), encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const init = cli(['init', FQRN, '--store', store, '--keys', keys]);
  assert.equal(init.status, 0, init.stderr);
  return {
    dir, store, keys, cli,
    manifest: () => readFileSync(join(store, MANIFEST_KEY)),
    reader: async () => RepositoryReader.open(new FsStore(store), { fqrn: FQRN, publicKeys: [readFileSync(join(keys, `${FQRN}.pub`), 'utf8')] }),
  };
}

function ingestArgs(repo: CliRepo, ...rest: string[]): string[] {
  return ['ingest', FQRN, ...rest, '--store', repo.store, '--keys', repo.keys, '-q'];
}

async function packed(entries: { name: string; body?: string | Buffer; type?: tarStream.Header['type']; linkname?: string }[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.type === 'directory' ? 0o755 : 0o644 }, e.body ?? '');
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

test('CLI: ingest from stdin, replace and keep, target metadata, --delete', async () => {
  const repo = cliRepo('ingest-cli');
  const src = join(repo.dir, 'src');
  mkdirSync(join(src, 'etc'), { recursive: true });
  writeFileSync(join(src, 'etc/a.conf'), 'a=1\n');
  writeFileSync(join(src, 'etc/b.conf'), 'b=1\n');
  chmodSync(src, 0o750);
  utimesSync(src, 1_600_000_000, 1_600_000_000);
  const first = execFileSync('tar', ['--format=posix', '-C', src, '-czf', '-', '.']);
  let r = repo.cli(ingestArgs(repo, '-', '--path', '/sw/app'), first);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ingested standard input into ingest\.example\.org:\/sw\/app, revision 2/);
  assert.match(r.stdout, /entries: 4 read \(2 files, 2 directories, 0 symlinks, 0 hard links, 0 special\); 2 directories created/);
  assert.match(r.stdout, /store requests: \d+/);

  // A second archive replaces b.conf and adds c.conf; a.conf, not in it, stays.
  const second = await packed([{ name: 'etc/b.conf', body: 'b=2\n' }, { name: './etc/c.conf', body: 'c=1\n' }]);
  r = repo.cli(ingestArgs(repo, '-', '--path', 'sw/app/'), second);
  assert.equal(r.status, 0, r.stderr);
  let reader = await repo.reader();
  assert.equal(reader.manifest.revision, 3);
  assert.equal((await reader.readFile('/sw/app/etc/a.conf')).toString(), 'a=1\n');
  assert.equal((await reader.readFile('/sw/app/etc/b.conf')).toString(), 'b=2\n');
  assert.equal((await reader.readFile('/sw/app/etc/c.conf')).toString(), 'c=1\n');
  const app = (await reader.stat('/sw/app'))!;
  assert.equal(app.mode & 0o7777, 0o750, "the archive's './' entry sets the target's metadata");
  assert.equal(app.mtime, 1_600_000_000);

  // --delete without a tarball; then --delete together with one, in one revision.
  r = repo.cli(ingestArgs(repo, '--delete', '/sw/app/etc/a.conf'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /deleted: 1 of 1 paths/);
  r = repo.cli(ingestArgs(repo, '--delete', '/sw/app/etc', '-', '--path', '/sw/app/etc', '--delete', 'sw/old'),
    await packed([{ name: 'only.conf', body: 'only\n' }]));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /--delete \/sw\/old: not in the repository/);
  reader = await repo.reader();
  assert.equal(reader.manifest.revision, 5);
  assert.deepEqual((await reader.list('/sw/app/etc')).map((e) => e.name), ['only.conf'], 'deleted first, then unpacked');
  assert.equal((await verifyRepository(reader)).revision, 5);

  // --delete refuses the root and '..' and changes nothing.
  const before = repo.manifest();
  for (const bad of ['/', '/sw/../etc']) {
    r = repo.cli(ingestArgs(repo, '--delete', bad));
    assert.equal(r.status, 3, `--delete ${bad} must fail`);
    assert.match(r.stderr, /scvmfs: error: .*(root|'\.\.')/);
    assert.ok(repo.manifest().equals(before));
  }
  r = repo.cli(ingestArgs(repo));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /needs a tarball/);
  r = repo.cli(ingestArgs(repo, '-'));
  assert.match(r.stderr, /needs --path/);
});

test('CLI: bad archives are refused with a clear error and the manifest bytes unchanged', async () => {
  const repo = cliRepo('ingest-bad');
  const good = await packed([{ name: 'bin/tool', body: 'tool\n' }, { name: 'README', body: 'x' }]);
  let r = repo.cli(ingestArgs(repo, '-', '--path', '/sw/pkg'), good);
  assert.equal(r.status, 0, r.stderr);

  const src = join(repo.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'first'), 'first\n');
  writeFileSync(join(src, 'middle.bin'), randomBytes(300_000));
  writeFileSync(join(src, 'last'), 'last\n');
  const whole = execFileSync('tar', ['--format=posix', '-C', src, '-cf', '-', 'first', 'middle.bin', 'last']);
  const middleAt = whole.indexOf(Buffer.from('middle.bin'));
  const truncated = whole.subarray(0, middleAt + 150_000);
  const truncatedGz = execFileSync('gzip', ['-c'], { input: whole }).subarray(0, 2000);

  const cases: { what: string; input: Buffer; error: RegExp }[] = [
    { what: "a '../' member", input: await packed([{ name: 'ok', body: '1' }, { name: '../escape', body: 'x' }]), error: /'\.\.\/escape'.*outside the target/ },
    { what: 'an absolute path outside the target', input: await packed([{ name: '/etc/passwd', body: 'x' }]), error: /'\/etc\/passwd'.*outside the target/ },
    { what: 'a tarball cut inside a member', input: truncated, error: /truncated/ },
    { what: 'a .tar.gz cut short', input: truncatedGz, error: /truncated/ },
    { what: 'a name longer than 255 bytes', input: await packed([{ name: `dir/${'n'.repeat(300)}`, body: 'x' }]), error: /longer than 255 bytes/ },
    { what: 'a member below a file of the archive', input: await packed([{ name: 'a', body: 'file' }, { name: 'a/b', body: 'x' }]), error: /'\/sw\/pkg\/a' is a regular file/ },
    { what: 'a member below a file of the repository', input: await packed([{ name: 'bin/tool/x', body: 'x' }]), error: /'\/sw\/pkg\/bin\/tool' is a regular file/ },
    { what: 'a directory below a symlink of the archive', input: await packed([{ name: 'l', type: 'symlink', linkname: '/tmp' }, { name: 'l/d/', type: 'directory' }]), error: /'\/sw\/pkg\/l' is a symlink/ },
    { what: 'a non-file catalog marker', input: await packed([{ name: 'x/.cvmfscatalog', type: 'directory' }]), error: /marker must be a regular file/ },
    { what: 'not a tarball at all', input: Buffer.from('hello, this is not a tar archive\n'.repeat(100)), error: /not a tar archive|bad header/ },
  ];
  const before = repo.manifest();
  for (const c of cases) {
    r = repo.cli(ingestArgs(repo, '-', '--path', '/sw/pkg'), c.input);
    assert.equal(r.status, 3, `${c.what}: exit status (stdout ${r.stdout})`);
    assert.match(r.stderr, /^scvmfs: error: /m, c.what);
    assert.match(r.stderr, c.error, `${c.what}: ${r.stderr}`);
    assert.ok(repo.manifest().equals(before), `${c.what}: manifest unchanged`);
  }
  // A missing file is named; the repository still takes a good archive afterwards (no lock left behind).
  r = repo.cli(ingestArgs(repo, join(repo.dir, 'missing.tar'), '--path', '/sw/pkg'));
  assert.match(r.stderr, /cannot read tarball .*missing\.tar: no such file/);
  const file = join(repo.dir, 'good.tar');
  writeFileSync(file, whole);
  r = repo.cli(ingestArgs(repo, file, '--path', '/sw/pkg'));
  assert.equal(r.status, 0, r.stderr);
  const reader = await repo.reader();
  assert.equal(reader.manifest.revision, 3);
  assert.equal((await reader.readFile('/sw/pkg/middle.bin')).length, 300_000);
  assert.equal((await reader.readFile('/sw/pkg/bin/tool')).toString(), 'tool\n');
  await verifyRepository(reader);
});

test('hardlink members replaced or repeated keep their groups consistent', async () => {
  const work = tempDir('ingest-links');
  const { store, keys } = await newRepo(join(work, 'store'));
  const input = await packed([
    { name: 'd/a', body: 'one' },
    { name: 'd/b', type: 'link', linkname: 'd/a' },
    { name: 'd/c', type: 'link', linkname: 'd/a' },
    { name: 'd/c', body: 'replaced' }, // an appended archive: the later member wins and leaves the group
    { name: 'e/x', body: 'two' },
    { name: 'e/y', type: 'link', linkname: 'e/x' },
  ]);
  await ingestTarball(store, Readable.from(input), { fqrn: FQRN, keys, path: '/' });
  const reader = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  const [a, b, c] = await Promise.all(['/d/a', '/d/b', '/d/c'].map(async (p) => (await reader.stat(p))!));
  assert.equal(a!.linkcount, 2);
  assert.equal(b!.linkcount, 2);
  assert.equal(a!.hardlinkGroup, b!.hardlinkGroup);
  assert.notEqual(a!.hardlinkGroup, 0);
  assert.equal(c!.hardlinkGroup, 0);
  assert.equal((await reader.readFile('/d/c')).toString(), 'replaced');
  assert.equal((await reader.readFile('/d/b')).toString(), 'one');

  // Deleting one member of a two-name group leaves a plain file behind.
  await ingestTarball(store, null, { fqrn: FQRN, keys, deletePaths: ['/e/y'] });
  const after = await RepositoryReader.open(store, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  const x = (await after.stat('/e/x'))!;
  assert.equal(x.linkcount, 1);
  assert.equal(x.hardlinkGroup, 0);
  await verifyRepository(after);
});
