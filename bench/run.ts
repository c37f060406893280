// npm run bench: publish throughput next to the machine's own zlib-6 + SHA-1 limit on the same bytes
// with the same number of worker threads, so the ratio means something on a noisy machine; into a
// filesystem store on tmpfs and on the disk (each next to the limit with one object file per file
// written on the same filesystem), and into S3 (bench/s3.ts), with the requests the bucket received per
// file. Trees: small synthetic files, a software mix copied from /usr, and large chunked files.
// SCVMFS_BENCH_ROUNDS=n repeats each measurement n times and prints medians; SCVMFS_BENCH_TMPFS and
// SCVMFS_BENCH_DISK choose the two store places (default /dev/shm and /var/tmp); SCVMFS_BENCH_S3=off
// leaves S3 out.
import { scaleBench } from './scale.js';
import { replicateBench } from './replicate.js';
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
import { makeSoftwareMix } from './software-mix.js';
import { perFile, publishToS3, s3ForBench, totalRequests, type S3Server } from './s3.js';
import { median } from './median.js';

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

/** Where the fs stores go: tmpfs (both the limit and the publish without the disk's noise) and the disk. */
const places = [
  { name: 'tmpfs', dir: process.env.SCVMFS_BENCH_TMPFS ?? '/dev/shm' },
  { name: 'disk', dir: process.env.SCVMFS_BENCH_DISK ?? '/var/tmp' },
].filter((p) => { try { return statSync(p.dir).isDirectory(); } catch { return false; } })
  .map((p) => ({ ...p, dir: mkdtempSync(join(p.dir, 'scvmfs-bench-store-')) }));
process.on('exit', () => { for (const p of places) rmSync(p.dir, { recursive: true, force: true }); });
const rounds = Number(process.env.SCVMFS_BENCH_ROUNDS ?? 1);

async function publishOnce(dir: string, src: string, extra: Partial<PublishOptions> = {}): Promise<{ seconds: number; uploaded: number }> {
  const store = new FsStore(dir);
  const keys = await generateRepositoryKeys('bench.example.org');
  await initRepository(store, { fqrn: 'bench.example.org', keys });
  const t0 = process.hrtime.bigint();
  const s = await publishDirectory(store, src, { fqrn: 'bench.example.org', keys, xattrs: null, ...extra });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(dir, { recursive: true, force: true });
  return { seconds, uploaded: s.objectsUploaded };
}

/** Per place: the publish into an fs store there, and the limit with one object file per file written there. */
interface PlaceFigures { publish: number; writeLimit: number }
interface Row {
  name: string; files: number; mb: number; limit: number; places: Record<string, PlaceFigures>;
  s3?: { seconds: number; requests: MeterSnapshot };
}
const rows: Row[] = [];
let s3: S3Server | undefined;

/**
 * Publishes one tree once per variant (e.g. chunking on and off) into a store on each place, next to the
 * limits measured on the same files in the same round; with several rounds, the medians.
 */
async function scenario(name: string, tree: { src: string; files: string[]; bytes: number },
  variants: { label: string; options: Partial<PublishOptions> }[] = [{ label: '', options: {} }]): Promise<void> {
  const { src, files, bytes } = tree;
  for (const v of variants) {
    const label = v.label ? `${name} (${v.label})` : name;
    const lims: number[] = [];
    const per: Record<string, { publish: number[]; writeLimit: number[] }> = {};
    for (let r = 0; r < rounds; r++) {
      lims.push(await limitSeconds(files, workers));
      for (const p of places) {
        const f = (per[p.name] ??= { publish: [], writeLimit: [] });
        f.writeLimit.push(await limitSeconds(files, workers, join(p.dir, `limit-${rows.length}`)));
        rmSync(join(p.dir, `limit-${rows.length}`), { recursive: true, force: true });
        f.publish.push((await publishOnce(join(p.dir, `store-${rows.length}`), src, v.options)).seconds);
      }
    }
    const onS3 = s3 ? await publishToS3(s3, src, 'bench.example.org', await generateRepositoryKeys('bench.example.org'), { xattrs: null, ...v.options }) : undefined;
    const figures: Record<string, PlaceFigures> = {};
    for (const [place, f] of Object.entries(per)) figures[place] = { publish: median(f.publish), writeLimit: median(f.writeLimit) };
    report({ name: label, files: files.length, mb: bytes / 1e6, limit: median(lims), places: figures, s3: onS3 });
  }
}

function synthetic(name: string, count: number, sizeOf: (i: number) => number): { src: string; files: string[]; bytes: number } {
  const src = join(work, name);
  return { src, ...makeTree(src, count, sizeOf) };
}

function report(r: Row): void {
  rows.push(r);
  const rate = (s: number) => `${(r.files / s).toFixed(0)} files/s, ${(r.mb / s).toFixed(1)} MB/s (${s.toFixed(2)} s)`;
  console.log(`${r.name}: ${r.files} files, ${r.mb.toFixed(1)} MB${rounds > 1 ? `, medians of ${rounds} rounds` : ''}`);
  console.log(`  zlib-6 + SHA-1 limit:      ${rate(r.limit)}, ${workers} workers`);
  for (const [place, f] of Object.entries(r.places)) {
    console.log(`  publish, fs store on ${place.padEnd(5)}: ${rate(f.publish)}: ${(r.limit / f.publish).toFixed(2)} of the limit`);
    console.log(`    limit + one file per object there: ${rate(f.writeLimit)}; the publish is ${(f.writeLimit / f.publish).toFixed(2)} of it`);
  }
  if (r.s3) {
    console.log(`  publish (S3):              ${rate(r.s3.seconds)}, ${(r.limit / r.s3.seconds).toFixed(2)} of the zlib+SHA-1 limit`);
    console.log(`    ${perFile(r.s3.requests, r.files)}`);
  }
}

const server = process.env.SCVMFS_BENCH_S3 === 'off' ? 'SCVMFS_BENCH_S3=off' : await s3ForBench();
if (typeof server === 'string') console.log(`S3: skipped: ${server}`);
else s3 = server;
process.on('exit', () => s3?.stop());

console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'}, ${workers} cores, node ${process.version}`);
await scenario('small-files', synthetic('small-files', 20_000, () => 1024 + Math.floor(Math.random() * 7 * 1024)));
const mix = makeSoftwareMix(join(work, 'software-mix'));
if (mix.files.length > 0) {
  console.log(`software-mix: ${mix.files.length} files copied from /usr, ${mix.large} of them over 4 MiB`);
  await scenario('software-mix', { src: join(work, 'software-mix'), ...mix });
}
// Chunking is on by default (stock 4/8/16 MiB): 48 MiB files become about six chunks each.
await scenario('large-files', synthetic('large-files', 4, () => 48 << 20), [
  { label: 'chunked 4/8/16 MiB', options: {} },
  { label: 'chunking off', options: { chunking: false } },
]);

const placeNames = places.map((p) => p.name);
console.log(`\n| scenario | files | MB | zlib+SHA-1 limit MB/s | ${placeNames.map((p) => `publish on ${p} MB/s | of the limit | of ${p}'s one-file-per-object limit`).join(' | ')} |`);
console.log(`|---|---|---|---|${placeNames.map(() => '---|---|---|').join('')}`);
for (const r of rows) {
  const cells = placeNames.map((p) => {
    const f = r.places[p]!;
    return `${(r.mb / f.publish).toFixed(1)} | ${(r.limit / f.publish).toFixed(2)} | ${(f.writeLimit / f.publish).toFixed(2)}`;
  });
  console.log(`| ${r.name} | ${r.files} | ${r.mb.toFixed(1)} | ${(r.mb / r.limit).toFixed(1)} | ${cells.join(' | ')} |`);
}
if (s3) {
  console.log(`\nS3 (${s3.endpoint}):\n`);
  console.log('| scenario | S3 files/s | S3 MB/s | of zlib+SHA-1 | requests/file | conditional PUT/file | other/file | KiB out/file |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (!r.s3) continue;
    const q = r.s3.requests;
    const per = (n: number) => (n / r.files).toFixed(2);
    console.log(`| ${r.name} | ${(r.files / r.s3.seconds).toFixed(0)} | ${(r.mb / r.s3.seconds).toFixed(1)} | ${(r.limit / r.s3.seconds).toFixed(2)} | ` +
      `${per(totalRequests(q))} | ${per(q.conditionalPut)} | ${per(totalRequests(q) - q.conditionalPut)} | ${(q.bytesOut / r.files / 1024).toFixed(1)} |`);
  }
}

await replicateBench(work, s3);
await scaleBench(work);
