// `serve` never follows a symbolic link out of the served tree or into the control area, and streams
// objects: its memory does not grow with object size or with the number of parallel downloads.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveStore } from '../src/serve/http-server.js';
import { FsStore } from '../src/store/fs-store.js';
import { TEST_SOURCE_DIR, tempDir } from './helpers.js';

const MANIFEST = 'Cabc\nB1234\nRd41d8cd98f00b204e9800998ecf8427e\nNtest.repo\n';
const POLICY = '{"secret":"publisher policy and keys"}';
const OUTSIDE = 'TOPSECRET outside the store';
const key = (c: string) => `data/${c}${c}/${c.repeat(38)}`;
const MiB = 1 << 20;

interface Reply { status: number; body: Buffer; headers: http.IncomingHttpHeaders }

function request(port: number, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), headers: res.headers }));
    }).on('error', reject).end();
  });
}

/** A store with a real object, control data, a file outside, and links from public names to both. */
async function linkedStore(t: TestContext) {
  const work = tempDir('serve-links');
  const root = join(work, 'repo');
  const store = new FsStore(root);
  await store.put('.cvmfspublished', Buffer.from(MANIFEST));
  await store.put(key('a'), Buffer.from('a real object'));
  await store.put('.scvmfs/publishers.json', Buffer.from(POLICY));
  await writeFile(join(work, 'secret'), OUTSIDE);
  await mkdir(join(work, 'elsewhere'));
  await writeFile(join(work, 'elsewhere', 'c'.repeat(38)), OUTSIDE);
  await mkdir(join(root, 'data', 'bb'), { recursive: true });
  // A file link into the control area, one out of the store, a directory link, a link at the top.
  await symlink('../../.scvmfs/publishers.json', join(root, key('b')));
  await symlink(join(work, 'secret'), join(root, 'data', 'bb', 'd'.repeat(38)));
  await symlink(join(work, 'elsewhere'), join(root, 'data', 'cc'));
  await symlink(join(work, 'secret'), join(root, '.cvmfswhitelist'));
  await mkdir(join(root, 'data', 'ee'));
  await symlink(`../aa/${'a'.repeat(38)}`, join(root, 'data', 'ee', 'e'.repeat(38)));
  const server = await serveStore(store);
  t.after(() => server.close());
  const manifest = await readFile(join(root, '.cvmfspublished'));
  return { work, root, store, server, manifest };
}

const LINKED = [key('b'), `data/bb/${'d'.repeat(38)}`, key('c'), '.cvmfswhitelist', `data/ee/${'e'.repeat(38)}`];

test('serve answers 404 for links into .scvmfs/ or out of the store and never sends their target', async (t) => {
  const { root, server, manifest } = await linkedStore(t);
  const good = await request(server.port, `/${key('a')}`);
  assert.equal(good.status, 200);
  assert.equal(good.body.toString(), 'a real object');
  for (const k of LINKED) {
    for (const method of ['GET', 'HEAD']) {
      const r = await request(server.port, `/${k}`, method);
      assert.equal(r.status, 404, `${method} ${k}`);
      assert.ok(!r.body.toString().includes('secret') && !r.body.toString().includes('TOPSECRET'), `${method} ${k}`);
    }
    const ranged = await request(server.port, `/${k}`, 'GET', { Range: 'bytes=0-' });
    assert.equal(ranged.status, 404, `ranged ${k}`);
  }
  assert.ok((await readFile(join(root, '.cvmfspublished'))).equals(manifest));
});

test('the fs store treats a link anywhere on a key\'s path as no object (get, getStream, head)', async (t) => {
  const { store } = await linkedStore(t);
  for (const k of LINKED) {
    assert.equal(await store.get(k), null, k);
    assert.equal(await store.getStream(k), null, k);
    assert.equal(await store.head(k), null, k);
  }
  assert.equal((await store.get(key('a')))?.body.toString(), 'a real object');
});

test('a store whose root directory is reached through a link is still served', async (t) => {
  const work = tempDir('serve-root-link');
  const real = new FsStore(join(work, 'real'));
  await real.put(key('a'), Buffer.from('object'));
  await symlink(join(work, 'real'), join(work, 'via-link'));
  const server = await serveStore(new FsStore(join(work, 'via-link')));
  t.after(() => server.close());
  assert.equal((await request(server.port, `/${key('a')}`)).body.toString(), 'object');
});

/** Writes `mib` MiB of random-looking bytes in 1 MiB steps; returns their MD5. */
async function writeBigFile(file: string, mib: number): Promise<string> {
  const out = createWriteStream(file);
  const md5 = createHash('md5');
  const block = randomBytes(MiB);
  for (let i = 0; i < mib; i++) {
    block.writeUInt32LE(i, 0);
    md5.update(block);
    if (!out.write(block)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return md5.digest('hex');
}

/** `scvmfs serve`'s code in a child process of its own, so its peak RSS is its alone. */
async function serveInChild(t: TestContext, spec: string): Promise<{ child: ChildProcess; port: number }> {
  const dist = join(TEST_SOURCE_DIR, '..', 'dist', 'src');
  const script = join(tempDir('serve-child'), 'serve.mjs');
  await writeFile(script, `
    import { serveStore } from ${JSON.stringify(pathToFileURL(join(dist, 'serve', 'http-server.js')).href)};
    import { openStore } from ${JSON.stringify(pathToFileURL(join(dist, 'store', 'open-store.js')).href)};
    const server = await serveStore(openStore(process.argv[2]));
    console.log(server.port);
  `);
  const child = spawn(process.execPath, [script, spec], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { child.kill(); });
  const [line] = await once(child.stdout!, 'data') as [Buffer];
  return { child, port: Number(line.toString().trim()) };
}

function peakRssMb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmHWM:\s+(\d+) kB/.exec(s)![1]) / 1024);
}

/** GETs `path` and hashes the body as it arrives (nothing kept here either). */
function download(port: number, path: string): Promise<{ status: number; bytes: number; md5: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const md5 = createHash('md5');
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; md5.update(c); });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, md5: md5.digest('hex') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function eightParallelDownloads(t: TestContext, spec: string, objectKey: string, md5: string, mib: number) {
  const { child, port } = await serveInChild(t, spec);
  const before = await peakRssMb(child.pid!);
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 8 }, () => download(port, `/${objectKey}`)));
  const seconds = (Date.now() - started) / 1000;
  for (const r of results) assert.deepEqual(r, { status: 200, bytes: mib * MiB, md5 });
  const peak = await peakRssMb(child.pid!);
  t.diagnostic(`8 x ${mib} MiB from ${spec.split('?')[0]} in ${seconds.toFixed(1)} s; server peak RSS ${peak.toFixed(0)} MB (${before.toFixed(0)} MB at start)`);
  assert.ok(peak < 200, `the server reached ${peak.toFixed(0)} MB serving 8 x ${mib} MiB`);
}

test('eight parallel GETs of a 200 MB object keep the server below 200 MB RSS (fs store)', { timeout: 300_000 }, async (t) => {
  const work = tempDir('serve-big');
  const objectKey = key('f');
  await mkdir(join(work, 'data', 'ff'), { recursive: true });
  const md5 = await writeBigFile(join(work, objectKey), 200);
  await eightParallelDownloads(t, work, objectKey, md5, 200);
});

test('eight parallel GETs of a 200 MB object keep the server below 200 MB RSS (S3 store)', { timeout: 300_000 }, async (t) => {
  const { freshBucket } = await import('./s3-env.js');
  const bucket = await freshBucket('serve-big');
  const file = join(tempDir('serve-big-s3'), 'big');
  const md5 = await writeBigFile(file, 200);
  const objectKey = key('f');
  await bucket.store().put(objectKey, await readFile(file));
  await eightParallelDownloads(t, bucket.url(), objectKey, md5, 200);
});

test('ranges, HEAD and caching headers are the same when serving from S3', async (t) => {
  const { freshBucket } = await import('./s3-env.js');
  const bucket = await freshBucket('serve-ranges');
  const store = bucket.store();
  const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
  await store.put(key('a'), data);
  await store.put('.cvmfspublished', Buffer.from(MANIFEST));
  const server = await serveStore(store);
  t.after(() => server.close());
  const whole = await request(server.port, `/${key('a')}`);
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.body, data);
  assert.equal(whole.headers['cache-control'], 'public, max-age=259200, immutable');
  assert.equal(whole.headers['content-length'], '100');
  assert.equal(whole.headers.etag, `"${createHash('md5').update(data).digest('hex')}"`);
  assert.equal((await request(server.port, '/.cvmfspublished')).headers['cache-control'], 'public, max-age=61');
  for (const [range, start, end] of [['bytes=10-19', 10, 19], ['bytes=90-', 90, 99], ['bytes=-5', 95, 99],
    ['bytes=95-1000', 95, 99], ['bytes=-500', 0, 99], ['bytes=0-0', 0, 0]] as const) {
    const r = await request(server.port, `/${key('a')}`, 'GET', { Range: range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/100`, range);
    assert.deepEqual(r.body, data.subarray(start, end + 1), range);
  }
  for (const range of ['bytes=100-', 'bytes=-0']) {
    const r = await request(server.port, `/${key('a')}`, 'GET', { Range: range });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], 'bytes */100', range);
  }
  const head = await request(server.port, `/${key('a')}`, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '100');
  assert.equal((await request(server.port, `/${key('b')}`)).status, 404);
});
