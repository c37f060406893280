// Deflate exactly as the zlib that the stock CernVM-FS tools bundle (1.2.8, deflateInit at the default
// level: lazy matching, 32 KiB window, memLevel 8) compresses, byte for byte. Node's zlib is a fork whose
// match finder differs, so its streams decode the same but are other bytes. That matters for objects a
// stock tool rebuilds from their content and stores under their old name: `cvmfs_swissknife pull`
// re-compresses the certificate and the meta-info (swissknife_pull.cc, StoreBuffer(..., true)); if our
// bytes differ from stock zlib's, the stratum 1's object no longer hashes to its name.
//
// Written from the DEFLATE format (RFC 1950/1951) and the behaviour of zlib's deflate_slow and trees; it
// handles inputs up to MAX_STOCK_DEFLATE_INPUT, which keeps the whole input inside the window (no slide).

const MIN_MATCH = 3;
const MAX_MATCH = 258;
const W_SIZE = 1 << 15;
const W_MASK = W_SIZE - 1;
const HASH_BITS = 15;
const HASH_MASK = (1 << HASH_BITS) - 1;
const HASH_SHIFT = Math.floor((HASH_BITS + MIN_MATCH - 1) / MIN_MATCH);
const MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST = W_SIZE - MIN_LOOKAHEAD;
const TOO_FAR = 4096;
const LIT_BUFSIZE = 1 << 14;
/** Level 6: good_length, max_lazy, nice_length, max_chain. */
const GOOD = 8;
const MAX_LAZY = 16;
const NICE = 128;
const MAX_CHAIN = 128;

/** Larger inputs would slide the window, which this port does not do; callers fall back to Node's zlib. */
export const MAX_STOCK_DEFLATE_INPUT = W_SIZE;

const LITERALS = 256;
const LENGTH_CODES = 29;
const L_CODES = LITERALS + 1 + LENGTH_CODES;
const D_CODES = 30;
const BL_CODES = 19;
const HEAP_SIZE = 2 * L_CODES + 1;
const MAX_BITS = 15;
const END_BLOCK = 256;
const REP_3_6 = 16;
const REPZ_3_10 = 17;
const REPZ_11_138 = 18;

const EXTRA_LBITS = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const EXTRA_DBITS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const EXTRA_BLBITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
const BL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

function reverseBits(code: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (code & 1);
    code >>>= 1;
  }
  return r;
}

/** Canonical codes from code lengths (RFC 1951 §3.2.2), bit-reversed for LSB-first output. */
function genCodes(len: Uint16Array, code: Uint16Array, maxCode: number, blCount: Uint16Array): void {
  const next = new Uint16Array(MAX_BITS + 1);
  let c = 0;
  for (let bits = 1; bits <= MAX_BITS; bits++) next[bits] = c = (c + blCount[bits - 1]!) << 1;
  for (let n = 0; n <= maxCode; n++) {
    const l = len[n]!;
    if (l !== 0) code[n] = reverseBits(next[l]!++, l);
  }
}

const LENGTH_CODE = new Uint8Array(256);
const BASE_LENGTH = new Int32Array(LENGTH_CODES);
const DIST_CODE = new Uint8Array(512);
const BASE_DIST = new Int32Array(D_CODES);
const STATIC_LLEN = new Uint16Array(L_CODES + 2);
const STATIC_LCODE = new Uint16Array(L_CODES + 2);
const STATIC_DLEN = new Uint16Array(D_CODES);
const STATIC_DCODE = new Uint16Array(D_CODES);
{
  let length = 0;
  let code = 0;
  for (code = 0; code < LENGTH_CODES - 1; code++) {
    BASE_LENGTH[code] = length;
    for (let n = 0; n < 1 << EXTRA_LBITS[code]!; n++) LENGTH_CODE[length++] = code;
  }
  LENGTH_CODE[length - 1] = code;
  let dist = 0;
  for (code = 0; code < 16; code++) {
    BASE_DIST[code] = dist;
    for (let n = 0; n < 1 << EXTRA_DBITS[code]!; n++) DIST_CODE[dist++] = code;
  }
  dist >>= 7;
  for (; code < D_CODES; code++) {
    BASE_DIST[code] = dist << 7;
    for (let n = 0; n < 1 << (EXTRA_DBITS[code]! - 7); n++) DIST_CODE[256 + dist++] = code;
  }
  const blCount = new Uint16Array(MAX_BITS + 1);
  for (let n = 0; n < 288; n++) {
    const l = n <= 143 ? 8 : n <= 255 ? 9 : n <= 279 ? 7 : 8;
    STATIC_LLEN[n] = l;
    blCount[l]!++;
  }
  genCodes(STATIC_LLEN, STATIC_LCODE, L_CODES + 1, blCount);
  for (let n = 0; n < D_CODES; n++) {
    STATIC_DLEN[n] = 5;
    STATIC_DCODE[n] = reverseBits(n, 5);
  }
}

const distCode = (dist: number) => (dist < 256 ? DIST_CODE[dist]! : DIST_CODE[256 + (dist >>> 7)]!);

class Tree {
  readonly freq: Uint16Array;
  readonly len: Uint16Array;
  readonly code: Uint16Array;
  readonly dad: Uint16Array;
  maxCode = 0;
  constructor(size: number, readonly staticLen: Uint16Array | null, readonly extra: number[], readonly base: number,
    readonly elems: number, readonly maxLength: number) {
    this.freq = new Uint16Array(size);
    this.len = new Uint16Array(size);
    this.code = new Uint16Array(size);
    this.dad = new Uint16Array(size);
  }
}

class BitWriter {
  private readonly out: number[] = [];
  private buf = 0;
  private valid = 0;

  bits(value: number, length: number): void {
    this.buf |= value << this.valid;
    this.valid += length;
    while (this.valid >= 8) {
      this.out.push(this.buf & 0xff);
      this.buf >>>= 8;
      this.valid -= 8;
    }
  }

  windup(): void {
    if (this.valid > 0) this.out.push(this.buf & 0xff);
    this.buf = 0;
    this.valid = 0;
  }

  bytes(b: ArrayLike<number>): void {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]!);
  }

  result(): Buffer {
    return Buffer.from(this.out);
  }
}

class Deflater {
  readonly w = new BitWriter();
  private readonly heap = new Int32Array(HEAP_SIZE);
  private heapLen = 0;
  private heapMax = 0;
  private readonly depth = new Uint8Array(HEAP_SIZE);
  private readonly blCount = new Uint16Array(MAX_BITS + 1);
  private readonly ltree = new Tree(HEAP_SIZE, STATIC_LLEN, EXTRA_LBITS, LITERALS + 1, L_CODES, MAX_BITS);
  private readonly dtree = new Tree(2 * D_CODES + 1, STATIC_DLEN, EXTRA_DBITS, 0, D_CODES, MAX_BITS);
  private readonly bltree = new Tree(2 * BL_CODES + 1, null, EXTRA_BLBITS, 0, BL_CODES, 7);
  private readonly dBuf = new Uint16Array(LIT_BUFSIZE);
  private readonly lBuf = new Uint8Array(LIT_BUFSIZE);
  private lastLit = 0;
  private optLen = 0;
  private staticLen = 0;

  constructor(private readonly window: Uint8Array) {
    this.initBlock();
  }

  private initBlock(): void {
    this.ltree.freq.fill(0, 0, L_CODES);
    this.dtree.freq.fill(0, 0, D_CODES);
    this.bltree.freq.fill(0, 0, BL_CODES);
    this.ltree.freq[END_BLOCK] = 1;
    this.optLen = this.staticLen = 0;
    this.lastLit = 0;
  }

  /** Records a literal (dist 0) or a match; true when the symbol buffer is full and the block must end. */
  tally(dist: number, lc: number): boolean {
    this.dBuf[this.lastLit] = dist;
    this.lBuf[this.lastLit++] = lc;
    if (dist === 0) this.ltree.freq[lc]!++;
    else {
      this.ltree.freq[LENGTH_CODE[lc]! + LITERALS + 1]!++;
      this.dtree.freq[distCode(dist - 1)]!++;
    }
    return this.lastLit === LIT_BUFSIZE - 1;
  }

  private smaller(t: Tree, n: number, m: number): boolean {
    return t.freq[n]! < t.freq[m]! || (t.freq[n] === t.freq[m] && this.depth[n]! <= this.depth[m]!);
  }

  private downheap(t: Tree, k: number): void {
    const v = this.heap[k]!;
    let j = k << 1;
    while (j <= this.heapLen) {
      if (j < this.heapLen && this.smaller(t, this.heap[j + 1]!, this.heap[j]!)) j++;
      if (this.smaller(t, v, this.heap[j]!)) break;
      this.heap[k] = this.heap[j]!;
      k = j;
      j <<= 1;
    }
    this.heap[k] = v;
  }

  private buildTree(t: Tree): void {
    let maxCode = -1;
    this.heapLen = 0;
    this.heapMax = HEAP_SIZE;
    for (let n = 0; n < t.elems; n++) {
      if (t.freq[n] !== 0) {
        this.heap[++this.heapLen] = maxCode = n;
        this.depth[n] = 0;
      } else t.len[n] = 0;
    }
    // At least two codes of non-zero frequency, so that a code is never empty.
    while (this.heapLen < 2) {
      const node = this.heap[++this.heapLen] = maxCode < 2 ? ++maxCode : 0;
      t.freq[node] = 1;
      this.depth[node] = 0;
      this.optLen--;
      if (t.staticLen) this.staticLen -= t.staticLen[node]!;
    }
    t.maxCode = maxCode;
    for (let n = this.heapLen >> 1; n >= 1; n--) this.downheap(t, n);
    let node = t.elems;
    do {
      const n = this.heap[1]!;
      this.heap[1] = this.heap[this.heapLen--]!;
      this.downheap(t, 1);
      const m = this.heap[1]!;
      this.heap[--this.heapMax] = n;
      this.heap[--this.heapMax] = m;
      t.freq[node] = t.freq[n]! + t.freq[m]!;
      this.depth[node] = Math.max(this.depth[n]!, this.depth[m]!) + 1;
      t.dad[n] = t.dad[m] = node;
      this.heap[1] = node++;
      this.downheap(t, 1);
    } while (this.heapLen >= 2);
    this.heap[--this.heapMax] = this.heap[1]!;
    this.genBitlen(t);
    genCodes(t.len, t.code, maxCode, this.blCount);
  }

  private genBitlen(t: Tree): void {
    this.blCount.fill(0);
    t.len[this.heap[this.heapMax]!] = 0;
    let overflow = 0;
    let h: number;
    for (h = this.heapMax + 1; h < HEAP_SIZE; h++) {
      const n = this.heap[h]!;
      let bits = t.len[t.dad[n]!]! + 1;
      if (bits > t.maxLength) {
        bits = t.maxLength;
        overflow++;
      }
      t.len[n] = bits;
      if (n > t.maxCode) continue;
      this.blCount[bits]!++;
      const xbits = n >= t.base ? t.extra[n - t.base]! : 0;
      const f = t.freq[n]!;
      this.optLen += f * (bits + xbits);
      if (t.staticLen) this.staticLen += f * (t.staticLen[n]! + xbits);
    }
    if (overflow === 0) return;
    do {
      let bits = t.maxLength - 1;
      while (this.blCount[bits] === 0) bits--;
      this.blCount[bits]!--;
      this.blCount[bits + 1]! += 2;
      this.blCount[t.maxLength]!--;
      overflow -= 2;
    } while (overflow > 0);
    for (let bits = t.maxLength; bits !== 0; bits--) {
      let n = this.blCount[bits]!;
      while (n !== 0) {
        const m = this.heap[--h]!;
        if (m > t.maxCode) continue;
        if (t.len[m] !== bits) {
          this.optLen += (bits - t.len[m]!) * t.freq[m]!;
          t.len[m] = bits;
        }
        n--;
      }
    }
  }

  /** Code-length runs of a tree: counted (send = false) or sent with the bit-length codes. */
  private runs(t: Tree, maxCode: number, send: boolean): void {
    const bl = this.bltree;
    const put = (c: number) => this.w.bits(bl.code[c]!, bl.len[c]!);
    let prevlen = -1;
    let nextlen = t.len[0]!;
    let count = 0;
    let maxCount = 7;
    let minCount = 4;
    if (nextlen === 0) {
      maxCount = 138;
      minCount = 3;
    }
    if (!send) t.len[maxCode + 1] = 0xffff;
    for (let n = 0; n <= maxCode; n++) {
      const curlen = nextlen;
      nextlen = t.len[n + 1]!;
      if (++count < maxCount && curlen === nextlen) continue;
      if (count < minCount) {
        if (send) do put(curlen); while (--count !== 0);
        else bl.freq[curlen]! += count;
      } else if (curlen !== 0) {
        if (send) {
          if (curlen !== prevlen) {
            put(curlen);
            count--;
          }
          put(REP_3_6);
          this.w.bits(count - 3, 2);
        } else {
          if (curlen !== prevlen) bl.freq[curlen]!++;
          bl.freq[REP_3_6]!++;
        }
      } else if (count <= 10) {
        if (send) {
          put(REPZ_3_10);
          this.w.bits(count - 3, 3);
        } else bl.freq[REPZ_3_10]!++;
      } else if (send) {
        put(REPZ_11_138);
        this.w.bits(count - 11, 7);
      } else bl.freq[REPZ_11_138]!++;
      count = 0;
      prevlen = curlen;
      if (nextlen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curlen === nextlen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  private compressBlock(lLen: Uint16Array, lCode: Uint16Array, dLen: Uint16Array, dCode: Uint16Array): void {
    for (let lx = 0; lx < this.lastLit; lx++) {
      let dist = this.dBuf[lx]!;
      let lc = this.lBuf[lx]!;
      if (dist === 0) {
        this.w.bits(lCode[lc]!, lLen[lc]!);
        continue;
      }
      let code = LENGTH_CODE[lc]!;
      this.w.bits(lCode[code + LITERALS + 1]!, lLen[code + LITERALS + 1]!);
      let extra = EXTRA_LBITS[code]!;
      if (extra !== 0) {
        lc -= BASE_LENGTH[code]!;
        this.w.bits(lc, extra);
      }
      dist--;
      code = distCode(dist);
      this.w.bits(dCode[code]!, dLen[code]!);
      extra = EXTRA_DBITS[code]!;
      if (extra !== 0) {
        dist -= BASE_DIST[code]!;
        this.w.bits(dist, extra);
      }
    }
    this.w.bits(lCode[END_BLOCK]!, lLen[END_BLOCK]!);
  }

  /** Ends a block of the input bytes [start, start + length): stored, fixed or dynamic, whichever is smallest. */
  flushBlock(start: number, length: number, last: boolean): void {
    this.buildTree(this.ltree);
    this.buildTree(this.dtree);
    this.runs(this.ltree, this.ltree.maxCode, false);
    this.runs(this.dtree, this.dtree.maxCode, false);
    this.buildTree(this.bltree);
    let maxBlindex: number;
    for (maxBlindex = BL_CODES - 1; maxBlindex >= 3; maxBlindex--) if (this.bltree.len[BL_ORDER[maxBlindex]!] !== 0) break;
    this.optLen += 3 * (maxBlindex + 1) + 5 + 5 + 4;
    let optLenb = (this.optLen + 3 + 7) >>> 3;
    const staticLenb = (this.staticLen + 3 + 7) >>> 3;
    if (staticLenb <= optLenb) optLenb = staticLenb;
    const lastBit = last ? 1 : 0;
    if (length + 4 <= optLenb) {
      this.w.bits(lastBit, 3);
      this.w.windup();
      this.w.bytes([length & 0xff, length >>> 8, ~length & 0xff, (~length >>> 8) & 0xff]);
      this.w.bytes(this.window.subarray(start, start + length));
    } else if (staticLenb === optLenb) {
      this.w.bits((1 << 1) + lastBit, 3);
      this.compressBlock(STATIC_LLEN, STATIC_LCODE, STATIC_DLEN, STATIC_DCODE);
    } else {
      this.w.bits((2 << 1) + lastBit, 3);
      const lcodes = this.ltree.maxCode + 1;
      const dcodes = this.dtree.maxCode + 1;
      this.w.bits(lcodes - 257, 5);
      this.w.bits(dcodes - 1, 5);
      this.w.bits(maxBlindex + 1 - 4, 4);
      for (let rank = 0; rank <= maxBlindex; rank++) this.w.bits(this.bltree.len[BL_ORDER[rank]!]!, 3);
      this.runs(this.ltree, lcodes - 1, true);
      this.runs(this.dtree, dcodes - 1, true);
      this.compressBlock(this.ltree.len, this.ltree.code, this.dtree.len, this.dtree.code);
    }
    this.initBlock();
    if (last) this.w.windup();
  }
}

function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i++) {
    a = (a + data[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** The zlib stream stock zlib 1.2.8 writes for `data` at the default level (what CompressMem2File writes). */
export function stockDeflate(data: Uint8Array): Buffer {
  if (data.length > MAX_STOCK_DEFLATE_INPUT) throw new RangeError(`stockDeflate handles at most ${MAX_STOCK_DEFLATE_INPUT} bytes, got ${data.length}`);
  const n = data.length;
  const window = new Uint8Array(2 * W_SIZE + MAX_MATCH);
  window.set(data);
  const head = new Uint16Array(1 << HASH_BITS);
  const prev = new Uint16Array(W_SIZE);
  const d = new Deflater(window);
  let insH = n >= 2 ? ((window[0]! << HASH_SHIFT) ^ window[1]!) & HASH_MASK : 0;
  const insert = (str: number): number => {
    insH = ((insH << HASH_SHIFT) ^ window[str + MIN_MATCH - 1]!) & HASH_MASK;
    const h = head[insH]!;
    prev[str & W_MASK] = h;
    head[insH] = str;
    return h;
  };
  let strstart = 0;
  let lookahead = n;
  let blockStart = 0;
  let matchLength = MIN_MATCH - 1;
  let matchStart = 0;
  let prevLength = MIN_MATCH - 1;
  let prevMatch = 0;
  let matchAvailable = false;

  const longestMatch = (curMatch: number): number => {
    let chain = MAX_CHAIN;
    let bestLen = prevLength;
    let nice = NICE;
    const limit = strstart > MAX_DIST ? strstart - MAX_DIST : 0;
    const strend = strstart + MAX_MATCH;
    let scanEnd1 = window[strstart + bestLen - 1]!;
    let scanEnd = window[strstart + bestLen]!;
    if (prevLength >= GOOD) chain >>= 2;
    if (nice > lookahead) nice = lookahead;
    do {
      const match = curMatch;
      if (window[match + bestLen] !== scanEnd || window[match + bestLen - 1] !== scanEnd1 ||
        window[match] !== window[strstart] || window[match + 1] !== window[strstart + 1]) continue;
      // The third byte is equal whenever the first two and the hash are.
      let scan = strstart + 3;
      let m = match + 3;
      while (scan < strend && window[scan] === window[m]) {
        scan++;
        m++;
      }
      const len = scan - strstart;
      if (len > bestLen) {
        matchStart = curMatch;
        bestLen = len;
        if (len >= nice) break;
        scanEnd1 = window[strstart + bestLen - 1]!;
        scanEnd = window[strstart + bestLen]!;
      }
    } while ((curMatch = prev[curMatch & W_MASK]!) > limit && --chain !== 0);
    return bestLen <= lookahead ? bestLen : lookahead;
  };

  while (lookahead > 0) {
    let hashHead = 0;
    if (lookahead >= MIN_MATCH) hashHead = insert(strstart);
    prevLength = matchLength;
    prevMatch = matchStart;
    matchLength = MIN_MATCH - 1;
    if (hashHead !== 0 && prevLength < MAX_LAZY && strstart - hashHead <= MAX_DIST) {
      matchLength = longestMatch(hashHead);
      if (matchLength <= 5 && matchLength === MIN_MATCH && strstart - matchStart > TOO_FAR) matchLength = MIN_MATCH - 1;
    }
    if (prevLength >= MIN_MATCH && matchLength <= prevLength) {
      const maxInsert = strstart + lookahead - MIN_MATCH;
      const full = d.tally(strstart - 1 - prevMatch, prevLength - MIN_MATCH);
      lookahead -= prevLength - 1;
      prevLength -= 2;
      do {
        if (++strstart <= maxInsert) insert(strstart);
      } while (--prevLength !== 0);
      matchAvailable = false;
      matchLength = MIN_MATCH - 1;
      strstart++;
      if (full) {
        d.flushBlock(blockStart, strstart - blockStart, false);
        blockStart = strstart;
      }
    } else if (matchAvailable) {
      if (d.tally(0, window[strstart - 1]!)) {
        d.flushBlock(blockStart, strstart - blockStart, false);
        blockStart = strstart;
      }
      strstart++;
      lookahead--;
    } else {
      matchAvailable = true;
      strstart++;
      lookahead--;
    }
  }
  if (matchAvailable) d.tally(0, window[strstart - 1]!);
  d.flushBlock(blockStart, strstart - blockStart, true);
  const adler = adler32(data);
  return Buffer.concat([Buffer.from([0x78, 0x9c]), d.w.result(), Buffer.from([adler >>> 24, (adler >>> 16) & 0xff, (adler >>> 8) & 0xff, adler & 0xff])]);
}
