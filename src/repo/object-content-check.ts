// One object read whole and judged as `check --full` does: streamed through its hash and through zlib, so
// neither its stored nor its inflated size decides the memory the check needs.
import type { Readable } from 'node:stream';
import { createInflate } from 'node:zlib';
import { ContentHash, createHasher } from '../format/hash.js';
import type { ObjectReader, StreamResult } from '../store/object-store.js';

/** A store that can stream (every ObjectStore); a plain reader (HTTP) answers whole bodies. */
export type CheckSource = ObjectReader & { getStream?(key: string): Promise<StreamResult | null> };

export type ContentVerdict =
  | { status: 'ok'; stored: number }
  | { status: 'missing' }
  | { status: 'problem'; code: 'corrupt-object' | 'wrong-size'; message: string; stored: number };

/** Writes `chunk`, waiting while the inflater holds more than its buffer; never waits on a failed one. */
function write(inflate: ReturnType<typeof createInflate>, chunk: Buffer, failed: () => boolean): Promise<void> {
  if (inflate.write(chunk) || failed()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      inflate.off('drain', done);
      inflate.off('error', done);
      resolve();
    };
    inflate.on('drain', done);
    inflate.on('error', done);
  });
}

/** Reads `key` once and checks its bytes against `hash` and, inflated, against `size`. */
export async function checkObjectContent(source: CheckSource, key: string, hash: ContentHash, size: number, compression: 'zlib' | 'none'): Promise<ContentVerdict> {
  let pieces: AsyncIterable<Buffer> | Buffer[];
  if (source.getStream) {
    const got = await source.getStream(key);
    if (!got) return { status: 'missing' };
    pieces = got.body as Readable & AsyncIterable<Buffer>;
  } else {
    const got = await source.get(key);
    if (!got) return { status: 'missing' };
    pieces = [got.body];
  }
  const hasher = createHasher(hash.algorithm);
  let stored = 0;
  let inflated = 0;
  let inflateError: Error | undefined;
  const inflate = compression === 'zlib' ? createInflate() : undefined;
  const ended = inflate && new Promise<void>((resolve) => {
    inflate.on('data', (d: Buffer) => { inflated += d.length; });
    inflate.on('error', (err) => { inflateError ??= err; resolve(); });
    inflate.on('end', () => resolve());
  });
  for await (const piece of pieces) {
    hasher.update(piece);
    stored += piece.length;
    if (inflate && !inflateError) await write(inflate, piece, () => inflateError !== undefined);
    else if (!inflate) inflated += piece.length;
  }
  if (inflate) {
    if (!inflateError) inflate.end();
    await ended;
  }
  const actual = new ContentHash(hash.algorithm, hasher.digest());
  if (!actual.equals(hash)) return { status: 'problem', code: 'corrupt-object', message: `corrupt object ${key}: content hashes to ${actual.toHex()}`, stored };
  if (inflateError) return { status: 'problem', code: 'corrupt-object', message: `object ${key} is not a valid zlib stream: ${inflateError.message}`, stored };
  if (inflated !== size) return { status: 'problem', code: 'wrong-size', message: `holds ${inflated} bytes, the catalog says ${size}`, stored };
  return { status: 'ok', stored };
}
