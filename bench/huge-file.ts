// One huge file against the limit of zlib-6 + SHA-1 on every core, in interleaved rounds, medians
// printed: `node dist/bench/huge-file.js` (SCVMFS_BENCH_HUGE_MB, default 1024; SCVMFS_BENCH_ROUNDS,
// default 3). SCVMFS_BENCH_PUBLISH names another build's publish-directory.js to time instead.
import { availableParallelism, tmpdir } from 'node:os';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { FsStore } from '../src/store/fs-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import type { publishDirectory as PublishDirectory } from '../src/publish/publish-directory.js';
import { limitSeconds } from './limit.js';
import { median } from './median.js';

const mb = Number(process.env.SCVMFS_BENCH_HUGE_MB ?? 1024);
const rounds = Number(process.env.SCVMFS_BENCH_ROUNDS ?? 3);
const workers = availableParallelism();
const module = process.env.SCVMFS_BENCH_PUBLISH ? pathToFileURL(process.env.SCVMFS_BENCH_PUBLISH).href : '../src/publish/publish-directory.js';
const { publishDirectory } = await import(module) as { publishDirectory: typeof PublishDirectory };
const work = mkdtempSync(join(tmpdir(), 'scvmfs-huge-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// Base64 text in lines: compresses to about three quarters, and its cuts fall where xor32 puts them.
const src = join(work, 'src');
const file = join(src, 'huge.bin');
(await import('node:fs')).mkdirSync(src);
const fd = openSync(file, 'w');
for (let left = mb << 20; left > 0;) {
  const block = Buffer.from(randomBytes(3 << 18).toString('base64').replace(/(.{76})/g, '$1\n')).subarray(0, Math.min(left, 1 << 20));
  writeSync(fd, block);
  left -= block.length;
}
closeSync(fd);

const all: number[] = [];
const one: number[] = [];
const pub: number[] = [];
const cores: number[] = [];
const fqrn = 'huge.example.org';
const keys = await generateRepositoryKeys(fqrn);
for (let r = 0; r < rounds; r++) {
  all.push(await limitSeconds([file], workers));
  one.push(await limitSeconds([file], 1));
  const store = new FsStore(join(work, `store-${r}`));
  await initRepository(store, { fqrn, keys });
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await publishDirectory(store, src, { fqrn, keys, xattrs: null });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  pub.push(seconds);
  cores.push((cpu.user + cpu.system) / 1e6 / seconds);
  rmSync(store.root, { recursive: true, force: true });
  console.log(`round ${r + 1}: limit ${workers} workers ${all[r]!.toFixed(2)} s, 1 worker ${one[r]!.toFixed(2)} s, publish ${seconds.toFixed(2)} s ` +
    `(${cores[r]!.toFixed(2)} cores busy), ${(100 * all[r]! / seconds).toFixed(0)} % of the limit`);
}
const m = (s: number) => `${(mb / s).toFixed(1)} MiB/s (${s.toFixed(2)} s)`;
console.log(`\none ${mb} MiB file, medians of ${rounds} rounds:`);
console.log(`  zlib-6 + SHA-1, ${workers} workers: ${m(median(all))}`);
console.log(`  zlib-6 + SHA-1, 1 worker:  ${m(median(one))}`);
console.log(`  publish (fs store):        ${m(median(pub))}, ${median(cores).toFixed(2)} cores busy, ` +
  `${(100 * median(all) / median(pub)).toFixed(0)} % of the ${workers}-worker limit (ratios per round: ` +
  `${all.map((a, i) => (a / pub[i]!).toFixed(2)).join(', ')})`);
