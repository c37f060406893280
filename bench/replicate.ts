// The replication figure of `npm run bench`: objects/s and MB/s of `replicate` from a served repository
// (HTTP, as from a stratum 0) into a directory and into S3, and, where the stock tools are built, stock
// `cvmfs_swissknife pull` on the same source into a directory.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { FsStore } from '../src/store/fs-store.js';
import { S3Store } from '../src/store/s3-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { HttpSource } from '../src/client/sources.js';
import { runReplication } from '../src/functions/replicate.js';
import { removeBucket, type S3Server } from './s3.js';

const FQRN = 'bench-replica.example.org';
const run = promisify(execFile);

function line(label: string, objects: number, bytes: number, seconds: number): string {
  return `  ${label.padEnd(28)} ${(objects / seconds).toFixed(0)} objects/s, ${(bytes / 1e6 / seconds).toFixed(1)} MB/s (${objects} objects, ${seconds.toFixed(2)} s)`;
}

export async function replicateBench(work: string, s3: S3Server | undefined, files = 5000): Promise<void> {
  const src = join(work, 'replicate-src');
  for (let i = 0; i < files; i++) {
    const dir = join(src, `d${Math.floor(i / 250)}`);
    if (i % 250 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}`), randomBytes(2048 + (i % 8) * 1024).toString('base64'));
  }
  const storeDir = join(work, 'replicate-source');
  const store = new FsStore(storeDir);
  const keys = await generateRepositoryKeys(FQRN);
  await initRepository(store, { fqrn: FQRN, keys });
  await publishDirectory(store, src, { fqrn: FQRN, keys });
  // `scvmfs serve` in a process of its own, as a stratum 0 would be: the source of both tools.
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'serve', '--store', storeDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /at (http:\/\/\S+?)\/?$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`scvmfs serve exited (${code})`)));
  });
  const server = { url, close: async () => { child.kill(); } };
  console.log(`\nreplication: ${files} files served over HTTP by scvmfs serve (${server.url})`);
  const event = { source: server.url, fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] };
  const once = async (label: string, replica: ObjectStore) => {
    const t0 = process.hrtime.bigint();
    const r = await runReplication(event, { replica, source: new HttpSource(server.url, { revalidate: true }) });
    console.log(line(label, r.copied, r.bytes, Number(process.hrtime.bigint() - t0) / 1e9));
  };
  try {
    await once('replicate → fs store', new FsStore(join(work, 'replica-fs')));
    if (s3) {
      const bucket = `bench-rep-${randomBytes(6).toString('hex')}`;
      const backend = new S3Store({ bucket, prefix: FQRN, endpoint: s3.endpoint, region: s3.region });
      try {
        await backend.createBucket();
        await once('replicate → S3', new RetryingStore(backend));
      } finally {
        await removeBucket(backend, bucket);
      }
    }
    const build = process.env.CVMFS_BUILD_DIR ?? join(process.env.REFBUILD ?? '/var/tmp/stock-cvmfs', 'build');
    const swissknife = join(build, 'cvmfs', 'cvmfs_swissknife');
    if (!existsSync(swissknife)) {
      console.log('  stock pull: skipped (build the stock tools: ../shared/tools/stock-cvmfs/README.md)');
      return;
    }
    const replica = join(work, 'replica-stock');
    mkdirSync(join(replica, 'data', 'txn'), { recursive: true });
    for (let i = 0; i < 256; i++) mkdirSync(join(replica, 'data', i.toString(16).padStart(2, '0')), { recursive: true });
    mkdirSync(join(work, 'stock-tmp'), { recursive: true });
    writeFileSync(join(work, 'bench.pub'), keys.masterPublicKeyPem);
    const lib = ['cvmfs', 'cvmfs/crypto', 'cvmfs/util', 'cvmfs/network'].map((d) => join(build, d)).join(':');
    const t0 = process.hrtime.bigint();
    const out = await run(swissknife, ['pull', '-m', FQRN, '-u', server.url, '-w', server.url, '-r', `local,${join(replica, 'data', 'txn')},${replica}`,
      '-x', join(work, 'stock-tmp'), '-k', join(work, 'bench.pub'), '-n', '32', '-t', '10', '-a', '2', '-R', join(work, 'bench-reflog.chksum'), '-i'],
    { env: { ...process.env, LD_LIBRARY_PATH: lib }, maxBuffer: 64 << 20 });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const chunks = Number(/Fetched (\d+) new chunks/.exec(out.stdout)?.[1] ?? 0);
    console.log(`${line('stock swissknife pull → dir', chunks, 0, seconds).replace(/, 0\.0 MB\/s/, '')} (data objects only)`);
  } finally {
    await server.close();
  }
}
