import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { serveStore, type ServeOptions } from '../src/serve/http-server.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ObjectStore } from '../src/store/object-store.js';

const MANIFEST = 'Cabc\nB1234\nRd41d8cd98f00b204e9800998ecf8427e\nNtest.repo\n';
/** A SHA-1 object name: two hex digits of directory, 38 of file name. */
const DATA_KEY = `data/ab/${'cd'.repeat(19)}`;
const DATA = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/** Raw HTTP, so request paths reach the server exactly as written (fetch would normalise `..`). */
function request(port: number, method: string, requestPath: string, headers: Record<string, string> = {},
  agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: requestPath, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function setup(t: TestContext, options: ServeOptions = {}, wrap?: (s: ObjectStore) => ObjectStore) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'scvmfs-serve-'));
  const root = path.join(dir, 'repo');
  const store = new FsStore(root);
  await store.put('.cvmfspublished', Buffer.from(MANIFEST));
  await store.put(DATA_KEY, DATA);
  await store.put('.scvmfs/lease', Buffer.from('control data'));
  await writeFile(path.join(dir, 'secret'), 'TOPSECRET');
  const server = await serveStore(wrap ? wrap(store) : store, options);
  t.after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { server, store, get: (p: string, h?: Record<string, string>) => request(server.port, 'GET', p, h) };
}

test('GET of the manifest sends it whole with the short-lived x-cvmfs headers', async (t) => {
  const { server, get } = await setup(t);
  assert.equal(server.url, `http://127.0.0.1:${server.port}`);
  const r = await get('/.cvmfspublished');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), MANIFEST);
  assert.equal(r.headers['content-type'], 'application/x-cvmfs');
  assert.equal(r.headers['cache-control'], 'public, max-age=61');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['content-length'], String(MANIFEST.length));
  assert.equal(r.headers['content-encoding'], undefined);
});

test('GET of a data object sends its bytes as immutable octet-stream', async (t) => {
  const { get } = await setup(t);
  const r = await get(`/${DATA_KEY}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, DATA);
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.equal(r.headers['cache-control'], 'public, max-age=259200, immutable');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['content-length'], '100');
  assert.equal(r.headers['content-encoding'], undefined);
});

test('the query string is ignored and percent-encoded names are decoded', async (t) => {
  const { get } = await setup(t);
  assert.equal((await get('/.cvmfspublished?nocache=123')).body.toString(), MANIFEST);
  assert.equal((await get('/%2Ecvmfspublished')).body.toString(), MANIFEST);
  assert.deepEqual((await get(`/${DATA_KEY.replaceAll('/', '%2F')}`)).body, DATA);
});

test('HEAD sends the GET headers without a body', async (t) => {
  const { server } = await setup(t);
  const r = await request(server.port, 'HEAD', `/${DATA_KEY}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 0);
  assert.equal(r.headers['content-length'], '100');
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal((await request(server.port, 'HEAD', '/.cvmfswhitelist')).status, 404);
  // RFC 7233: Range only applies to GET.
  assert.equal((await request(server.port, 'HEAD', `/${DATA_KEY}`, { Range: 'bytes=0-9' })).status, 200);
});

test('missing objects are 404 and not cacheable, so a later publish is seen', async (t) => {
  const { get } = await setup(t);
  for (const p of ['/.cvmfswhitelist', `/data/ab/${'00'.repeat(19)}`, `/data/00/${'cd'.repeat(19)}C`, '/data/zz/cdef']) {
    const r = await get(p);
    assert.equal(r.status, 404, p);
    assert.equal(r.headers['cache-control'], 'no-store', p);
    assert.ok(r.body.length > 0);
  }
  assert.equal((await get('/')).status, 404);
  assert.equal((await get('')).status, 404);
  assert.equal((await get('/data/ab/')).status, 404);
});

test('control data is never served, even though the file exists', async (t) => {
  const { store, get } = await setup(t);
  assert.ok(await store.head('.scvmfs/lease'));
  for (const p of ['/.scvmfs/lease', '/%2Escvmfs/lease', '/.scvmfs%2Flease', '/.scvmfs/', '/.scvmfs']) {
    const r = await get(p);
    assert.equal(r.status, 404, p);
    assert.ok(!r.body.toString().includes('control data'), p);
  }
});

test('paths that climb out of the repository are refused', async (t) => {
  const { get } = await setup(t);
  const attempts = ['/../secret', '/data/../../secret', '/data/../.scvmfs/lease', '/%2e%2e/secret',
    '/%2E%2E%2Fsecret', '/data%2f..%2f..%2fsecret', '/..%5csecret', '/data\\..\\..\\secret', '/%00',
    '/.cvmfspublished%00', '/%2', '/%E0%A4%A', '/../../../../etc/passwd', '/%252e%252e/secret'];
  for (const p of attempts) {
    const r = await get(p);
    assert.ok(r.status === 400 || r.status === 404, `${p} -> ${r.status}`);
    assert.ok(!r.body.toString().includes('TOPSECRET'), p);
    assert.ok(!r.body.toString().includes('root:'), p);
  }
});

test('single byte ranges get 206 with Content-Range', async (t) => {
  const { get } = await setup(t);
  const cases: [string, number, number][] = [['bytes=10-19', 10, 19], ['bytes=90-', 90, 99],
    ['bytes=-5', 95, 99], ['bytes=95-1000', 95, 99], ['bytes=-500', 0, 99], ['bytes=0-0', 0, 0]];
  for (const [range, start, end] of cases) {
    const r = await get(`/${DATA_KEY}`, { Range: range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/100`, range);
    assert.deepEqual(r.body, DATA.subarray(start, end + 1), range);
    assert.equal(r.headers['content-length'], String(end - start + 1), range);
  }
});

test('unsatisfiable ranges get 416 with the total size', async (t) => {
  const { get } = await setup(t);
  for (const range of ['bytes=100-', 'bytes=100-200', 'bytes=-0']) {
    const r = await get(`/${DATA_KEY}`, { Range: range });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], 'bytes */100', range);
  }
});

test('multi-range and malformed Range headers are ignored and the whole object sent', async (t) => {
  const { get } = await setup(t);
  for (const range of ['bytes=0-1,5-6', 'bytes=5-2', 'items=0-5', 'bytes=-', 'bytes=a-b', 'bytes 0-5']) {
    const r = await get(`/${DATA_KEY}`, { Range: range });
    assert.equal(r.status, 200, range);
    assert.deepEqual(r.body, DATA, range);
    assert.equal(r.headers['content-range'], undefined, range);
  }
  const ifRange = await get(`/${DATA_KEY}`, { Range: 'bytes=0-1', 'If-Range': '"stale"' });
  assert.equal(ifRange.status, 200);
});

test('methods other than GET and HEAD get 405 with Allow', async (t) => {
  const { server, store } = await setup(t);
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const r = await request(server.port, method, '/.cvmfspublished');
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.allow, 'GET, HEAD', method);
  }
  assert.equal((await store.get('.cvmfspublished'))?.body.toString(), MANIFEST);
});

test('basePath serves the repository under that path only', async (t) => {
  const { server, get } = await setup(t, { basePath: '/cvmfs/test.repo/' });
  assert.equal(server.url, `http://127.0.0.1:${server.port}/cvmfs/test.repo`);
  const r = await get('/cvmfs/test.repo/.cvmfspublished');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), MANIFEST);
  assert.deepEqual((await get(`/cvmfs/test.repo/${DATA_KEY}`)).body, DATA);
  for (const p of ['/.cvmfspublished', '/cvmfs/test.repoX/.cvmfspublished', '/cvmfs/.cvmfspublished',
    '/cvmfs/test.repo', '/cvmfs/test.repo/']) {
    assert.equal((await get(p)).status, 404, p);
  }
});

test('a store failure answers 500 and the server keeps serving', async (t) => {
  const lines: string[] = [];
  const { get } = await setup(t, { log: (line) => lines.push(line) }, (store) => ({
    description: 'flaky',
    get: (key, range) => (key === '.cvmfswhitelist' ? Promise.reject(new Error('disk on fire')) : store.get(key, range)),
    getStream: (key, range) => (key === '.cvmfswhitelist' ? Promise.reject(new Error('disk on fire')) : store.getStream(key, range)),
    head: (key) => store.head(key),
    put: (key, body, o) => store.put(key, body, o),
    list: (prefix, o) => store.list(prefix, o),
    delete: (keys) => store.delete(keys),
  }));
  const failed = await get('/.cvmfswhitelist');
  assert.equal(failed.status, 500);
  assert.ok(!failed.body.toString().includes('disk on fire'));
  assert.equal((await get('/.cvmfspublished')).status, 200);
  assert.ok(lines.some((l) => l.includes('disk on fire')));
  assert.ok(lines.some((l) => l.includes('GET /.cvmfspublished 200')));
});

test('close() ends promptly despite an idle keep-alive connection and a stalled client', { timeout: 10_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'scvmfs-serve-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new FsStore(dir);
  await store.put('.cvmfspublished', Buffer.from(MANIFEST));
  const server = await serveStore(store, {});
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  const r = await request(server.port, 'GET', '/.cvmfspublished', {}, agent);
  assert.equal(r.headers.connection, 'keep-alive');
  // A client stalled mid-request is not idle; plain server.close() would wait for it to time out.
  const stalled = net.connect(server.port, '127.0.0.1');
  stalled.on('error', () => {});
  t.after(() => stalled.destroy());
  await new Promise<void>((resolve) => stalled.write('GET /.cvmfspublished HTTP/1.1\r\nHost: x\r\n', () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = Date.now();
  await server.close();
  assert.ok(Date.now() - started < 1000, `close took ${Date.now() - started} ms`);
  await assert.rejects(request(server.port, 'GET', '/.cvmfspublished'));
});

test('suffixed and non-SHA-1 objects (catalogs, certificates, rmd160) are served like any data object', async (t) => {
  const { store, get } = await setup(t);
  for (const key of [`${DATA_KEY}C`, `${DATA_KEY}X`, `${DATA_KEY}-rmd160`, `${DATA_KEY}-shake128C`]) {
    await store.put(key, Buffer.from(key));
    const r = await get(`/${key}`);
    assert.equal(r.status, 200, key);
    assert.equal(r.body.toString(), key);
    assert.equal(r.headers['cache-control'], 'public, max-age=259200, immutable', key);
  }
});
