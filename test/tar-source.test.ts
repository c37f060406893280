// Tarball reading for `scvmfs ingest`: archives made by the system's GNU tar and, for what tar will not
// write, by tar-stream's packer; each read back as repository entries under a target directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { readTarEntries, type TarEntry } from '../src/publish/tar-source.js';
import { tempDir } from './helpers.js';

type Read = Omit<TarEntry, 'content'> & { data?: string };

function hasTool(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}
const NO_ATTR = hasTool('setfattr') ? false : 'setfattr/getfattr not installed (Debian package attr)';

/** GNU tar's output for `members` of `dir`. */
function gnuTar(dir: string, args: string[], members = ['.']): Buffer {
  return execFileSync('tar', ['-C', dir, ...args, '-cf', '-', ...members], { maxBuffer: 64 << 20 });
}

async function packed(members: { header: Partial<Header> & { name: string }; data?: string }[]): Promise<Buffer> {
  const p = pack();
  const out: Buffer[] = [];
  const done = (async () => { for await (const c of p) out.push(Buffer.from(c as Uint8Array)); })();
  for (const m of members) p.entry(m.header, m.data ?? '');
  p.finalize();
  await done;
  return Buffer.concat(out);
}

/** The bytes as a stream in small pieces, as stdin delivers them. */
function trickle(bytes: Buffer): Readable {
  const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 2), bytes.subarray(2, 700)];
  for (let i = 700; i < bytes.length; i += 4096) pieces.push(bytes.subarray(i, i + 4096));
  return Readable.from(pieces.filter((p) => p.length > 0));
}

async function readAll(bytes: Buffer | Readable, target = '/sw/pkg'): Promise<Read[]> {
  const out: Read[] = [];
  const input = Buffer.isBuffer(bytes) ? Readable.from([bytes]) : bytes;
  for await (const { content, ...rest } of readTarEntries(input, { target })) {
    const e: Read = { ...rest };
    if (content) {
      const parts: Buffer[] = [];
      for await (const c of content) parts.push(c as Buffer);
      e.data = Buffer.concat(parts).toString('utf8');
    }
    out.push(e);
  }
  return out;
}

function byPath(entries: Read[]): Map<string, Read> {
  return new Map(entries.map((e) => [e.path, e]));
}

function sampleTree(): string {
  const dir = tempDir('tarsrc');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  writeFileSync(join(dir, 'readme'), 'read me');
  linkSync(join(dir, 'readme'), join(dir, 'bin', 'readme-again'));
  symlinkSync('../readme', join(dir, 'bin', 'link'));
  mkfifoSync(join(dir, 'pipe'));
  return dir;
}

function mkfifoSync(path: string): void {
  execFileSync('mkfifo', [path]);
}

test('GNU tar members arrive under the target with kind, full mode, content and link targets', async () => {
  const dir = sampleTree();
  const entries = byPath(await readAll(gnuTar(dir, [])));
  assert.deepEqual([...entries.keys()].sort(), ['/sw/pkg', '/sw/pkg/bin', '/sw/pkg/bin/link', '/sw/pkg/bin/readme-again',
    '/sw/pkg/bin/tool', '/sw/pkg/pipe', '/sw/pkg/readme']);
  assert.equal(entries.get('/sw/pkg')!.kind, 'directory');
  assert.equal(entries.get('/sw/pkg/bin')!.mode, 0o040000 | (lstatSync(join(dir, 'bin')).mode & 0o7777));
  const tool = entries.get('/sw/pkg/bin/tool')!;
  assert.equal(tool.kind, 'file');
  assert.equal(tool.mode, 0o100755);
  assert.equal(tool.data, '#!/bin/sh\necho hi\n');
  assert.equal(tool.size, 18);
  assert.equal(tool.mtime, Math.floor(lstatSync(join(dir, 'bin', 'tool')).mtimeMs / 1000));
  const link = entries.get('/sw/pkg/bin/link')!;
  assert.deepEqual([link.kind, link.mode & 0o170000, link.linkTarget, link.size], ['symlink', 0o120000, '../readme', 9]);
  const pipe = entries.get('/sw/pkg/pipe')!;
  assert.deepEqual([pipe.kind, pipe.mode & 0o170000], ['fifo', 0o010000]);
  // GNU tar stores whichever name of the pair it meets first as the file, the other as the hardlink.
  const pair = [entries.get('/sw/pkg/readme')!, entries.get('/sw/pkg/bin/readme-again')!];
  const file = pair.find((e) => e.kind === 'file')!;
  const hard = pair.find((e) => e.kind === 'hardlink')!;
  assert.equal(file.data, 'read me');
  assert.equal(hard.linkTarget, file.path);
  assert.equal(hard.mode, file.mode);
  assert.equal(hard.data, undefined);
});

test('gzip is recognised by its magic bytes, also when the input arrives a byte at a time', async () => {
  const plain = gnuTar(sampleTree(), []);
  const expected = await readAll(plain);
  assert.deepEqual(await readAll(gzipSync(plain)), expected);
  assert.deepEqual(await readAll(trickle(gzipSync(plain))), expected);
  assert.deepEqual(await readAll(trickle(plain)), expected);
});

test('the target may be the repository root', async () => {
  const entries = await readAll(gnuTar(sampleTree(), []), '/');
  assert.ok(entries.some((e) => e.path === '' && e.kind === 'directory'));
  assert.ok(entries.some((e) => e.path === '/bin/tool'));
});

test('names, symlink targets and hardlink names longer than 100 bytes, in GNU and pax formats', async () => {
  const dir = tempDir('tarlong');
  const deep = join('d'.repeat(60), 'e'.repeat(60), 'f'.repeat(70));
  mkdirSync(join(dir, deep), { recursive: true });
  writeFileSync(join(dir, deep, 'file-' + 'x'.repeat(120)), 'long');
  linkSync(join(dir, deep, 'file-' + 'x'.repeat(120)), join(dir, deep, 'hard-' + 'y'.repeat(120)));
  symlinkSync('t'.repeat(150), join(dir, 'sym'));
  for (const format of ['gnu', 'posix']) {
    const entries = byPath(await readAll(gnuTar(dir, [`--format=${format}`], ['sym', 'd'.repeat(60)])));
    const file = [...entries.values()].find((e) => e.path.includes('file-'))!;
    const hard = [...entries.values()].find((e) => e.path.includes('hard-'))!;
    assert.equal(file.path, `/sw/pkg/${deep}/file-${'x'.repeat(120)}`, format);
    assert.equal(file.data, 'long');
    assert.equal(hard.kind, 'hardlink');
    assert.equal(hard.linkTarget, file.path);
    assert.equal(entries.get('/sw/pkg/sym')!.linkTarget, 't'.repeat(150));
  }
});

test('pax mtime fractions become nanoseconds', async () => {
  const dir = tempDir('tarns');
  writeFileSync(join(dir, 'f'), 'x');
  execFileSync('touch', ['-d', '2021-03-04 05:06:07.123456789', join(dir, 'f')]);
  const [, f] = await readAll(gnuTar(dir, ['--format=posix']));
  const st = lstatSync(join(dir, 'f'), { bigint: true });
  assert.equal(f!.mtime, Number(st.mtimeNs / 1_000_000_000n));
  assert.equal(f!.mtimeNs, 123456789);
  const [neg] = await readAll(await packed([{ header: { name: 'n', pax: { mtime: '-1.25' } }, data: '' }]));
  assert.deepEqual([neg!.mtime, neg!.mtimeNs], [-2, 750000000]);
});

test('user xattrs from GNU tar --xattrs arrive byte-exact; other namespaces are dropped', { skip: NO_ATTR }, async () => {
  const dir = tempDir('tarxattr');
  writeFileSync(join(dir, 'f'), 'x');
  mkdirSync(join(dir, 'd'));
  execFileSync('setfattr', ['-n', 'user.binary', '-v', '0x00ff0a3d25', join(dir, 'f')]);
  execFileSync('setfattr', ['-n', 'user.text', '-v', 'héllo', join(dir, 'f')]);
  execFileSync('setfattr', ['-n', 'user.odd=name%', '-v', 'v', join(dir, 'd')]);
  for (const args of [['--xattrs'], ['--xattrs', '--format=posix'], ['--xattrs', '-z']]) {
    const entries = byPath(await readAll(gnuTar(dir, args)));
    assert.deepEqual(entries.get('/sw/pkg/f')!.xattrs, new Map([
      ['user.binary', Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x25])], ['user.text', Buffer.from('héllo')]]), args.join(' '));
    assert.deepEqual(entries.get('/sw/pkg/d')!.xattrs, new Map([['user.odd=name%', Buffer.from('v')]]));
    assert.equal(entries.get('/sw/pkg')!.xattrs.size, 0);
  }
});

test('a pax global header gives its xattrs to every member', async () => {
  const dir = tempDir('targlobal');
  writeFileSync(join(dir, 'a'), 'a');
  writeFileSync(join(dir, 'b'), 'b');
  const bytes = gnuTar(dir, ['--format=posix', '--pax-option=SCHILY.xattr.user.g=gv'], ['a', 'b']);
  assert.ok(bytes.includes('SCHILY.xattr.user.g=gv') && bytes.includes('GlobalHead'), 'GNU tar wrote a global header');
  const entries = await readAll(bytes);
  assert.deepEqual(entries.map((e) => [e.path, e.xattrs.get('user.g')?.toString()]), [['/sw/pkg/a', 'gv'], ['/sw/pkg/b', 'gv']]);
});

test('libarchive xattr records are read; non-user namespaces are not', async () => {
  const bytes = await packed([
    { header: { name: 'g', type: 'file', pax: {
      'LIBARCHIVE.xattr.user.a%3Db': Buffer.from([1, 2, 3]).toString('base64'),
      'SCHILY.xattr.security.selinux': 'system_u:object_r:x',
      'SCHILY.xattr.trusted.t': 'x',
      'SCHILY.xattr.user.plain': 'p',
    } }, data: 'g' },
  ]);
  const [g] = await readAll(bytes);
  assert.deepEqual(g!.xattrs, new Map([['user.a=b', Buffer.from([1, 2, 3])], ['user.plain', Buffer.from('p')]]));
});

test('./ prefixes, doubled slashes, inner .., contents before their directory, missing directories', async () => {
  const bytes = await packed([
    { header: { name: './a/b/c', type: 'file' }, data: 'c' },
    { header: { name: 'a//b/', type: 'directory' } },
    { header: { name: 'x/../y', type: 'file' }, data: 'y' },
    { header: { name: './', type: 'directory' } },
    { header: { name: '/sw/pkg/abs', type: 'file' }, data: 'abs' },
  ]);
  const entries = await readAll(bytes);
  assert.deepEqual(entries.map((e) => [e.path, e.kind]), [
    ['/sw/pkg/a/b/c', 'file'], ['/sw/pkg/a/b', 'directory'], ['/sw/pkg/y', 'file'], ['/sw/pkg', 'directory'],
    ['/sw/pkg/abs', 'file']]);
});

test('devices carry major and minor numbers; uid and gid come through', async () => {
  const bytes = await packed([
    { header: { name: 'null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3, uid: 7, gid: 8 } },
    { header: { name: 'sda', type: 'block-device', mode: 0o660, devmajor: 8, devminor: 0 } },
  ]);
  const [c, b] = await readAll(bytes);
  assert.deepEqual([c!.kind, c!.mode, c!.devMajor, c!.devMinor, c!.uid, c!.gid], ['char', 0o020666, 1, 3, 7, 8]);
  assert.deepEqual([b!.kind, b!.mode, b!.devMajor, b!.devMinor], ['block', 0o060660, 8, 0]);
});

test('content the consumer does not read is drained before the next member', async () => {
  const bytes = await packed([
    { header: { name: 'big', type: 'file' }, data: 'z'.repeat(300_000) },
    { header: { name: 'after', type: 'file' }, data: 'after' },
  ]);
  const paths: string[] = [];
  for await (const e of readTarEntries(Readable.from([bytes]), { target: '/t' })) paths.push(e.path);
  assert.deepEqual(paths, ['/t/big', '/t/after']);
});

async function rejects(bytes: Buffer | Readable, pattern: RegExp, target = '/sw/pkg'): Promise<void> {
  await assert.rejects(readAll(bytes, target), pattern);
}

test('names that leave the target, contain NUL or have a component over 255 bytes are refused by name', async () => {
  const one = (name: string) => packed([{ header: { name: 'ok', type: 'file' }, data: '1' }, { header: { name, type: 'file' }, data: 'x' }]);
  await rejects(await one('../x'), /tar entry '\.\.\/x': '\.\.' leads outside the target directory \/sw\/pkg/);
  await rejects(await one('a/../../x'), /tar entry 'a\/\.\.\/\.\.\/x': '\.\.' leads outside/);
  await rejects(await one('/etc/passwd'), /tar entry '\/etc\/passwd': the absolute path lies outside the target/);
  await rejects(await one('/sw/pkgx/f'), /absolute path lies outside/);
  await rejects(await one('d/' + 'n'.repeat(256)), /longer than 255 bytes/);
  await rejects(await packed([{ header: { name: 'a\0b', type: 'file', pax: {} }, data: 'x' }]), /tar entry 'a\\0b': the name contains a NUL byte/);
  await rejects(await packed([{ header: { name: '.', type: 'file' }, data: 'x' }]), /a file cannot replace the target directory/);
  // GNU tar strips a leading '/', so an absolute name can only come from elsewhere; the long-name path
  // is checked too.
  await rejects(await one('x/'.repeat(60) + '../'.repeat(62) + 'y'), /leads outside/);
});

test('hardlinks must point at an earlier member inside the target', async () => {
  const file = { header: { name: 'f', type: 'file' as const }, data: 'f' };
  await rejects(await packed([file, { header: { name: 'h', type: 'link', linkname: 'missing' } }]),
    /tar entry 'h': hard link to 'missing', which is not an earlier non-directory member/);
  await rejects(await packed([{ header: { name: 'h', type: 'link', linkname: 'f' } }, file]), /not an earlier non-directory member/);
  await rejects(await packed([file, { header: { name: 'h', type: 'link', linkname: '../f' } }]), /hard link target '\.\.\/f': '\.\.' leads outside/);
  await rejects(await packed([{ header: { name: 'd', type: 'directory' } }, { header: { name: 'h', type: 'link', linkname: 'd' } }]),
    /not an earlier non-directory member/);
  const chain = await readAll(await packed([file, { header: { name: 'h1', type: 'link', linkname: 'f' } }, { header: { name: 'h2', type: 'link', linkname: 'h1' } }]));
  assert.deepEqual(chain.map((e) => e.linkTarget), ['', '/sw/pkg/f', '/sw/pkg/f']);
});

test('truncated tarballs are refused wherever they are cut, plain and gzip', async () => {
  const dir = sampleTree();
  writeFileSync(join(dir, 'big'), Buffer.alloc(20_000, 7));
  const whole = gnuTar(dir, [], ['readme', 'big', 'bin']);
  const entries = await readAll(whole);
  assert.equal(entries.length, 6);
  // Inside the first header, inside content, exactly after a member (block boundary), and just before
  // the end-of-archive blocks.
  const bigData = whole.indexOf(Buffer.alloc(512, 7));
  const afterBig = bigData + Math.ceil(20_000 / 512) * 512;
  for (const cut of [100, 700, bigData + 3000, afterBig]) {
    await rejects(whole.subarray(0, cut), /truncated|not a tarball/, '/sw/pkg');
  }
  const gz = gzipSync(whole);
  for (const cut of [10, Math.floor(gz.length / 2), gz.length - 4]) {
    await rejects(gz.subarray(0, cut), /truncated|unexpected end/i);
  }
});

test('the last member cut off after its content, with no end-of-archive blocks, is refused', async () => {
  const bytes = await packed([{ header: { name: 'f', type: 'file' }, data: 'x'.repeat(512) }]);
  await rejects(bytes.subarray(0, 1024), /does not end with the end-of-archive blocks/);
});

test('garbage, empty input and other compressors get a clear message', async () => {
  await rejects(Buffer.from('hello, this is not a tarball\n'.repeat(100)), /not a tar archive, or a corrupt one/);
  await rejects(Buffer.alloc(0), /the input is empty/);
  await rejects(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2]), /xz-compressed/);
  await rejects(Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(100, 1)]), /gzip/);
});
