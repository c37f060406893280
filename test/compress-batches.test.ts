// A compress worker may hold a second batch of small files behind the one it runs, so that it does not
// wait for the main thread between them; what it stores must not depend on that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { fileDigests, tempDir } from './helpers.js';
import { CompressPool, type CompressedContent } from '../src/publish/compress-pool.js';

function smallFiles(dir: string, count: number): string[] {
  mkdirSync(dir, { recursive: true });
  return Array.from({ length: count }, (_, i) => {
    const f = join(dir, `f${i}`);
    const size = 1024 + ((i * 7919) % 7168);
    writeFileSync(f, i % 3 === 0 ? randomBytes(size) : Buffer.alloc(size, `file ${i} `));
    return f;
  });
}

const compress = (pool: CompressPool, f: string) => {
  const st = statSync(f, { bigint: true });
  return pool.compress(f, Number(st.size), st.mtimeNs);
};
const summary = (r: CompressedContent) => ({
  hash: r.hash?.toHex(), size: r.size, stored: r.storedBytes,
  chunks: r.chunks.map((c) => [c.offset, c.size, c.hash.toHex()]), written: r.objects.written,
});

test('batches sent ahead to a busy worker store the same objects as batches sent only to idle ones', async () => {
  const work = tempDir('batches-ahead');
  const files = smallFiles(join(work, 'src'), 600);
  const runInto = async (root: string, batchesAhead: number) => {
    mkdirSync(root, { recursive: true });
    const pool = new CompressPool({ algorithm: 'sha1', workers: 1, inlineBytes: 0, batchesAhead, sink: { fsStoreRoot: root, verifyPresent: true } });
    try {
      return { pool, results: (await Promise.all(files.map((f) => compress(pool, f)))).map(summary) };
    } finally {
      await pool.close();
    }
  };
  const one = await runInto(join(work, 'one'), 1);
  const two = await runInto(join(work, 'two'), 2);
  assert.equal(one.pool.batchesSentAhead, 0, 'with batchesAhead 1 a batch goes only to an idle worker');
  assert.ok(two.pool.batchesSentAhead > 0, 'the one worker was sent a batch while it ran another');
  assert.deepEqual(two.results, one.results);
  assert.deepEqual(fileDigests(join(work, 'two')), fileDigests(join(work, 'one')));
  assert.equal(two.results.filter((r) => r.written === 1).length, new Set(two.results.map((r) => r.hash)).size);
  assert.throws(() => new CompressPool({ algorithm: 'sha1', sink: { upload: async () => {} }, batchesAhead: 0 }), /batchesAhead must be a positive integer/);
});

test('a stream and a scanned large file among queued batches finish with the same objects', async () => {
  const work = tempDir('batches-mixed');
  const files = smallFiles(join(work, 'src'), 400);
  const large = join(work, 'large');
  writeFileSync(large, randomBytes(3 << 20));
  const streamed = randomBytes(1 << 20);
  const chunking = { minSize: 256 * 1024, avgSize: 512 * 1024, maxSize: 1 << 20 };
  const run = async (batchesAhead: number) => {
    const stored = new Map<string, string>();
    const pool = new CompressPool({
      algorithm: 'sha1', workers: 1, inlineBytes: 0, batchesAhead, chunking,
      sink: { upload: async (o) => { stored.set(o.key, o.stored.toString('base64')); } },
    });
    try {
      const first = files.slice(0, 200).map((f) => compress(pool, f));
      const stream = pool.compressStream(Readable.from([streamed.subarray(0, 300_000), streamed.subarray(300_000)]), { expectedSize: streamed.length });
      const big = compress(pool, large);
      const rest = files.slice(200).map((f) => compress(pool, f));
      const results = await Promise.all([...first, stream, big, ...rest]);
      return { results: results.map(summary), stored, pool };
    } finally {
      await pool.close();
    }
  };
  const one = await run(1);
  const two = await run(2);
  assert.ok(two.pool.batchesSentAhead > 0);
  assert.deepEqual(two.results, one.results);
  assert.deepEqual([...two.stored].sort(), [...one.stored].sort());
  assert.ok(two.results[200]!.chunks.length > 1 && two.results[201]!.chunks.length > 1, 'the stream and the large file were chunked');
});
