// The machine's own limit: zlib level 6 + SHA-1 over in-memory bytes, no I/O, no bookkeeping.
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { createHash } from 'node:crypto';

const files: string[] = workerData.files;
const buffers = files.map((f) => readFileSync(f));
parentPort!.postMessage('loaded');
parentPort!.once('message', () => {
  let stored = 0;
  for (const b of buffers) {
    const z = deflateSync(b, { level: 6 });
    createHash('sha1').update(z).digest();
    stored += z.length;
  }
  parentPort!.postMessage(stored);
});
