// The xor32 chunk detector against the stock unit-test vectors (t_chunk_detectors.cc,
// t_ingestion_stress.cc), fed whole and in odd-sized pieces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { chunkingParameters, ChunkSplitter, CvmfsPrng, cutOffsets, DEFAULT_CHUNKING, Xor32Chunker } from '../src/format/chunker.js';

const STOCK_TEST_SIZES = { minSize: 512000, avgSize: 1024000, maxSize: 2048000 };

// Xor32ChunkDetectorSlow: 100 MiB of Prng(42), min/avg/max 512000/1024000/2048000.
const EXPECTED_CUTS = [
  742752, 2790752, 3521796, 4188893, 4940543, 5884591, 7131564,
  8520617, 9159233, 9999783, 11202120, 11778185, 13781177, 15331152,
  16497018, 17410317, 19391774, 20086877, 20763223, 21346744, 22075173,
  22705444, 23557037, 24461261, 25118505, 25663669, 26333579, 27763062,
  28369273, 29586929, 30171732, 30794768, 31811364, 32408599, 33689064,
  34678262, 36410687, 37096663, 37682005, 38269900, 39931592, 41347607,
  42701845, 44350286, 44925654, 45893350, 47770173, 48332690, 49303250,
  49861260, 50727512, 51578678, 52176356, 52949949, 54228704, 54843051,
  55796214, 56694940, 58092222, 59294196, 60381155, 61509784, 62850141,
  63505051, 64168046, 64925423, 66252082, 67232078, 68005369, 68615410,
  69454686, 70276575, 71308716, 73356716, 73946267, 74775664, 75509293,
  77487075, 78606807, 79732133, 80467148, 81185709, 82588680, 83547234,
  84220971, 85992169, 86979928, 87845294, 88392648, 89241756, 89980293,
  91129752, 91891024, 92493793, 93792263, 94393106, 95782791, 96813116,
  97723756, 98618891, 99707336, 101755336, 103405168, 104269441,
];

let stockData: Buffer | null = null;
function prng42(): Buffer {
  stockData ??= new CvmfsPrng(42n).bytes(100 * 1024 * 1024);
  return stockData;
}

function feedInPieces(data: Uint8Array, sizes: number[], params = STOCK_TEST_SIZES): number[] {
  const chunker = new Xor32Chunker(params);
  const cuts: number[] = [];
  for (let off = 0, k = 0; off < data.length; k++) {
    const n = Math.min(sizes[k % sizes.length]!, data.length - off);
    cuts.push(...chunker.push(data.subarray(off, off + n)));
    off += n;
  }
  return cuts;
}

test('xor32 running values match the stock table', () => {
  const table = [
    5, 5, 255, 245, 0, 490, 32, 1012, 27, 2035, 11, 4077, 87, 8077, 128, 16282, 127, 32587, 224, 65142,
    63, 130259, 11, 260525, 1, 521051, 103, 1042129, 73, 2084331, 22, 4168640, 235, 8337259, 17, 16674503,
    3, 33349005, 90, 66698048, 210, 133396050, 163, 266791943, 12, 533583874, 79, 1067167819, 53, 2134335651,
    2, 4268671300, 100, 4242375404, 193, 4189783321, 64, 4084599410, 242, 3874231318, 14, 3453495330,
    111, 2612023339, 83, 929079301, 253, 1858158839, 207, 3716317473, 172, 3137667822, 62, 1980368354,
    190, 3960736634, 114, 3626505862, 39, 2958044459, 6, 1621121616, 175, 3242243087, 93, 2189518915,
    238, 84070504, 184, 168140904, 84, 336281732, 29, 672563477, 200, 1345127138,
  ];
  // min 32 so the rolling value starts at byte 0; a huge average makes a cut (which resets it) impossible here.
  const chunker = new Xor32Chunker({ minSize: 32, avgSize: 0xffffffff, maxSize: 2 ** 40 });
  for (let i = 0; i < table.length; i += 2) {
    assert.deepEqual(chunker.push(Uint8Array.of(table[i]!)), []);
    assert.equal(chunker.rolling, table[i + 1], `after input #${i / 2}`);
  }
});

test('the stock PRNG reproduces the first bytes the stock tests chunk', () => {
  // Cross-checked with BigInt arithmetic: state = state * a + c mod 2^64, byte = floor(double(state) * 256 / 2^64).
  let state = 42n;
  const expected: number[] = [];
  for (let i = 0; i < 1000; i++) {
    state = BigInt.asUintN(64, state * 6364136223846793005n + 1442695040888963407n);
    expected.push(Math.floor((Number(state) * 256) / 2 ** 64) % 256);
  }
  assert.deepEqual([...new CvmfsPrng(42n).bytes(1000)], expected);
});

test('Xor32ChunkDetectorSlow: 104 stock cut offsets over 100 MiB of Prng(42)', () => {
  assert.deepEqual(cutOffsets(prng42(), STOCK_TEST_SIZES), EXPECTED_CUTS);
});

test('the cuts do not depend on how the stream is split into buffers', () => {
  const data = prng42();
  // The stock test's buffer sizes, then awkward ones (1 byte, primes, around the window and the min size).
  for (const sizes of [[102400], [512000], [1024000], [10485760], [1, 31, 32, 33, 4093, 511999, 65537], [2048001, 7]]) {
    assert.deepEqual(feedInPieces(data, sizes), EXPECTED_CUTS, `buffers of ${sizes.join('/')} bytes`);
  }
});

test('t_ingestion_stress big file: 4 MiB of Prng(1337) cut at 976182/2247908/2944249/3518631', () => {
  const big = new CvmfsPrng(1337n).bytes(4096 * 1024);
  assert.deepEqual(cutOffsets(big, STOCK_TEST_SIZES), [976182, 2247908, 2944249, 3518631]);
  assert.deepEqual(feedInPieces(big, [1000, 3]), [976182, 2247908, 2944249, 3518631]);
});

test('t_ingestion_stress zero files: cut at max, chunk objects hash as the stock ones', () => {
  // Zeros never hit the cut mark; deflate of zeros is byte-identical to stock zlib, so the chunk
  // object names can be checked too.
  const bigZero = Buffer.alloc(4096 * 1024);
  assert.deepEqual(cutOffsets(bigZero, STOCK_TEST_SIZES), [2048000, 4096000]);
  const sha1 = (b: Buffer) => createHash('sha1').update(deflateSync(b, { level: 6 })).digest('hex');
  assert.equal(sha1(bigZero.subarray(0, 2048000)), '9a3cc4a3dd5f68bbd3a959359f213fda59b8c319');
  assert.equal(sha1(bigZero.subarray(4096000)), 'e5cb4b67a2f23f95ac6b55f2a9a265520abdcf77');
  const hugeZero = Buffer.alloc(100 * 1024 * 1024);
  const cuts = cutOffsets(hugeZero, STOCK_TEST_SIZES);
  assert.equal(cuts.length, 51);
  assert.ok(cuts.every((c, i) => c === 2048000 * (i + 1)));
  assert.equal(sha1(hugeZero.subarray(cuts[50]!)), 'f62536cf1fa2b38fcaf2d181a6d595feca0cd100');
});

test('a file no longer than the minimum, or ending exactly at max, gives no cut at its end', () => {
  const p = { minSize: 64, avgSize: 128, maxSize: 256 };
  assert.deepEqual(cutOffsets(Buffer.alloc(64), p), []);
  assert.deepEqual(cutOffsets(Buffer.alloc(256), p), []);
  assert.deepEqual(cutOffsets(Buffer.alloc(257), p), [256]);
  assert.deepEqual(feedInPieces(Buffer.alloc(512), [256], p), [256]);
  assert.deepEqual(feedInPieces(Buffer.alloc(513), [256], p), [256, 512]);
});

test('the splitter returns contiguous chunks that rebuild the input', () => {
  const data = new CvmfsPrng(7n).bytes(3 * 1024 * 1024 + 17);
  const splitter = new ChunkSplitter({ minSize: 100_000, avgSize: 200_000, maxSize: 400_000 });
  const chunks: { offset: number; bytes: Buffer }[] = [];
  for (let off = 0; off < data.length; off += 77_777) {
    for (const c of splitter.push(data.subarray(off, off + 77_777))) chunks.push({ offset: c.offset, bytes: Buffer.concat(c.pieces) });
  }
  const last = splitter.finish();
  assert.equal(last.chunked, true);
  chunks.push({ offset: last.offset, bytes: Buffer.concat(last.pieces) });
  let off = 0;
  for (const c of chunks) {
    assert.equal(c.offset, off);
    off += c.bytes.length;
  }
  assert.ok(Buffer.concat(chunks.map((c) => c.bytes)).equals(data));
  assert.deepEqual(chunks.slice(1).map((c) => c.offset), cutOffsets(data, { minSize: 100_000, avgSize: 200_000, maxSize: 400_000 }));
  const single = new ChunkSplitter();
  assert.deepEqual(single.push(Buffer.alloc(10)), []);
  assert.equal(single.finish().chunked, false);
});

test('chunk parameters: defaults 4/8/16 MiB, and 32 <= min < avg < max enforced', () => {
  assert.deepEqual(chunkingParameters(), { minSize: 4 << 20, avgSize: 8 << 20, maxSize: 16 << 20 });
  assert.deepEqual(chunkingParameters({ maxSize: 32 << 20 }), { ...DEFAULT_CHUNKING, maxSize: 32 << 20 });
  assert.throws(() => chunkingParameters({ minSize: 31, avgSize: 64, maxSize: 128 }), /at least 32/);
  assert.throws(() => chunkingParameters({ minSize: 64, avgSize: 64, maxSize: 128 }), /min < avg < max/);
  assert.throws(() => chunkingParameters({ minSize: 64, avgSize: 128, maxSize: 100 }), /min < avg < max/);
  assert.throws(() => chunkingParameters({ minSize: 1.5 }), /whole number/);
  assert.throws(() => new Xor32Chunker({ minSize: 8, avgSize: 16, maxSize: 32 }), /at least 32/);
});
