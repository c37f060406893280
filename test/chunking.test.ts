// Chunked files end to end: publish (filesystem store and an upload store), serve over HTTP, read back
// through the reader, verify; the catalog rows, flags and counters; bounded memory on the upload path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import { tempDir } from './helpers.js';
import { FsStore } from '../src/store/fs-store.js';
import type { ByteRange, ObjectStore, PutOptions, ReadRange } from '../src/store/object-store.js';
import { serveStore } from '../src/serve/http-server.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository, readHead } from '../src/repo/repository.js';
import { fetchCatalog } from '../src/repo/objects.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { CompressPool } from '../src/publish/compress-pool.js';
import { HttpSource } from '../src/client/sources.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { ContentHash } from '../src/format/hash.js';
import { FLAG } from '../src/format/catalog-entry.js';
import { cutOffsets, DEFAULT_CHUNKING } from '../src/format/chunker.js';
import type { PreparedObject } from '../src/format/zlib-object.js';

const FQRN = 'chunks.example.org';
const MiB = 1024 * 1024;

/** A store that is not an FsStore, so the pool sends objects back for upload; `onPut` sees every write. */
class PassThroughStore implements ObjectStore {
  onPut: (key: string) => void = () => {};
  constructor(private readonly inner: FsStore) {}
  get description() { return `pass-through ${this.inner.description}`; }
  get(key: string, range?: ByteRange) { return this.inner.get(key, range); }
  getStream(key: string, range?: ReadRange) { return this.inner.getStream(key, range); }
  head(key: string) { return this.inner.head(key); }
  put(key: string, body: Uint8Array, options?: PutOptions) { this.onPut(key); return this.inner.put(key, body, options); }
  list(prefix: string, options?: { after?: string; limit?: number }) { return this.inner.list(prefix, options); }
  delete(keys: string[]) { return this.inner.delete(keys); }
}

function buildTree(src: string): { big: Buffer; zeros: Buffer; four: Buffer } {
  mkdirSync(join(src, 'data'), { recursive: true });
  const big = randomBytes(40 * MiB);
  const zeros = Buffer.alloc(17 * MiB);
  const four = randomBytes(4 * MiB);
  writeFileSync(join(src, 'data/big.bin'), big);
  writeFileSync(join(src, 'data/zeros.bin'), zeros);
  writeFileSync(join(src, 'data/four.bin'), four);
  writeFileSync(join(src, 'small.txt'), 'small\n');
  return { big, zeros, four };
}

async function setup(name: string) {
  const work = tempDir(name);
  const fs = new FsStore(join(work, 'store'));
  const keys = await generateRepositoryKeys(FQRN);
  await initRepository(fs, { fqrn: FQRN, keys });
  return { work, fs, keys };
}

async function rootCatalog(store: ObjectStore) {
  const head = (await readHead(store))!;
  return (await fetchCatalog(store, head.manifest.rootCatalog)).db;
}

test('large files publish as chunks, read back identical over HTTP, with flags, rows and counters', async () => {
  const { work, fs, keys } = await setup('chunked');
  const src = join(work, 'src');
  const { big, zeros, four } = buildTree(src);
  const server = await serveStore(fs, { port: 0 });
  try {
    const summary = await publishDirectory(fs, src, { fqrn: FQRN, keys });
    assert.equal(summary.revision, 2);

    const db = await rootCatalog(fs);
    const bigEntry = db.lookup('/data/big.bin')!;
    assert.equal(bigEntry.hash, null, 'no whole-file object by default');
    assert.ok(bigEntry.extraFlags & FLAG.chunked);
    const bigChunks = db.chunks('/data/big.bin', 'sha1');
    assert.deepEqual(bigChunks.slice(1).map((c) => c.offset), cutOffsets(big), 'cut where the chunker cuts');
    assert.ok(bigChunks.length >= 3, `40 MiB gives several chunks, got ${bigChunks.length}`);
    for (const c of bigChunks) {
      const stored = (await fs.get(c.hash.objectKey('P')))!.body;
      assert.ok(ContentHash.of('sha1', stored).equals(c.hash), 'P object named by the hash of its compressed bytes');
      assert.ok(c.size <= DEFAULT_CHUNKING.maxSize);
    }

    // 17 MiB of zeros: no cut mark, so a forced cut at max; zlib of zeros is stock-identical.
    const zeroChunks = db.chunks('/data/zeros.bin', 'sha1');
    assert.deepEqual(zeroChunks.map((c) => [c.offset, c.size]), [[0, 16 * MiB], [16 * MiB, MiB]]);
    assert.ok(zeroChunks[0]!.hash.equals(ContentHash.of('sha1', deflateSync(Buffer.alloc(16 * MiB), { level: 6 }))));

    // Exactly the minimum: an ordinary object, no chunk rows, plain flags.
    const fourEntry = db.lookup('/data/four.bin')!;
    assert.ok(fourEntry.hash);
    assert.equal(fourEntry.extraFlags & FLAG.chunked, 0);
    assert.deepEqual(db.chunks('/data/four.bin', 'sha1'), []);
    assert.ok(await fs.head(fourEntry.hash.objectKey('')));

    const c = db.readCounters().self;
    assert.equal(c.chunked, 2);
    assert.equal(c.chunks, bigChunks.length + 2);
    assert.equal(c.chunked_size, 57 * MiB);
    assert.equal(c.regular, 4);
    assert.equal(c.file_size, 61 * MiB + 6);
    db.close();

    const open = () => RepositoryReader.open(new HttpSource(server.url), { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
    let reader = await open();
    assert.ok((await reader.readFile('/data/big.bin')).equals(big));
    assert.ok((await reader.readFile('/data/zeros.bin')).equals(zeros));
    assert.ok((await reader.readFile('/data/four.bin')).equals(four));
    let pieces = 0;
    for await (const piece of reader.readPieces('/data/big.bin')) {
      assert.ok(piece.length <= DEFAULT_CHUNKING.maxSize);
      pieces++;
    }
    assert.equal(pieces, bigChunks.length, 'streamed one chunk at a time');
    const report = await verifyRepository(reader);
    assert.equal(report.objects, bigChunks.length + 2 + 2, 'every chunk object checked');
    reader.close();

    assert.equal((await publishDirectory(fs, src, { fqrn: FQRN, keys })).changed, false, 'unchanged chunked files are not read again');

    // A metadata-only change keeps the chunk rows; replacing the content by a small file drops them.
    chmodSync(join(src, 'data/big.bin'), 0o600);
    writeFileSync(join(src, 'data/zeros.bin'), 'now small');
    const third = await publishDirectory(fs, src, { fqrn: FQRN, keys });
    assert.equal(third.filesCompressed, 1);
    const db3 = await rootCatalog(fs);
    assert.equal(db3.chunks('/data/big.bin', 'sha1').length, bigChunks.length);
    assert.equal(db3.lookup('/data/big.bin')!.mode & 0o777, 0o600);
    assert.deepEqual(db3.chunks('/data/zeros.bin', 'sha1'), []);
    assert.deepEqual([db3.readCounters().self.chunked, db3.readCounters().self.chunks], [1, bigChunks.length]);
    db3.close();
    reader = await open();
    assert.ok((await reader.readFile('/data/big.bin')).equals(big));
    assert.equal((await reader.readFile('/data/zeros.bin')).toString(), 'now small');
    await verifyRepository(reader);
    reader.close();
  } finally {
    await server.close();
  }
});

test('a store that is not a filesystem gets the same chunks uploaded', async () => {
  const { work, fs, keys } = await setup('upload-chunks');
  const src = join(work, 'src');
  const { big } = buildTree(src);
  const store = new PassThroughStore(fs);
  const chunkPuts: string[] = [];
  store.onPut = (key) => { if (key.endsWith('P')) chunkPuts.push(key); };
  await publishDirectory(store, src, { fqrn: FQRN, keys });
  const db = await rootCatalog(fs);
  const chunks = db.chunks('/data/big.bin', 'sha1');
  assert.deepEqual(chunks.slice(1).map((c) => c.offset), cutOffsets(big));
  const expectedKeys = [...chunks, ...db.chunks('/data/zeros.bin', 'sha1')].map((c) => c.hash.objectKey('P'));
  assert.deepEqual([...new Set(chunkPuts)].sort(), [...new Set(expectedKeys)].sort());
  db.close();
  const reader = await RepositoryReader.open(fs, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  assert.ok((await reader.readFile('/data/big.bin')).equals(big));
  await verifyRepository(reader);
  // Every chunk is checked: a missing middle chunk fails reading and verification, naming the object.
  const lost = chunks[1]!.hash.objectKey('P');
  await fs.delete([lost]);
  await assert.rejects(reader.readFile('/data/big.bin'), (err: Error) => err.message.includes(lost));
  await assert.rejects(verifyRepository(reader), (err: Error) => err.message.includes(lost) && err.message.includes('/data/big.bin'));
  reader.close();
});

test('a file that changes while it is read fails the publish and leaves the repository as it was', async () => {
  const { work, fs, keys } = await setup('changing');
  const src = join(work, 'src');
  buildTree(src);
  const store = new PassThroughStore(fs);
  const before = (await readHead(fs))!.manifest.revision;
  let touched = false;
  // The first chunk's upload happens while the worker still reads the rest of the file.
  store.onPut = (key) => {
    if (key.endsWith('P') && !touched) {
      touched = true;
      appendFileSync(join(src, 'data/big.bin'), 'x');
    }
  };
  await assert.rejects(publishDirectory(store, src, { fqrn: FQRN, keys }), /big\.bin: file changed while it was read/);
  assert.ok(touched);
  assert.equal((await readHead(fs))!.manifest.revision, before);
  const reader = await RepositoryReader.open(fs, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  assert.deepEqual((await reader.list('/')).map((e) => e.name), []);
  await verifyRepository(reader);
  reader.close();
});

test('the pool keeps the bytes handed to a slow upload under its bound, for files and streams alike', async () => {
  const work = tempDir('bound');
  const content = randomBytes(24 * MiB);
  const file = join(work, 'f');
  writeFileSync(file, content);
  const bound = 2 * MiB;
  let pending = 0;
  let peak = 0;
  const uploaded = new Map<string, Buffer>();
  // One object at a time, slower than compression: without backpressure the bytes waiting would grow.
  let line = Promise.resolve();
  const upload = (o: PreparedObject): Promise<void> => {
    pending += o.stored.length;
    peak = Math.max(peak, pending);
    line = line.then(() => new Promise((r) => setTimeout(r, 60))).then(() => {
      uploaded.set(o.key, o.stored);
      pending -= o.stored.length;
    });
    return line;
  };
  const chunking = { minSize: 256 * 1024, avgSize: 512 * 1024, maxSize: MiB };
  const pool = new CompressPool({ algorithm: 'sha1', workers: 1, chunking, sink: { upload }, bytesInFlightPerWorker: bound });
  try {
    const { mtimeNs, size } = await import('node:fs').then((f) => f.statSync(file, { bigint: true }));
    const fromFile = await pool.compress(file, Number(size), mtimeNs);
    assert.equal(fromFile.hash, null);
    assert.ok(fromFile.chunks.length > 15, `${fromFile.chunks.length} chunks`);
    assert.deepEqual(fromFile.chunks.slice(1).map((c) => c.offset), cutOffsets(content, chunking));
    for (const c of fromFile.chunks) assert.ok(uploaded.has(c.hash.objectKey('P')), 'resolved only after its chunks are stored');
    assert.ok(peak > 0 && peak <= bound, `peak in flight ${peak} bytes, bound ${bound}`);
    assert.ok(pool.peakBytesInFlight <= bound, `pool peak ${pool.peakBytesInFlight}`);

    // The same bytes as a stream in odd pieces: the same chunks, under the same bound.
    peak = 0;
    const pieces = function* () { for (let off = 0; off < content.length; off += 100_003) yield content.subarray(off, off + 100_003); };
    const fromStream = await pool.compressStream(Readable.from(pieces()), { expectedSize: content.length });
    assert.deepEqual(fromStream.chunks.map((c) => [c.offset, c.size, c.hash.toHex()]), fromFile.chunks.map((c) => [c.offset, c.size, c.hash.toHex()]));
    assert.ok(peak <= bound, `stream peak ${peak}`);

    // A stream no longer than the minimum chunk is one ordinary object.
    const small = await pool.compressStream(Readable.from([Buffer.from('abc')]));
    assert.ok(small.hash?.equals(ContentHash.of('sha1', deflateSync(Buffer.from('abc')))));
    assert.deepEqual(small.chunks, []);
    assert.ok(uploaded.has(small.hash!.objectKey('')));

    await assert.rejects(pool.compressStream(Readable.from([Buffer.from('abc')]), { expectedSize: 4, what: 'member x' }), /member x gave 3 bytes, 4 expected/);
    const failing = new Readable({ read() { this.destroy(new Error('tar stream truncated')); } });
    await assert.rejects(pool.compressStream(failing), /tar stream truncated/);
    await assert.rejects(pool.compress(file, Number(size), mtimeNs - 1n), /changed after it was scanned/);
    // The pool still works after failures.
    writeFileSync(join(work, 'g'), 'after');
    const g = (await import('node:fs')).statSync(join(work, 'g'), { bigint: true });
    assert.ok((await pool.compress(join(work, 'g'), 5, g.mtimeNs)).hash?.equals(ContentHash.of('sha1', deflateSync(Buffer.from('after')))));
    // A small file (one read, one stat after it) that differs from the scan in mtime, or grew or shrank
    // since, is refused too.
    await assert.rejects(pool.compress(join(work, 'g'), 5, g.mtimeNs - 1n), /changed after it was scanned/);
    await assert.rejects(pool.compress(join(work, 'g'), 4, g.mtimeNs), /changed after it was scanned/);
    await assert.rejects(pool.compress(join(work, 'g'), 6, g.mtimeNs), /became shorter/);
  } finally {
    await pool.close();
  }
});

test('one large file is spread over the workers, with the same chunks as one worker reading it whole', async () => {
  const work = tempDir('spread');
  const content = randomBytes(12 * MiB);
  const file = join(work, 'f');
  writeFileSync(file, content);
  const uploaded = new Map<string, Buffer>();
  const upload = async (o: PreparedObject): Promise<void> => { uploaded.set(o.key, o.stored); };
  const chunking = { minSize: 256 * 1024, avgSize: 512 * 1024, maxSize: MiB };
  const pool = new CompressPool({ algorithm: 'sha1', workers: 2, chunking, sink: { upload } });
  try {
    const st = (await import('node:fs')).statSync(file, { bigint: true });
    const spread = await pool.compress(file, content.length, st.mtimeNs);
    // The worker that scans for cuts is busy while the first pieces arrive, so the other one takes them.
    assert.ok(pool.piecesPerWorker.every((n) => n > 0), `pieces per worker ${pool.piecesPerWorker.join(', ')}`);
    assert.deepEqual(spread.chunks.slice(1).map((c) => c.offset), cutOffsets(content, chunking));
    const whole = await pool.compressStream(Readable.from([content]), { expectedSize: content.length });
    assert.deepEqual(spread.chunks.map((c) => [c.offset, c.size, c.hash.toHex()]), whole.chunks.map((c) => [c.offset, c.size, c.hash.toHex()]));
    assert.equal(spread.storedBytes, whole.storedBytes);
    for (const c of spread.chunks) {
      const stored = uploaded.get(c.hash.objectKey('P'))!;
      assert.ok(c.hash.equals(ContentHash.of('sha1', stored)));
      assert.ok(deflateSync(content.subarray(c.offset, c.offset + c.size)).equals(stored));
    }

    // Over the minimum size but without a cut (zeros never mark one before the maximum): one ordinary object.
    const zeros = Buffer.alloc(MiB - 1);
    writeFileSync(join(work, 'z'), zeros);
    const zst = (await import('node:fs')).statSync(join(work, 'z'), { bigint: true });
    const plain = await pool.compress(join(work, 'z'), zeros.length, zst.mtimeNs);
    assert.deepEqual(plain.chunks, []);
    assert.ok(plain.hash?.equals(ContentHash.of('sha1', deflateSync(zeros))));
    assert.ok(uploaded.has(plain.hash!.objectKey('')));
  } finally {
    await pool.close();
  }
});

test('chunking can be switched off and tuned through the publish options', async () => {
  const { work, fs, keys } = await setup('chunk-options');
  const src = join(work, 'src');
  mkdirSync(src);
  const data = randomBytes(6 * MiB);
  writeFileSync(join(src, 'f'), data);
  await publishDirectory(fs, src, { fqrn: FQRN, keys, chunking: false });
  let db = await rootCatalog(fs);
  assert.ok(db.lookup('/f')!.hash);
  db.close();
  appendFileSync(join(src, 'f'), 'y');
  await publishDirectory(fs, src, { fqrn: FQRN, keys, chunking: { minSize: MiB, avgSize: 2 * MiB, maxSize: 3 * MiB } });
  db = await rootCatalog(fs);
  assert.equal(db.lookup('/f')!.hash, null);
  assert.ok(db.chunks('/f', 'sha1').every((c) => c.size <= 3 * MiB));
  db.close();
  const reader = await RepositoryReader.open(fs, { fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] });
  assert.ok((await reader.readFile('/f')).equals(readFileSync(join(src, 'f'))));
  reader.close();
  await assert.rejects(publishDirectory(fs, src, { fqrn: FQRN, keys, chunking: { minSize: 8 } }), /at least 32/);
});

test('the CLI takes chunk sizes and --no-chunking, and cat streams a chunked file back byte for byte', async () => {
  const { execFileSync } = await import('node:child_process');
  const { readdirSync } = await import('node:fs');
  const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
  const work = tempDir('cli-chunks');
  const src = join(work, 'src');
  mkdirSync(src);
  const data = randomBytes(1_500_000);
  writeFileSync(join(src, 'blob'), data);
  const run = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { cwd: work, maxBuffer: 1 << 26 });
  const chunkObjects = (store: string) => readdirSync(join(work, store, 'data'), { recursive: true }).filter((f) => String(f).endsWith('P')).length;
  run('init', 'c.example.org', '--store', 'a', '--keys', 'k');
  run('publish', 'c.example.org', 'src', '--store', 'a', '--keys', 'k', '--chunk-sizes', '65536,131072,262144', '-q', '--no-cache');
  assert.ok(chunkObjects('a') >= 5, 'several chunk objects');
  const back = run('cat', 'a', '/blob', '--fqrn', 'c.example.org', '--pubkey', join('k', 'c.example.org.pub'), '--no-cache');
  assert.ok(back.equals(data), 'cat returns the file');
  run('init', 'c.example.org', '--store', 'b', '--keys', 'k');
  run('publish', 'c.example.org', 'src', '--store', 'b', '--keys', 'k', '--no-chunking', '-q', '--no-cache');
  assert.equal(chunkObjects('b'), 0);
  assert.throws(() => run('publish', 'c.example.org', 'src', '--store', 'b', '--keys', 'k', '--chunk-sizes', '100,50,200'),
    (err: { stderr?: Buffer }) => /min < avg < max/.test(String(err.stderr)));
});
