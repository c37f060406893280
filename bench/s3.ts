// The S3 part of `npm run bench`: publishes into a bucket on an S3 server (the local Ceph radosgw unless
// S3_ENDPOINT is set) and counts what the bucket was asked, per published file.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import { DeleteBucketCommand } from '@aws-sdk/client-s3';
import { S3Store, type S3StoreOptions } from '../src/store/s3-store.js';
import { MeteredStore, type MeterSnapshot } from '../src/store/metered-store.js';
import { RetryingStore } from '../src/store/retrying-store.js';
import { initRepository } from '../src/repo/repository.js';
import type { RepositoryKeys } from '../src/format/keys.js';
import { publishDirectory, type PublishOptions } from '../src/publish/publish-directory.js';
import { countBucketRequests, rgwLogOffset, rgwLogSettled, type ServerCounts } from './rgw-log.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface S3Server {
  endpoint: string;
  region: string;
  /** Stops the server if the bench started it. */
  stop(): void;
}

function readExports(text: string): void {
  for (const m of text.matchAll(/^export (\w+)=(.*)$/gm)) process.env[m[1]!] = m[2]!;
}

/**
 * The S3 server to publish into, as `npm test` finds it: S3_ENDPOINT if set, else a local gateway that
 * is already running, else one started with scripts/s3-start.sh (stopped again by `stop`). A string
 * says why there is none.
 */
export async function s3ForBench(): Promise<S3Server | string> {
  let started = false;
  if (!process.env.S3_ENDPOINT) {
    const envFile = join(process.env.SCVMFS_S3_DIR || '/tmp/scvmfs-s3', 'env');
    if (existsSync(envFile)) {
      readExports(readFileSync(envFile, 'utf8'));
      const up = await fetch(process.env.S3_ENDPOINT!).then(() => true, () => false);
      if (!up) delete process.env.S3_ENDPOINT;
    }
  }
  if (!process.env.S3_ENDPOINT) {
    const start = spawnSync('bash', [join(root, 'scripts/s3-start.sh')], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    if (start.status !== 0) {
      const why = start.stderr.trim().split('\n').pop() ?? `exit status ${start.status}`;
      return `could not start the local Ceph radosgw (${why}); set S3_ENDPOINT and AWS_* to use another S3 server`;
    }
    readExports(start.stdout);
    started = true;
  }
  if (!process.env.AWS_ACCESS_KEY_ID || !process.env.AWS_SECRET_ACCESS_KEY) return 'S3_ENDPOINT is set but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not';
  return {
    endpoint: process.env.S3_ENDPOINT!,
    region: process.env.AWS_REGION || 'us-east-1',
    stop: () => { if (started) spawnSync('bash', [join(root, 'scripts/s3-stop.sh')], { stdio: 'ignore' }); },
  };
}

export interface S3PublishResult {
  seconds: number;
  uploaded: number;
  /** Requests the bucket received during the publish alone (init excluded), retries included. */
  requests: MeterSnapshot;
  /** Share of the publish the main thread's event loop was busy. */
  mainThreadBusy: number;
  /** CPU of the publishing process, all threads. */
  cpuSeconds: number;
  /** CPU of the local radosgw and OSD processes during the publish (0 when they are not on this machine). */
  serverCpuSeconds: number;
  /** Seconds waited before the run for the S3 server to go idle. */
  idleWait: number;
  /** What radosgw's own log says the bucket received during the publish (local Ceph only). */
  serverRequests?: ServerCounts;
}

/** User + system CPU of the local Ceph daemons (radosgw, ceph-osd, ceph-mon), read from /proc. */
export function serverCpuSeconds(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (!/^(radosgw|ceph-osd|ceph-mon)$/.test(comm)) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone meanwhile */ }
  }
  return ticks / 100;
}

/**
 * Waits (at most `maxSeconds`) until the local S3 server is idle: under 5 % of a core over one second.
 * The previous round's bucket deletion goes on inside Ceph for a while; without the wait, whichever
 * publisher runs next pays for it. Returns the seconds waited.
 */
export async function serverIdle(maxSeconds = 60): Promise<number> {
  const start = Date.now();
  for (let before = serverCpuSeconds(); Date.now() - start < maxSeconds * 1000;) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = serverCpuSeconds();
    if (now - before < 0.05) break;
    before = now;
  }
  return (Date.now() - start) / 1000;
}

export function totalRequests(s: MeterSnapshot): number {
  return s.get + s.head + s.put + s.conditionalPut + s.list + s.delete;
}

/** Publishes `src` into a fresh bucket, stacked as `scvmfs publish` stacks an s3:// store; empties the bucket after. */
export async function publishToS3(server: S3Server, src: string, fqrn: string,
  keys: RepositoryKeys, extra: Partial<PublishOptions> = {}, storeOptions: Pick<S3StoreOptions, 'maxInFlight' | 'signedPuts'> = {}): Promise<S3PublishResult> {
  const bucket = `bench-${randomBytes(6).toString('hex')}`;
  const backend = new S3Store({ bucket, prefix: fqrn, endpoint: server.endpoint, region: server.region, ...storeOptions });
  const meter = new MeteredStore(backend);
  const store = new RetryingStore(meter);
  try {
    await backend.createBucket();
    await initRepository(store, { fqrn, keys });
    const idleWait = await serverIdle();
    meter.reset();
    const offset = rgwLogOffset();
    const server0 = serverCpuSeconds();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const s = await publishDirectory(store, src, { fqrn, keys, ...extra });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const serverCpu = serverCpuSeconds() - server0;
    let serverRequests: ServerCounts | undefined;
    if (offset !== null) {
      const marker = `marker-${randomUUID()}`;
      await backend.head(marker);
      // Another S3 server than the local Ceph never logs the marker: then there is nothing to count.
      const log = await rgwLogSettled(offset, marker, 5_000).catch(() => null);
      if (log !== null) {
        serverRequests = countBucketRequests(log, bucket);
        serverRequests.head--;
      }
    }
    return {
      seconds, uploaded: s.objectsUploaded, requests: meter.snapshot(),
      mainThreadBusy: performance.eventLoopUtilization(elu0).utilization,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      serverCpuSeconds: serverCpu, serverRequests, idleWait,
    };
  } finally {
    await removeBucket(backend, bucket);
  }
}

/** Empties and deletes a bench bucket: the local gateway keeps objects in memory, so give the space back. */
export async function removeBucket(store: S3Store, bucket: string): Promise<void> {
  for (;;) {
    const page = await store.list('').catch(() => ({ objects: [] }));
    if (page.objects.length === 0) break;
    await store.delete(page.objects.map((o) => o.key));
  }
  await (await store.sdk()).client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
  store.close();
}

/** e.g. `1.03 requests/file (conditional put 1.00, put 0.00, get 0.01, head 0.00, list 0.00, delete 0.00), 3.9 KiB out/file`. */
export function perFile(s: MeterSnapshot, files: number): string {
  const f = (n: number) => (n / files).toFixed(3);
  return `${f(totalRequests(s))} requests/file (conditional put ${f(s.conditionalPut)}, put ${f(s.put)}, get ${f(s.get)}, ` +
    `head ${f(s.head)}, list ${f(s.list)}, delete ${f(s.delete)}), ${(s.bytesOut / files / 1024).toFixed(1)} KiB out/file`;
}
