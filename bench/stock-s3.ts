// Our publish and the stock publisher's S3 uploader into the same Ceph, on the same tree, in alternating
// rounds: `node dist/bench/stock-s3.js` (SCVMFS_BENCH_FILES, default 20000 files of 1–8 KiB;
// SCVMFS_BENCH_ROUNDS, default 3). Needs the stock tools built (../shared/tools/stock-cvmfs/) and the
// local Ceph of scripts/s3-start.sh; both publishers' requests are counted from radosgw's own log.
//
// The stock side is `cvmfs_swissknife sync` with the `cvmfs_server` defaults (overlayfs layout, SHA-1,
// zlib, chunking 4/8/16 MiB, 16 parallel S3 connections, a HEAD before every PUT) into a repository our
// library initialised in the bucket (the empty root catalog, whitelist and manifest that sync reads back
// over HTTP). Only sync is timed: the signing that follows it is a few requests and no content. Each
// timed run starts once the Ceph daemons are idle (bench/s3.ts serverIdle), so that no publisher pays
// for what the previous round's bucket deletion left the server to do.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { S3Store } from '../src/store/s3-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishToS3, removeBucket, s3ForBench, serverCpuSeconds, serverIdle, type S3Server } from './s3.js';
import { countBucketRequests, rgwLogOffset, rgwLogSettled, type ServerCounts } from './rgw-log.js';
import { median } from './median.js';

const files = Number(process.env.SCVMFS_BENCH_FILES ?? 20_000);
const rounds = Number(process.env.SCVMFS_BENCH_ROUNDS ?? 3);
const BUILD = process.env.CVMFS_BUILD_DIR ?? join(process.env.REFBUILD ?? '/var/tmp/stock-cvmfs', 'build');
const SWISSKNIFE = join(BUILD, 'cvmfs', 'cvmfs_swissknife');
const FQRN = 'stockbench.example.org';

if (!existsSync(SWISSKNIFE)) {
  console.log(`stock S3 comparison: skipped: the stock CernVM-FS tools are not built (no ${SWISSKNIFE}); ` +
    'build them with ../shared/tools/stock-cvmfs/build-cvmfs.sh');
  process.exit(0);
}
const server = await s3ForBench();
if (typeof server === 'string') { console.log(`stock S3 comparison: skipped: ${server}`); process.exit(0); }
if (rgwLogOffset() === null) { console.log('stock S3 comparison: skipped: needs the local Ceph of scripts/s3-start.sh (its request log)'); process.exit(0); }
// sync keeps publish statistics in /var/spool/cvmfs/<fqrn>/stats.db and refuses to run without it.
const spool = `/var/spool/cvmfs/${FQRN}`;
try { mkdirSync(spool, { recursive: true }); } catch (err) {
  console.log(`stock S3 comparison: skipped: stock sync needs ${spool} (${(err as Error).message})`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'scvmfs-stocks3-'));
process.on('exit', () => { rmSync(work, { recursive: true, force: true }); rmSync(spool, { recursive: true, force: true }); server.stop(); });
const src = join(work, 'src');
let bytes = 0;
for (let i = 0; i < files; i++) {
  const dir = join(src, `d${Math.floor(i / 500)}`, `s${Math.floor(i / 50) % 10}`);
  if (i % 50 === 0) mkdirSync(dir, { recursive: true });
  const size = 1024 + Math.floor(Math.random() * 7 * 1024);
  writeFileSync(join(dir, `f${i}.dat`), randomBytes(size).toString('base64').slice(0, size));
  bytes += size;
}
mkdirSync(join(work, 'empty'));

interface Run { seconds: number; cpuSeconds: number; serverCpuSeconds: number; requests: ServerCounts; idleWait: number }

function stockEnv(): NodeJS.ProcessEnv {
  const lib = ['cvmfs', 'cvmfs/crypto', 'cvmfs/util', 'cvmfs/network'].map((d) => join(BUILD, d)).join(':');
  return { ...process.env, LD_LIBRARY_PATH: `${lib}${process.env.LD_LIBRARY_PATH ? `:${process.env.LD_LIBRARY_PATH}` : ''}` };
}

/** Runs `argv` under bash's `time`, returning wall, and user + system CPU of the child. */
function timed(argv: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; cpuSeconds: number; output: string }> {
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `TIMEFORMAT='@@time %R %U %S'; time ${quoted}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /@@time ([\d.]+) ([\d.]+) ([\d.]+)/.exec(output);
      if (code !== 0 || !m) return reject(new Error(`stock sync failed (exit ${code}):\n${output.slice(-2000)}`));
      resolve({ seconds: Number(m[1]), cpuSeconds: Number(m[2]) + Number(m[3]), output });
    });
  });
}

async function stockRound(s: S3Server): Promise<Run> {
  const bucket = `stock-${randomBytes(6).toString('hex')}`;
  const store = new S3Store({ bucket, prefix: FQRN, endpoint: s.endpoint, region: s.region });
  const dir = mkdtempSync(join(work, 'stock-'));
  try {
    await store.createBucket();
    const keys = await generateRepositoryKeys(FQRN);
    const head = await initRepository(store, { fqrn: FQRN, keys });
    writeFileSync(join(dir, 'master.pub'), keys.masterPublicKeyPem);
    const url = new URL(s.endpoint);
    writeFileSync(join(dir, 's3.conf'), [
      `CVMFS_S3_HOST=${url.hostname}`, `CVMFS_S3_PORT=${url.port || 80}`, `CVMFS_S3_BUCKET=${bucket}`,
      `CVMFS_S3_ACCESS_KEY=${process.env.AWS_ACCESS_KEY_ID}`, `CVMFS_S3_SECRET_KEY=${process.env.AWS_SECRET_ACCESS_KEY}`,
      'CVMFS_S3_DNS_BUCKETS=false', '',
    ].join('\n'));
    mkdirSync(join(dir, 'tmp'));
    const idleWait = await serverIdle();
    const offset = rgwLogOffset()!;
    const server0 = serverCpuSeconds();
    const r = await timed([SWISSKNIFE, 'sync', '-u', src, '-s', src, '-c', join(work, 'empty'), '-t', join(dir, 'tmp'),
      '-b', head.rootCatalog.toHex(), '-r', `S3,${join(dir, 'tmp')},${FQRN}@${join(dir, 's3.conf')}`,
      '-w', `${s.endpoint}/${bucket}/${FQRN}`, '-o', join(dir, 'manifest'), '-e', 'sha1', '-N', FQRN,
      '-K', join(dir, 'master.pub'), '-f', 'overlayfs', '-p', '-l', '4194304', '-a', '8388608', '-h', '16777216'], stockEnv());
    const serverCpu = serverCpuSeconds() - server0;
    const marker = `marker-${randomUUID()}`;
    await store.head(marker);
    const log = await rgwLogSettled(offset, marker);
    const requests = countBucketRequests(log, bucket);
    requests.head--; // the marker
    return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, serverCpuSeconds: serverCpu, requests, idleWait };
  } finally {
    await removeBucket(store, bucket);
  }
}

async function ourRound(s: S3Server): Promise<Run> {
  const keys = await generateRepositoryKeys(FQRN);
  const r = await publishToS3(s, src, FQRN, keys, { xattrs: null });
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, serverCpuSeconds: r.serverCpuSeconds, requests: r.serverRequests!, idleWait: r.idleWait };
}

const total = (q: ServerCounts) => q.get + q.head + q.put + q.list + q.delete + q.other;
const show = (q: ServerCounts) => `${total(q)} requests (PUT ${q.put}, HEAD ${q.head}, GET ${q.get}, LIST ${q.list}, DELETE ${q.delete}` +
  `${q.other ? `, other ${q.other}` : ''}), ${(total(q) / files).toFixed(3)}/file`;

console.log(`${files} files of 1–8 KiB (${(bytes / 1e6).toFixed(1)} MB) into ${server.endpoint}, ${rounds} alternating rounds`);
const runs: Record<'ours' | 'stock', Run[]> = { ours: [], stock: [] };
for (let round = 0; round < rounds; round++) {
  for (const who of (round % 2 === 0 ? ['ours', 'stock'] : ['stock', 'ours']) as ('ours' | 'stock')[]) {
    const r = who === 'ours' ? await ourRound(server) : await stockRound(server);
    runs[who].push(r);
    console.log(`round ${round + 1} ${who.padEnd(5)}: ${(files / r.seconds).toFixed(0)} files/s (${r.seconds.toFixed(2)} s), ` +
      `publisher CPU ${r.cpuSeconds.toFixed(1)} s, Ceph CPU ${r.serverCpuSeconds.toFixed(1)} s, ${show(r.requests)}; ` +
      `waited ${r.idleWait.toFixed(0)} s before it for Ceph to go idle`);
  }
}
console.log(`\nmedians of ${rounds} rounds:`);
for (const who of ['ours', 'stock'] as const) {
  const rs = runs[who];
  console.log(`  ${who.padEnd(5)}: ${(files / median(rs.map((r) => r.seconds))).toFixed(0)} files/s (${median(rs.map((r) => r.seconds)).toFixed(2)} s), ` +
    `publisher CPU ${median(rs.map((r) => r.cpuSeconds)).toFixed(1)} s, Ceph CPU ${median(rs.map((r) => r.serverCpuSeconds)).toFixed(1)} s, ` +
    `${show(rs[0]!.requests)}`);
}
console.log(`  ours / stock speed, per round: ${runs.ours.map((o, i) => (runs.stock[i]!.seconds / o.seconds).toFixed(2)).join(', ')}`);
