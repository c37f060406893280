// The machine's own limit: zlib level 6 + SHA-1 over in-memory bytes, no I/O, no bookkeeping.
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { putContentAddressedSync } from '../src/store/fs-store.js';
import { ContentHash } from '../src/format/hash.js';

const files: string[] = workerData.files;
const buffers = files.map((f) => readFileSync(f));
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
