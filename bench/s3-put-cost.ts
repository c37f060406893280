// What one new object costs the S3 server itself, per way of writing it: `node dist/bench/s3-put-cost.js`
// (SCVMFS_BENCH_FILES objects of 4,500 random bytes per variant, default 3000; SCVMFS_BENCH_ROUNDS,
// default 2; 32 requests in flight). Counts the local Ceph daemons' CPU seconds per object, after
// waiting for them to go idle. The variants:
//   create-only  our data PUT: content type, cache control, x-amz-acl, If-None-Match: *
//   plain        the same PUT without the condition
//   head+put     what the stock uploader sends: a HEAD of the absent key, then the plain PUT
//   no ACL       create-only without x-amz-acl (a bucket whose policy makes the objects public)
// On a machine where the server shares the publisher's cores, this bounds how much faster than the stock
// uploader any client can be (docs/performance.md).
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { S3Store } from '../src/store/s3-store.js';
import { SignedPutter } from '../src/store/s3-signed-put.js';
import { removeBucket, s3ForBench, serverCpuSeconds, serverIdle } from './s3.js';
import { median } from './median.js';

const count = Number(process.env.SCVMFS_BENCH_FILES ?? 3000);
const rounds = Number(process.env.SCVMFS_BENCH_ROUNDS ?? 2);
const IN_FLIGHT = 32;

const server = await s3ForBench();
if (typeof server === 'string') {
  console.log(`S3 PUT cost: skipped: ${server}`);
  process.exit(0);
}
const bucket = `putcost-${randomBytes(4).toString('hex')}`;
const store = new S3Store({ bucket, endpoint: server.endpoint, region: server.region, maxInFlight: IN_FLIGHT });
const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
const putter = new SignedPutter({
  origin: server.endpoint, basePath: `/${bucket}`, region: server.region, agent, requestTimeoutMs: 60_000,
  credentials: async () => ({ accessKeyId: process.env.AWS_ACCESS_KEY_ID!, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY! }),
});
const bodies = Array.from({ length: count }, () => randomBytes(4500));
// The headers our create-only data PUT sends (content type, cache control, ACL, If-None-Match: *), as
// the store itself names them; the other variants leave one out.
const ours = store.presignedPutHeaders('data/00/variant');
const { 'if-none-match': _condition, ...unconditional } = ours;
const { 'x-amz-acl': _acl, ...withoutAcl } = ours;

const variants: Record<string, (key: string, body: Buffer) => Promise<unknown>> = {
  'create-only': (key, body) => putter.put(key, body, ours),
  plain: (key, body) => putter.put(key, body, unconditional),
  'head+put': async (key, body) => {
    await store.head(key);
    await putter.put(key, body, unconditional);
  },
  'no ACL': (key, body) => putter.put(key, body, withoutAcl),
};

async function inParallel(n: number, run: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < n) await run(next++);
  }));
}

try {
  await store.createBucket();
  console.log(`${count} new objects of 4,500 bytes per variant into ${server.endpoint}, ${IN_FLIGHT} in flight, ${rounds} rounds`);
  const perObject: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, write] of Object.entries(variants)) {
      await serverIdle();
      const cpu0 = serverCpuSeconds();
      const t0 = process.hrtime.bigint();
      await inParallel(count, (i) => write(`data/${name.replace(/\W/g, '')}-${round}/${i}`, bodies[i]!));
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const ms = (1000 * (serverCpuSeconds() - cpu0)) / count;
      (perObject[name] ??= []).push(ms);
      console.log(`round ${round + 1} ${name.padEnd(11)}: ${(count / seconds).toFixed(0)} objects/s, S3 server CPU ${ms.toFixed(2)} ms per object`);
    }
  }
  const createOnly = median(perObject['create-only']!);
  console.log(`\nmedians: ${Object.entries(perObject).map(([n, xs]) => `${n} ${median(xs).toFixed(2)} ms`).join(', ')}`);
  console.log(`head+put / create-only: ${(median(perObject['head+put']!) / createOnly).toFixed(2)} (the most a publisher that shares the server's cores can gain on the stock uploader)`);
} finally {
  await removeBucket(store, bucket);
  agent.destroy();
  server.stop();
}
