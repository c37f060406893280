import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsStore, validateKey } from '../src/store/fs-store.js';
import { PreconditionFailedError, RangeNotSatisfiableError, StoreError } from '../src/store/object-store.js';
import { raceProcesses } from './helpers.js';

const md5 = (data: string | Uint8Array) => createHash('md5').update(data).digest('hex');
const isRoot = process.getuid?.() === 0;

async function tempStore(t: TestContext): Promise<{ store: FsStore; root: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'scvmfs-fs-store-'));
  t.after(async () => {
    await chmod(root, 0o755).catch(() => {});
    await rm(root, { recursive: true, force: true });
  });
  return { store: new FsStore(root), root };
}

async function listAll(store: FsStore, prefix: string, limit: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list(prefix, { after, limit });
    pages++;
    assert.ok(page.objects.length <= limit);
    keys.push(...page.objects.map((o) => o.key));
    if (!page.next) return { keys, pages };
    after = page.next;
  }
}

async function tmpEntries(root: string): Promise<string[]> {
  return readdir(path.join(root, '.scvmfs', 'tmp')).catch(() => []);
}

test('put, get, head and delete round-trip an object stored at its served path', async (t) => {
  const { store, root } = await tempStore(t);
  const body = Buffer.from('hello cvmfs');
  const { etag } = await store.put('data/ab/cdef', body);
  assert.equal(etag, md5(body));
  assert.deepEqual(await readFile(path.join(root, 'data', 'ab', 'cdef')), body);
  assert.equal(store.description, `file://${path.resolve(root)}`);

  const got = await store.get('data/ab/cdef');
  assert.ok(got);
  assert.deepEqual(got.body, body);
  assert.equal(got.etag, etag);
  assert.equal(got.size, body.length);
  assert.equal(got.totalSize, body.length);
  assert.equal(got.key, 'data/ab/cdef');
  assert.ok(got.lastModified instanceof Date);

  const info = await store.head('data/ab/cdef');
  assert.ok(info);
  assert.equal(info.etag, etag);
  assert.equal(info.size, body.length);

  await store.delete(['data/ab/cdef', 'data/ab/never-existed']);
  assert.equal(await store.get('data/ab/cdef'), null);
  assert.equal(await store.head('data/ab/cdef'), null);
  // Deleting removes the object only; the directory layout stays as it was.
  assert.deepEqual(await readdir(path.join(root, 'data', 'ab')), []);
});

test('an unconditional put replaces the object and its etag', async (t) => {
  const { store } = await tempStore(t);
  await store.put('.cvmfspublished', Buffer.from('one'));
  const { etag } = await store.put('.cvmfspublished', Buffer.from('two'));
  assert.equal(etag, md5('two'));
  assert.equal((await store.get('.cvmfspublished'))?.body.toString(), 'two');
});

test('a missing root behaves like an empty store', async (t) => {
  const { root } = await tempStore(t);
  const store = new FsStore(path.join(root, 'does', 'not', 'exist'));
  assert.equal(await store.get('.cvmfspublished'), null);
  assert.equal(await store.head('data/ab/cd'), null);
  assert.deepEqual(await store.list(''), { objects: [] });
  await store.delete(['data/ab/cd']);
});

test('a directory is not an object', async (t) => {
  const { store } = await tempStore(t);
  await store.put('data/ab/cd', Buffer.from('x'));
  assert.equal(await store.get('data/ab'), null);
  assert.equal(await store.head('data'), null);
  await store.delete(['data/ab']);
  assert.ok(await store.head('data/ab/cd'));
});

test('range reads return the inclusive slice with the whole object\'s etag and size', async (t) => {
  const { store } = await tempStore(t);
  const body = Buffer.from('0123456789');
  await store.put('data/00/range', body);

  const mid = await store.get('data/00/range', { start: 2, end: 5 });
  assert.equal(mid?.body.toString(), '2345');
  assert.equal(mid?.totalSize, 10);
  assert.equal(mid?.size, 10);
  assert.equal(mid?.etag, md5(body));

  assert.equal((await store.get('data/00/range', { start: 7 }))?.body.toString(), '789');
  assert.equal((await store.get('data/00/range', { start: 8, end: 500 }))?.body.toString(), '89');
  assert.equal((await store.get('data/00/range', { start: 9, end: 9 }))?.body.toString(), '9');
  await assert.rejects(store.get('data/00/range', { start: 10 }), (err: unknown) =>
    err instanceof RangeNotSatisfiableError && err.size === 10);
  assert.equal(await store.get('data/00/missing', { start: 0 }), null);
});

test('list returns keys in byte order, filtered by a plain string prefix', async (t) => {
  const { store } = await tempStore(t);
  // 'a-c' < 'a/b' < 'a0' in byte order, although a directory walk meets 'a' before 'a-c'.
  const keys = ['b', 'a0', 'a/b', 'a-c', 'a/b-c', 'a/bb/x', '.cvmfspublished', '.cvmfswhitelist',
    'data/00/x', 'data/ab/1', 'data/ab/2', 'data/ac/1', 'data/abc', '.scvmfs/lease'];
  for (const key of keys) await store.put(key, Buffer.from(key));
  const sorted = [...keys].sort();

  const all = await store.list('');
  assert.deepEqual(all.objects.map((o) => o.key), sorted);
  assert.equal(all.next, undefined);
  for (const o of all.objects) {
    assert.equal(o.etag, md5(o.key));
    assert.equal(o.size, Buffer.byteLength(o.key));
  }

  const keysOf = async (prefix: string) => (await store.list(prefix)).objects.map((o) => o.key);
  assert.deepEqual(await keysOf('data/ab/'), ['data/ab/1', 'data/ab/2']);
  assert.deepEqual(await keysOf('data/ab'), ['data/ab/1', 'data/ab/2', 'data/abc']);
  assert.deepEqual(await keysOf('data/a'), ['data/ab/1', 'data/ab/2', 'data/abc', 'data/ac/1']);
  assert.deepEqual(await keysOf('a'), ['a-c', 'a/b', 'a/b-c', 'a/bb/x', 'a0']);
  assert.deepEqual(await keysOf('.cvmfs'), ['.cvmfspublished', '.cvmfswhitelist']);
  assert.deepEqual(await keysOf('nothing/'), []);
  assert.deepEqual(await keysOf('data/ab/1'), ['data/ab/1']);
});

test('list pages with after and limit cover every key exactly once', async (t) => {
  const { store } = await tempStore(t);
  const keys: string[] = [];
  for (let i = 0; i < 23; i++) keys.push(`data/${(i % 4).toString(16).padStart(2, '0')}/obj${String(i).padStart(2, '0')}`);
  for (const key of keys) await store.put(key, Buffer.from(key));
  keys.sort();

  const { keys: paged, pages } = await listAll(store, 'data/', 5);
  assert.deepEqual(paged, keys);
  assert.equal(pages, 5);

  const page = await store.list('data/', { after: keys[10], limit: 3 });
  assert.deepEqual(page.objects.map((o) => o.key), keys.slice(11, 14));
  assert.equal(page.next, keys[13]);
  // `after` need not be an existing key.
  const between = await store.list('', { after: 'data/01/', limit: 100 });
  assert.deepEqual(between.objects.map((o) => o.key), keys.filter((k) => k > 'data/01/'));
  const last = await store.list('data/', { after: keys[21], limit: 1 });
  assert.deepEqual(last.objects.map((o) => o.key), [keys[22]]);
  assert.equal(last.next, undefined);
  assert.deepEqual(await store.list('data/', { after: keys[22] }), { objects: [] });
});

test('list never shows the store\'s temp files or locks', async (t) => {
  const { store, root } = await tempStore(t);
  await store.put('.scvmfs/lease', Buffer.from('lease'));
  await mkdir(path.join(root, '.scvmfs', 'tmp'), { recursive: true });
  await writeFile(path.join(root, '.scvmfs', 'tmp', 'half-written'), 'x');
  await mkdir(path.join(root, '.scvmfs', 'locks', 'somelock'), { recursive: true });
  await writeFile(path.join(root, '.scvmfs', 'locks', 'file'), 'x');
  await writeFile(path.join(root, '.scvmfs', 'tmpfile'), 'not scratch');

  assert.deepEqual((await store.list('')).objects.map((o) => o.key), ['.scvmfs/lease', '.scvmfs/tmpfile']);
  assert.deepEqual((await store.list('.scvmfs/')).objects.map((o) => o.key), ['.scvmfs/lease', '.scvmfs/tmpfile']);
  assert.deepEqual((await store.list('.scvmfs/t')).objects.map((o) => o.key), ['.scvmfs/tmpfile']);
  await assert.rejects(store.list('.scvmfs/tmp/'), /reserved/);
  await assert.rejects(store.get('.scvmfs/tmp/half-written'), /reserved/);
});

test('ifNoneMatch creates a new key but refuses an existing one, leaving it unchanged', async (t) => {
  const { store, root } = await tempStore(t);
  const { etag } = await store.put('.cvmfspublished', Buffer.from('first'), { ifNoneMatch: '*' });
  assert.equal(etag, md5('first'));
  await assert.rejects(store.put('.cvmfspublished', Buffer.from('second'), { ifNoneMatch: '*' }),
    (err: unknown) => err instanceof PreconditionFailedError && err.key === '.cvmfspublished');
  assert.equal((await store.get('.cvmfspublished'))?.body.toString(), 'first');
  assert.deepEqual(await tmpEntries(root), []);
});

test('ifMatch swaps on the current etag and refuses a stale etag or a missing key', async (t) => {
  const { store, root } = await tempStore(t);
  const { etag: v1 } = await store.put('.scvmfs/head', Buffer.from('v1'));
  const { etag: v2 } = await store.put('.scvmfs/head', Buffer.from('v2'), { ifMatch: v1 });
  assert.equal(v2, md5('v2'));
  assert.equal((await store.get('.scvmfs/head'))?.body.toString(), 'v2');

  await assert.rejects(store.put('.scvmfs/head', Buffer.from('v3'), { ifMatch: v1 }), PreconditionFailedError);
  assert.equal((await store.get('.scvmfs/head'))?.body.toString(), 'v2');

  await assert.rejects(store.put('.scvmfs/absent', Buffer.from('x'), { ifMatch: v2 }), PreconditionFailedError);
  assert.equal(await store.head('.scvmfs/absent'), null);
  assert.deepEqual(await tmpEntries(root), []);
});

test('a lock left behind by a dead process is broken once it is stale', async (t) => {
  const { store, root } = await tempStore(t);
  const { etag } = await store.put('.scvmfs/head', Buffer.from('v1'));
  const lock = path.join(root, '.scvmfs', 'locks', createHash('sha1').update('.scvmfs/head').digest('hex'));
  await mkdir(lock, { recursive: true });
  const old = new Date(Date.now() - 60_000);
  await utimes(lock, old, old);
  await store.put('.scvmfs/head', Buffer.from('v2'), { ifMatch: etag });
  assert.equal((await store.get('.scvmfs/head'))?.body.toString(), 'v2');
  assert.deepEqual(await readdir(path.join(root, '.scvmfs', 'locks')), []);
});

test('validateKey refuses keys that could escape or alias paths', async (t) => {
  for (const bad of ['', '../x', 'a/../../x', '/abs', 'a//b', 'a/./b', './a', 'a/', 'a\\b', 'a\0b', '..', '.']) {
    assert.throws(() => validateKey(bad), (err: unknown) =>
      err instanceof Error && err.message.includes(`'${bad}'`), `accepted ${JSON.stringify(bad)}`);
  }
  for (const good of ['data/ab/cdef', '.cvmfspublished', '.scvmfs/lease', 'a..b', '...', 'x/.hidden']) validateKey(good);

  const { store, root } = await tempStore(t);
  await assert.rejects(store.put('../escaped', Buffer.from('x')), /invalid store key/);
  await assert.rejects(store.get('/etc/passwd'), /invalid store key/);
  await assert.rejects(store.head('a//b'), /invalid store key/);
  await assert.rejects(store.delete(['ok', 'a/../b']), /invalid store key/);
  await assert.rejects(store.list('../'), /invalid list prefix/);
  assert.equal((await readdir(path.dirname(root))).includes('escaped'), false);
});

test('a put that cannot create its directory throws StoreError and leaves no temp file', async (t) => {
  const { store, root } = await tempStore(t);
  await store.put('.cvmfspublished', Buffer.from('ok')); // creates the temp area
  await writeFile(path.join(root, 'data'), 'a file where the data directory belongs');
  for (const options of [{}, { ifNoneMatch: '*' as const }]) {
    await assert.rejects(store.put('data/ab/cdef', Buffer.from('payload'), options), (err: unknown) =>
      err instanceof StoreError && err.key === 'data/ab/cdef' && /directory is needed/.test(err.message));
  }
  assert.deepEqual(await tmpEntries(root), []);
});

test('a put into a read-only store throws StoreError saying so and leaves no temp file',
  { skip: isRoot ? 'root ignores directory permissions' : false }, async (t) => {
    const { store, root } = await tempStore(t);
    await store.put('.cvmfspublished', Buffer.from('ok'));
    await chmod(root, 0o555);
    await assert.rejects(store.put('data/ab/cdef', Buffer.from('payload')), (err: unknown) =>
      err instanceof StoreError && /permission denied/.test(err.message));
    await chmod(root, 0o755);
    assert.deepEqual(await tmpEntries(root), []);
  });

// ---- Several processes against one store -------------------------------------------------------

const WORKER = `
const [moduleUrl, root, mode, key, arg] = process.argv.slice(2);
const { FsStore } = await import(moduleUrl);
const store = new FsStore(root);
const isLoss = (err) => err && err.name === 'PreconditionFailedError';
const etag = mode === 'cas' ? (await store.head(key)).etag : undefined;
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
try {
  if (mode === 'cas') await store.put(key, Buffer.from(arg), { ifMatch: etag });
  if (mode === 'create') await store.put(key, Buffer.from(arg), { ifNoneMatch: '*' });
  if (mode === 'count') {
    for (let i = 0; i < Number(arg); i++) {
      for (;;) {
        const current = await store.get(key);
        const next = Buffer.from(String(Number(current.body.toString()) + 1));
        try { await store.put(key, next, { ifMatch: current.etag }); break; } catch (err) { if (!isLoss(err)) throw err; }
      }
    }
  }
  process.stdout.write('won\\n');
} catch (err) {
  process.stdout.write(isLoss(err) ? 'lost\\n' : 'error ' + err.stack + '\\n');
}
`;

/** Starts the workers, lets them all get ready, then releases them at once; resolves their verdicts. */
function race(root: string, args: string[][]): Promise<string[]> {
  const moduleUrl = new URL('../src/store/fs-store.js', import.meta.url).href;
  return raceProcesses(path.join(root, '..', `${path.basename(root)}-worker.mjs`), WORKER, args.map((a) => [moduleUrl, root, ...a]));
}

test('of 8 processes racing ifMatch on the same etag exactly one wins', { timeout: 60_000 }, async (t) => {
  const { store, root } = await tempStore(t);
  // A large current object keeps each writer in its compare step longer, widening the race window.
  await store.put('.scvmfs/head', Buffer.alloc(4 << 20, 'start'));
  const verdicts = await race(root, Array.from({ length: 8 }, (_, i) => ['cas', '.scvmfs/head', `writer-${i}`]));
  assert.equal(verdicts.filter((v) => v === 'won').length, 1, verdicts.join(', '));
  assert.equal(verdicts.filter((v) => v === 'lost').length, 7, verdicts.join(', '));
  const winner = verdicts.indexOf('won');
  assert.equal((await store.get('.scvmfs/head'))?.body.toString(), `writer-${winner}`);
  assert.deepEqual(await tmpEntries(root), []);
  assert.deepEqual(await readdir(path.join(root, '.scvmfs', 'locks')), []);
});

test('of 8 processes racing ifNoneMatch to create the same key exactly one wins', { timeout: 60_000 }, async (t) => {
  const { store, root } = await tempStore(t);
  const verdicts = await race(root, Array.from({ length: 8 }, (_, i) => ['create', '.cvmfspublished', `writer-${i}`]));
  assert.equal(verdicts.filter((v) => v === 'won').length, 1, verdicts.join(', '));
  assert.equal(verdicts.filter((v) => v === 'lost').length, 7, verdicts.join(', '));
  const winner = verdicts.indexOf('won');
  assert.equal((await store.get('.cvmfspublished'))?.body.toString(), `writer-${winner}`);
  assert.deepEqual(await tmpEntries(root), []);
});

test('4 processes doing 25 read-CAS-retry increments each lose no update', { timeout: 120_000 }, async (t) => {
  const { store, root } = await tempStore(t);
  await store.put('.scvmfs/counter', Buffer.from('0'));
  const verdicts = await race(root, Array.from({ length: 4 }, () => ['count', '.scvmfs/counter', '25']));
  assert.deepEqual(verdicts, ['won', 'won', 'won', 'won']);
  assert.equal((await store.get('.scvmfs/counter'))?.body.toString(), '100');
  assert.deepEqual(await tmpEntries(root), []);
});
