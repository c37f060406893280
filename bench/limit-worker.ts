// The machine's own limit: zlib level 6 + SHA-1 over in-memory bytes, no I/O, no bookkeeping.
import { parentPort, workerData } from 'node:worker_threads';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { putContentAddressedSync } from '../src/store/fs-store.js';
import { ContentHash } from '../src/format/hash.js';

/** A whole file, or a piece of one (a large file's share is cut into chunk-sized pieces). */
export type LimitInput = string | { path: string; offset: number; length: number };

function load(input: LimitInput): Buffer {
  if (typeof input === 'string') return readFileSync(input);
  const fd = openSync(input.path, 'r');
  try {
    const b = Buffer.allocUnsafe(input.length);
    for (let got = 0; got < b.length;) got += readSync(fd, b, got, b.length - got, input.offset + got);
    return b;
  } finally {
    closeSync(fd);
  }
}

const inputs: LimitInput[] = workerData.files;
const buffers = inputs.map(load);
parentPort!.postMessage('loaded');
// 'go': compress and hash only. 'write:<dir>': also store each object as the filesystem store does,
// which adds what creating one file per object costs on this disk.
parentPort!.on('message', (cmd: string) => {
  const storeRoot = cmd.startsWith('write:') ? cmd.slice(6) : undefined;
  let stored = 0;
  for (const b of buffers) {
    const z = deflateSync(b, { level: 6 });
    const digest = createHash('sha1').update(z).digest();
    if (storeRoot) putContentAddressedSync(storeRoot, new ContentHash('sha1', digest).objectKey(''), z);
    stored += z.length;
  }
  parentPort!.postMessage(stored);
});
