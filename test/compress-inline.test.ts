// The compress pool's first small files are compressed on the calling thread, so that a publish of a few
// files starts no worker thread; what it stores must be exactly what the workers store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileDigests, tempDir } from './helpers.js';
import { CompressPool, type CompressedContent, type ObjectSink } from '../src/publish/compress-pool.js';
import type { PreparedObject } from '../src/format/zlib-object.js';
import { ContentHash } from '../src/format/hash.js';

/** Files of every size up to just over the inline limit, text and random. */
function makeFiles(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const sizes = [1, 100, 4096, 60_000, 64 * 1024, 64 * 1024 + 1, 200_000];
  const files: string[] = [];
  for (const [i, size] of sizes.entries()) {
    const f = join(dir, `f${i}`);
    writeFileSync(f, i % 2 === 0 ? Buffer.alloc(size, `line ${i}\n`) : randomBytes(size));
    files.push(f);
  }
  return files;
}

async function compressAll(pool: CompressPool, files: string[]): Promise<CompressedContent[]> {
  try {
    return await Promise.all(files.map((f) => {
      const st = statSync(f, { bigint: true });
      return pool.compress(f, Number(st.size), st.mtimeNs);
    }));
  } finally {
    await pool.close();
  }
}

const summary = (r: CompressedContent[]) => r.map((c) => ({ hash: c.hash?.toHex(), size: c.size, stored: c.storedBytes, objects: c.objects }));

test('a few small files start no worker thread, and give the hashes and objects the workers give (upload sink)', async () => {
  const files = makeFiles(join(tempDir('inline-up'), 'src'));
  const small = files.slice(0, 5);
  const collect = () => {
    const got = new Map<string, Buffer>();
    const sink: ObjectSink = { upload: async (o: PreparedObject) => { got.set(o.key, o.stored); } };
    return { got, sink };
  };
  const a = collect();
  const inline = new CompressPool({ algorithm: 'sha1', workers: 2, sink: a.sink });
  const viaInline = await compressAll(inline, small);
  assert.equal(inline.workersStarted, 0, 'no worker for five small files');
  assert.equal(inline.inlineFiles, 5);
  const b = collect();
  const workers = new CompressPool({ algorithm: 'sha1', workers: 2, sink: b.sink, inlineBytes: 0 });
  const viaWorkers = await compressAll(workers, small);
  assert.ok(workers.workersStarted > 0);
  assert.equal(workers.inlineFiles, 0);
  assert.deepEqual(summary(viaInline), summary(viaWorkers));
  assert.deepEqual([...a.got].sort(), [...b.got].sort());
  for (const [key, stored] of a.got) assert.ok(ContentHash.of('sha1', stored).objectKey('') === key, `${key} is named by its bytes`);
});

test('the same into a filesystem store: same object files, and a file over the inline limit goes to a worker', async () => {
  const work = tempDir('inline-fs');
  const files = makeFiles(join(work, 'src'));
  const runInto = async (root: string, inlineBytes?: number) => {
    mkdirSync(root, { recursive: true });
    const pool = new CompressPool({ algorithm: 'sha1', workers: 2, sink: { fsStoreRoot: root, verifyPresent: true }, inlineBytes });
    return { pool, results: await compressAll(pool, files) };
  };
  const a = await runInto(join(work, 'a'));
  // Up to 64 KiB inline; the 64 KiB + 1 file, and everything after it, in workers.
  assert.equal(a.pool.inlineFiles, 5);
  assert.ok(a.pool.workersStarted > 0);
  const b = await runInto(join(work, 'b'), 0);
  assert.equal(b.pool.inlineFiles, 0);
  assert.deepEqual(summary(a.results), summary(b.results));
  assert.deepEqual(fileDigests(join(work, 'a')), fileDigests(join(work, 'b')));
  assert.equal(a.results.reduce((n, r) => n + r.objects.written, 0), files.length);

  // Again into the same store: everything is present, nothing written, by either path.
  const again = await runInto(join(work, 'a'));
  assert.deepEqual(again.results.map((r) => [r.objects.written, r.objects.present]), files.map(() => [0, 1]));
});

test('the inline budget is shared: once it is spent, small files go to the workers', async () => {
  const work = tempDir('inline-budget');
  const files = makeFiles(join(work, 'src')).slice(0, 4);
  const pool = new CompressPool({ algorithm: 'sha1', workers: 1, sink: { upload: async () => {} }, inlineBytes: 5000 });
  await compressAll(pool, files);
  // 1 + 100 + 4096 bytes fit in 5,000; the 60,000-byte file does not, and starts the worker.
  assert.equal(pool.inlineFiles, 3);
  assert.equal(pool.workersStarted, 1);
});

test('inline, an object already there with other bytes is replaced and reported, and a changed file is refused', async () => {
  const work = tempDir('inline-bad');
  const [f] = makeFiles(join(work, 'src'));
  const root = join(work, 'store');
  mkdirSync(root);
  const first = await compressAll(new CompressPool({ algorithm: 'sha1', workers: 1, sink: { fsStoreRoot: root } }), [f!]);
  const key = first[0]!.hash!.objectKey('');
  const good = readFileSync(join(root, key));
  writeFileSync(join(root, key), 'poison');
  const pool = new CompressPool({ algorithm: 'sha1', workers: 1, sink: { fsStoreRoot: root, verifyPresent: true } });
  const [r] = await compressAll(pool, [f!]);
  assert.equal(pool.workersStarted, 0);
  assert.equal(r!.objects.replaced?.length, 1);
  assert.equal(r!.objects.replaced![0]!.key, key);
  assert.deepEqual(readFileSync(join(root, key)), good);

  const st = statSync(f!, { bigint: true });
  writeFileSync(f!, 'changed since the scan, and longer than before');
  const p2 = new CompressPool({ algorithm: 'sha1', workers: 1, sink: { upload: async () => {} } });
  await assert.rejects(p2.compress(f!, Number(st.size), st.mtimeNs), /cannot read .*f0: file changed after it was scanned/);
  await assert.rejects(p2.compress(join(work, 'missing'), 10, 0n), /cannot read .*missing: file disappeared during the publish/);
  assert.equal(p2.workersStarted, 0);
  await p2.close();
});

test('a file swapped for a symbolic link after the scan is not followed, inline or in a worker', async () => {
  const work = tempDir('inline-link');
  const secret = join(work, 'secret');
  writeFileSync(secret, 'not for the repository');
  for (const inlineBytes of [undefined, 0]) {
    const f = join(work, `f-${inlineBytes ?? 'inline'}`);
    writeFileSync(f, 'x'.repeat(22));
    const when = new Date(Date.now() - 60_000);
    utimesSync(f, when, when);
    utimesSync(secret, when, when);
    // The scan saw a regular file of the secret's size and mtime; a link to the secret replaces it.
    const st = statSync(f, { bigint: true });
    symlinkSync(secret, `${f}.link`);
    renameSync(`${f}.link`, f);
    const got: string[] = [];
    const pool = new CompressPool({ algorithm: 'sha1', workers: 1, sink: { upload: async (o: PreparedObject) => { got.push(o.key); } }, inlineBytes });
    await assert.rejects(pool.compress(f, Number(st.size), st.mtimeNs), /cannot read .*: file changed after it was scanned \(it is a symbolic link now\)/);
    await pool.close();
    assert.deepEqual(got, [], 'nothing of the secret was stored');
    assert.equal(pool.workersStarted, inlineBytes === 0 ? 1 : 0);
  }
});
