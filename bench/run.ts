// npm run bench: publish throughput next to the machine's own zlib-6 + SHA-1 limit on the same bytes
// with the same number of worker threads, so the ratio means something on a noisy machine; into a
// filesystem store and into S3 (bench/s3.ts), with the requests the bucket received per file.
import { scaleBench } from './scale.js';
import { replicateBench } from './replicate.js';
import { Worker } from 'node:worker_threads';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FsStore } from '../src/store/fs-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory, type PublishOptions } from '../src/publish/publish-directory.js';
import type { MeterSnapshot } from '../src/store/metered-store.js';
import { limitSeconds } from './limit.js';
import { perFile, publishToS3, s3ForBench, totalRequests, type S3Server } from './s3.js';

const workers = availableParallelism();
const work = mkdtempSync(join(tmpdir(), 'scvmfs-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Compressible like real software: text-ish bytes with repetition, plus some binary noise. */
function content(size: number): Buffer {
  const words = randomBytes(Math.ceil(size / 4)).toString('base64');
  const out = Buffer.alloc(size);
  for (let off = 0; off < size;) {
    const start = Math.floor(Math.random() * Math.max(1, words.length - 64));
    off += out.write(words.slice(start, start + 16 + Math.floor(Math.random() * 48)) + ' ', off);
  }
  return out;
}

function makeTree(root: string, count: number, sizeOf: (i: number) => number): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const dir = join(root, `d${Math.floor(i / 500)}`, `s${Math.floor(i / 50) % 10}`);
    if (i % 50 === 0) mkdirSync(dir, { recursive: true });
    const f = join(dir, `f${i}.dat`);
    const size = sizeOf(i);
    writeFileSync(f, content(size));
    files.push(f);
    bytes += size;
  }
  return { files, bytes };
}

async function publishOnce(name: string, src: string, extra: Partial<PublishOptions> = {}): Promise<{ seconds: number; uploaded: number }> {
  const store = new FsStore(join(work, `store-${name}`));
  const keys = await generateRepositoryKeys('bench.example.org');
  await initRepository(store, { fqrn: 'bench.example.org', keys });
  const t0 = process.hrtime.bigint();
  const s = await publishDirectory(store, src, { fqrn: 'bench.example.org', keys, ...extra });
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, uploaded: s.objectsUploaded };
}

interface Row {
  name: string; files: number; mb: number; publish: number; limit: number; writeLimit: number;
  s3?: { seconds: number; requests: MeterSnapshot };
}
const rows: Row[] = [];
let s3: S3Server | undefined;

/** Publishes the same tree once per variant (e.g. chunking on and off), next to the same limits. */
async function scenario(name: string, count: number, sizeOf: (i: number) => number,
  variants: { label: string; options: Partial<PublishOptions> }[] = [{ label: '', options: {} }]): Promise<void> {
  const src = join(work, name);
  const { files, bytes } = makeTree(src, count, sizeOf);
  const lim = await limitSeconds(files, workers);
  const writeLim = await limitSeconds(files, workers, join(work, `limit-store-${name}`));
  for (const v of variants) {
    const label = v.label ? `${name} (${v.label})` : name;
    const pub = await publishOnce(`${name}-${rows.length}`, src, v.options);
    const onS3 = s3 ? await publishToS3(s3, src, 'bench.example.org', await generateRepositoryKeys('bench.example.org'), v.options) : undefined;
    report(label, count, bytes, pub, lim, writeLim, onS3);
  }
}

function report(name: string, count: number, bytes: number, pub: { seconds: number }, lim: number, writeLim: number,
  onS3?: { seconds: number; requests: MeterSnapshot }): void {
  rows.push({ name, files: count, mb: bytes / 1e6, publish: pub.seconds, limit: lim, writeLimit: writeLim, s3: onS3 });
  const r = rows[rows.length - 1]!;
  console.log(`${name}: ${count} files, ${r.mb.toFixed(1)} MB`);
  console.log(`  publish (fs store):   ${(count / pub.seconds).toFixed(0)} files/s, ${(r.mb / pub.seconds).toFixed(1)} MB/s (${pub.seconds.toFixed(2)} s)`);
  console.log(`  zlib-6 + SHA-1 limit: ${(count / lim).toFixed(0)} files/s, ${(r.mb / lim).toFixed(1)} MB/s (${lim.toFixed(2)} s, ${workers} workers)`);
  console.log(`  + one file per object:  ${(count / writeLim).toFixed(0)} files/s, ${(r.mb / writeLim).toFixed(1)} MB/s (${writeLim.toFixed(2)} s)`);
  console.log(`  ratio: ${(100 * lim / pub.seconds).toFixed(0)} % of the zlib+SHA-1 limit, ${(100 * writeLim / pub.seconds).toFixed(0)} % of the limit with object files`);
  if (onS3) {
    console.log(`  publish (S3):         ${(count / onS3.seconds).toFixed(0)} files/s, ${(r.mb / onS3.seconds).toFixed(1)} MB/s (${onS3.seconds.toFixed(2)} s), ${(100 * lim / onS3.seconds).toFixed(0)} % of the zlib+SHA-1 limit`);
    console.log(`    ${perFile(onS3.requests, count)}`);
  }
}

const server = await s3ForBench();
if (typeof server === 'string') console.log(`S3: skipped: ${server}`);
else s3 = server;
process.on('exit', () => s3?.stop());

console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'}, ${workers} cores, node ${process.version}`);
await scenario('small-files', 20_000, () => 1024 + Math.floor(Math.random() * 7 * 1024));
// Chunking is on by default (stock 4/8/16 MiB): 48 MiB files become about six chunks each.
await scenario('large-files', 4, () => 48 << 20, [
  { label: 'chunked 4/8/16 MiB', options: {} },
  { label: 'chunking off', options: { chunking: false } },
]);

console.log('\n| scenario | files | MB | publish files/s | publish MB/s | zlib+SHA-1 MB/s | % of it | + object files MB/s | % of it |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.files} | ${r.mb.toFixed(1)} | ${(r.files / r.publish).toFixed(0)} | ${(r.mb / r.publish).toFixed(1)} | ${(r.mb / r.limit).toFixed(1)} | ${(100 * r.limit / r.publish).toFixed(0)} % | ${(r.mb / r.writeLimit).toFixed(1)} | ${(100 * r.writeLimit / r.publish).toFixed(0)} % |`);
}
if (s3) {
  console.log(`\nS3 (${s3.endpoint}):\n`);
  console.log('| scenario | S3 files/s | S3 MB/s | % of zlib+SHA-1 | vs fs store | requests/file | conditional PUT/file | other/file | KiB out/file |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (!r.s3) continue;
    const q = r.s3.requests;
    const per = (n: number) => (n / r.files).toFixed(2);
    console.log(`| ${r.name} | ${(r.files / r.s3.seconds).toFixed(0)} | ${(r.mb / r.s3.seconds).toFixed(1)} | ${(100 * r.limit / r.s3.seconds).toFixed(0)} % | ` +
      `${(100 * r.publish / r.s3.seconds).toFixed(0)} % | ${per(totalRequests(q))} | ${per(q.conditionalPut)} | ${per(totalRequests(q) - q.conditionalPut)} | ${(q.bytesOut / r.files / 1024).toFixed(1)} |`);
  }
}

await replicateBench(work, s3);
await scaleBench(work);
