// Small files into S3 with the signed data PUTs and with the SDK for every PUT, in alternating rounds
// on the same tree: `node dist/bench/s3-puts.js` (SCVMFS_BENCH_FILES, default 5000; SCVMFS_BENCH_ROUNDS,
// default 3). Prints time, main-thread busy share, CPU of the publisher and of the local Ceph daemons.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { publishToS3, s3ForBench, totalRequests, type S3PublishResult } from './s3.js';
import { median } from './median.js';

const files = Number(process.env.SCVMFS_BENCH_FILES ?? 5000);
const rounds = Number(process.env.SCVMFS_BENCH_ROUNDS ?? 3);
const server = await s3ForBench();
if (typeof server === 'string') throw new Error(`no S3 server: ${server}`);
const work = mkdtempSync(join(tmpdir(), 'scvmfs-s3puts-'));
process.on('exit', () => { rmSync(work, { recursive: true, force: true }); server.stop(); });
const src = join(work, 'src');
for (let i = 0; i < files; i++) {
  const dir = join(src, `d${Math.floor(i / 500)}`, `s${Math.floor(i / 50) % 10}`);
  if (i % 50 === 0) mkdirSync(dir, { recursive: true });
  const size = 1024 + Math.floor(Math.random() * 7 * 1024);
  writeFileSync(join(dir, `f${i}.dat`), randomBytes(size).toString('base64').slice(0, size));
}
const fqrn = 'puts.example.org';
const keys = await generateRepositoryKeys(fqrn);
const runs: Record<'signed' | 'sdk', S3PublishResult[]> = { signed: [], sdk: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of (r % 2 === 0 ? ['signed', 'sdk'] : ['sdk', 'signed']) as ('signed' | 'sdk')[]) {
    const res = await publishToS3(server, src, fqrn, keys, { xattrs: null }, { signedPuts: mode === 'signed' });
    runs[mode].push(res);
    console.log(`round ${r + 1} ${mode}: ${(files / res.seconds).toFixed(0)} files/s (${res.seconds.toFixed(2)} s), main thread ` +
      `${(100 * res.mainThreadBusy).toFixed(0)} % busy, publisher CPU ${res.cpuSeconds.toFixed(1)} s, Ceph CPU ${res.serverCpuSeconds.toFixed(1)} s, ` +
      `${(totalRequests(res.requests) / files).toFixed(3)} requests/file`);
  }
}
console.log(`\n${files} files of 1-8 KiB, medians of ${rounds} rounds:`);
for (const mode of ['signed', 'sdk'] as const) {
  const rs = runs[mode];
  console.log(`  ${mode}: ${(files / median(rs.map((r) => r.seconds))).toFixed(0)} files/s, main thread ${(100 * median(rs.map((r) => r.mainThreadBusy))).toFixed(0)} % busy, ` +
    `publisher CPU ${median(rs.map((r) => r.cpuSeconds)).toFixed(1)} s, Ceph CPU ${median(rs.map((r) => r.serverCpuSeconds)).toFixed(1)} s`);
}
console.log(`  signed / sdk speed, per round: ${runs.signed.map((s, i) => (runs.sdk[i]!.seconds / s.seconds).toFixed(2)).join(', ')}`);
