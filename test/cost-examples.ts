// The three worked examples of docs/cost.md, as inputs to the projection (test/cost.test.ts checks that
// the document shows what the code computes for them).
import { emptyUsage, type Usage } from '../src/cost/usage.js';
import type { PublishSide, ReadSide } from '../src/cost/projection.js';
import { SELF_HOSTED, type PriceTable } from '../src/cost/prices.js';

const GB = 2 ** 30;
const TB = 1024 * GB;

/** A month of `publishes` publishes of `newObjects` objects each: 14 fixed requests + one create-only PUT per object. */
function publishing(publishes: number, newObjects: number, catalogBytesRead: number, lambda?: { commitSeconds: number; memoryMb: number }): Usage {
  return {
    ...emptyUsage(),
    requests: { conditionalPut: publishes * (newObjects + 5), get: publishes * 7, head: publishes, delete: publishes },
    egressBytes: publishes * catalogBytesRead,
    functions: lambda ? [
      { fn: 'lease', arch: 'arm64', memoryMb: 256, invocations: publishes * 2, billedMs: publishes * 2 * 150 },
      { fn: 'commit', arch: 'arm64', memoryMb: lambda.memoryMb, invocations: publishes * 4, billedMs: publishes * lambda.commitSeconds * 1000 },
    ] : [],
    secretCalls: lambda ? publishes * 2 : 0,
  };
}

export interface CostExample {
  name: string;
  publish: PublishSide;
  read: ReadSide;
}

export const COST_EXAMPLES: CostExample[] = [
  {
    name: 'small group repository',
    publish: {
      operationsPerMonth: publishing(30, 200, 5_000_000),
      publishesPerMonth: 30, storageBytes: 50 * GB, storageObjects: 200_000, growthBytesPerMonth: 3 * GB, secrets: 0,
    },
    read: { from: 'model', clients: 20, coldFraction: 0.05, cacheHitRatio: 0.9, ttlSeconds: 240, manifestBytes: 1024 },
  },
  {
    name: 'experiment-sized repository',
    publish: {
      operationsPerMonth: publishing(300, 2000, 50_000_000, { commitSeconds: 20, memoryMb: 1024 }),
      publishesPerMonth: 300, storageBytes: 5 * TB, storageObjects: 20_000_000, growthBytesPerMonth: 300 * GB, secrets: 1,
    },
    read: { from: 'model', clients: 500, coldFraction: 0.02, cacheHitRatio: 0.95, ttlSeconds: 240, manifestBytes: 1024 },
  },
  {
    name: 'unpacked.cern.ch scale (10^9 files)',
    publish: {
      operationsPerMonth: publishing(3000, 10_000, 200_000_000, { commitSeconds: 120, memoryMb: 3008 }),
      publishesPerMonth: 3000, storageBytes: 50 * TB, storageObjects: 400_000_000, growthBytesPerMonth: 4 * TB, secrets: 1,
    },
    read: { from: 'model', clients: 1000, coldFraction: 0.001, cacheHitRatio: 0.95, ttlSeconds: 240, manifestBytes: 1024 },
  },
];

/** The self-hosted table with an owner's storage price (disks, power, replication: an example figure). */
export const SELF_HOSTED_EXAMPLE: PriceTable = { ...SELF_HOSTED, name: 'self-hosted', storage: { ...SELF_HOSTED.storage, gbMonth: 0.01 } };
