// Content-defined chunking as the stock publisher does it (spec §3.1): an xor32 rolling value over the
// last 32 bytes marks a cut where it lands close to a magic number. Incremental, so that a file of any
// size passes through in blocks and never has to be held whole.

export interface ChunkingParameters {
  /** No chunk but the last is shorter; a file of at most this size is never chunked. */
  minSize: number;
  /** Target mean chunk size; sets the cut threshold. */
  avgSize: number;
  /** A chunk is cut here when no mark was found before. */
  maxSize: number;
}

/** The stock defaults (CVMFS_MIN/AVG/MAX_CHUNK_SIZE). */
export const DEFAULT_CHUNKING: Readonly<ChunkingParameters> = Object.freeze({
  minSize: 4 * 1024 * 1024,
  avgSize: 8 * 1024 * 1024,
  maxSize: 16 * 1024 * 1024,
});

const WINDOW = 32;
const MAGIC = 0x7fffffff;

/** Fills unset fields with the defaults and checks 32 ≤ min < avg < max (the stock detector asserts it). */
export function chunkingParameters(given: Partial<ChunkingParameters> = {}): ChunkingParameters {
  const p = { ...DEFAULT_CHUNKING, ...given };
  for (const [name, v] of Object.entries(p)) {
    if (!Number.isSafeInteger(v)) throw new Error(`chunk ${name} must be a whole number of bytes, got ${v}`);
  }
  if (p.minSize < WINDOW) throw new Error(`minimum chunk size must be at least ${WINDOW} bytes, got ${p.minSize}`);
  if (!(p.minSize < p.avgSize && p.avgSize < p.maxSize)) {
    throw new Error(`chunk sizes must satisfy min < avg < max, got ${p.minSize} / ${p.avgSize} / ${p.maxSize}`);
  }
  if (p.avgSize > 0xffffffff) throw new Error(`average chunk size must be below 4 GiB, got ${p.avgSize}`);
  return p;
}

/**
 * Finds cut offsets in a byte stream fed in pieces of any size. A cut at `o` ends a chunk before byte
 * `o`; a cut is reported only once byte `o` has been seen, so the end of the stream is never a cut and
 * the bytes after the last cut form the last chunk. No cut at all means a single piece: an ordinary,
 * unchunked object (spec §3.1 step 3).
 */
export class Xor32Chunker {
  private readonly min: number;
  private readonly max: number;
  private readonly threshold: number;
  /** Absolute offset of the next byte `push` will receive. */
  private fed = 0;
  /** Absolute offset of the next byte the scan looks at (may lie beyond `fed`: skipped bytes). */
  private next = 0;
  private lastCut = 0;
  private x = 0;

  constructor(params: ChunkingParameters = DEFAULT_CHUNKING) {
    const p = chunkingParameters(params);
    this.min = p.minSize;
    this.max = p.maxSize;
    this.threshold = Math.floor(0xffffffff / p.avgSize);
  }

  /** Bytes fed so far. */
  get offset(): number {
    return this.fed;
  }

  /** The rolling value as an unsigned 32-bit number (what the stock unit test inspects). */
  get rolling(): number {
    return this.x >>> 0;
  }

  /** Feeds the next bytes; returns the absolute cut offsets found, ascending. */
  push(data: Uint8Array): number[] {
    const cuts: number[] = [];
    const base = this.fed;
    const end = base + data.length;
    this.fed = end;
    const { min, max, threshold } = this;
    let i = this.next;
    let x = this.x;
    while (i < end) {
      const s = this.lastCut;
      // The rolling value depends on the last 32 bytes only: start it 32 bytes before the first test.
      if (i < s + min - WINDOW) i = s + min - WINDOW;
      if (i >= end) break;
      const testFrom = s + min;
      const preEnd = Math.min(testFrom, end);
      for (; i < preEnd; i++) x = (x << 1) ^ data[i - base]!;
      if (i < testFrom) break;
      const maxEnd = s + max;
      let cut = -1;
      if (i === maxEnd) {
        cut = i;
      } else {
        const scanEnd = Math.min(maxEnd, end);
        for (; i < scanEnd; i++) {
          x = (x << 1) ^ data[i - base]!;
          // |int32(x - MAGIC)| < T; at int32 minimum the stock abs() is undefined, taken here as 2^31 (no cut).
          const d = (x - MAGIC) | 0;
          if (d < threshold && d > -threshold) {
            cut = i;
            break;
          }
        }
        // A forced cut at max needs byte maxEnd to exist; otherwise the next push (or the end) decides.
        if (cut < 0 && i === maxEnd && i < end) cut = i;
      }
      if (cut < 0) break;
      cuts.push(cut);
      this.lastCut = cut;
      x = 0;
      i = cut;
    }
    this.next = i;
    this.x = x;
    return cuts;
  }
}

/** Cut offsets of a whole buffer (tests and small inputs). */
export function cutOffsets(data: Uint8Array, params: ChunkingParameters = DEFAULT_CHUNKING): number[] {
  return new Xor32Chunker(params).push(data);
}

/**
 * Splits a byte stream into chunks: feed blocks, get back each chunk as the list of block slices
 * that make it up (no copies). Memory held is at most one chunk's bytes.
 */
export class ChunkSplitter {
  private readonly chunker: Xor32Chunker;
  private pieces: Uint8Array[] = [];
  private pieceStart = 0;
  private cuts = 0;

  constructor(params: ChunkingParameters = DEFAULT_CHUNKING) {
    this.chunker = new Xor32Chunker(params);
  }

  /** Chunks completed by this block, each with its absolute offset. */
  push(block: Uint8Array): { offset: number; pieces: Uint8Array[] }[] {
    const base = this.chunker.offset;
    const done: { offset: number; pieces: Uint8Array[] }[] = [];
    let from = 0;
    for (const cut of this.chunker.push(block)) {
      const at = cut - base;
      if (at > from) this.pieces.push(block.subarray(from, at));
      done.push({ offset: this.pieceStart, pieces: this.pieces });
      this.pieces = [];
      this.pieceStart = cut;
      from = at;
      this.cuts++;
    }
    if (from < block.length) this.pieces.push(block.subarray(from));
    return done;
  }

  /** The last chunk; `chunked` is false when no cut was found (the content is one ordinary object). */
  finish(): { offset: number; pieces: Uint8Array[]; chunked: boolean } {
    const last = { offset: this.pieceStart, pieces: this.pieces, chunked: this.cuts > 0 };
    this.pieces = [];
    return last;
  }
}

/**
 * The stock test-data generator (`util/prng.h`, the MMIX linear congruential generator), so the
 * stock chunking vectors can be reproduced. The 64-bit state is kept as four 16-bit limbs: exact,
 * and far faster than BigInt.
 */
export class CvmfsPrng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: bigint) {
    const limb = (k: number) => Number((BigInt.asUintN(64, seed) >> BigInt(16 * k)) & 0xffffn);
    this.s0 = limb(0);
    this.s1 = limb(1);
    this.s2 = limb(2);
    this.s3 = limb(3);
  }

  /** A number in [0, boundary) as `Prng::Next` computes it (same double operations, same rounding). */
  next(boundary: number): number {
    // state = state * 6364136223846793005 + 1442695040888963407 (mod 2^64), limb by limb.
    const { s0, s1, s2, s3 } = this;
    let t = s0 * 0x7f2d + 0x814f;
    const r0 = t % 65536;
    t = Math.floor(t / 65536) + s0 * 0x4c95 + s1 * 0x7f2d + 0xf767;
    const r1 = t % 65536;
    t = Math.floor(t / 65536) + s0 * 0xf42d + s1 * 0x4c95 + s2 * 0x7f2d + 0x7b7e;
    const r2 = t % 65536;
    t = Math.floor(t / 65536) + s0 * 0x5851 + s1 * 0xf42d + s2 * 0x4c95 + s3 * 0x7f2d + 0x1405;
    const r3 = t % 65536;
    this.s0 = r0;
    this.s1 = r1;
    this.s2 = r2;
    this.s3 = r3;
    // One double addition of two exact halves rounds like C's uint64 → double conversion.
    const state = (r3 * 65536 + r2) * 4294967296 + (r1 * 65536 + r0);
    return Math.floor((state * boundary) / 18446744073709551616) % boundary;
  }

  /** `n` bytes of `Next(256)`, as the stock tests fill their buffers. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.next(256);
    return out;
  }
}
