// The machine's limit on the same bytes as a publish: `count` worker threads deflate (level 6) and
// SHA-1-hash their share held in memory, optionally writing one file per object as the fs store does.
import { Worker } from 'node:worker_threads';
import { mkdirSync, statSync } from 'node:fs';
import type { LimitInput } from './limit-worker.js';

/** Files over 16 MiB count as 8 MiB pieces, dealt out like the rest: chunks spread over the workers. */
function limitShares(files: string[], count: number): LimitInput[][] {
  const pieces: LimitInput[] = [];
  for (const f of files) {
    const size = statSync(f).size;
    if (size <= 16 << 20) pieces.push(f);
    else for (let offset = 0; offset < size; offset += 8 << 20) pieces.push({ path: f, offset, length: Math.min(8 << 20, size - offset) });
  }
  const shares: LimitInput[][] = Array.from({ length: count }, () => []);
  pieces.forEach((p, i) => shares[i % count]!.push(p));
  return shares;
}

/** Seconds the limit workers take over these files (`writeTo`: also writing one file per object). */
export async function limitSeconds(files: string[], count: number, writeTo?: string): Promise<number> {
  // A store's root is made by init, never by a put: make it here, outside the timing.
  if (writeTo) mkdirSync(writeTo, { recursive: true });
  const ws = limitShares(files, count).map((s) => new Worker(new URL('./limit-worker.js', import.meta.url), { workerData: { files: s } }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  const t0 = process.hrtime.bigint();
  await Promise.all(ws.map((w) => new Promise((r) => { w.once('message', r); w.postMessage(writeTo ? `write:${writeTo}` : 'go'); })));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(ws.map((w) => w.terminate()));
  return seconds;
}

