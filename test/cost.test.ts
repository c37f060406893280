// The bill: dollars are counts times the table for every request class of every built-in table, Lambda
// rounds each invocation up to the millisecond, price files are checked strictly, projections match
// numbers worked out by hand, and `scvmfs cost --json` reads the ledger through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliOk, runCli, tempDir, TEST_SOURCE_DIR } from './helpers.js';
import { COST_EXAMPLES, SELF_HOSTED_EXAMPLE } from './cost-examples.js';
import { RefusedError } from '../src/errors.js';
import { FsStore } from '../src/store/fs-store.js';
import { appendLedgerRecord } from '../src/repo/ledger.js';
import { billUsage, formatBillTotal, formatDollars } from '../src/cost/bill.js';
import { AWS_US_EAST_1, CLOUDFLARE_R2, SELF_HOSTED, parsePriceTable, validatePriceTable, type PriceTable } from '../src/cost/prices.js';
import { billedDurationMs, emptyUsage, functionUsage, usageFromMeter, STORE_REQUEST_KINDS, type StoreRequestKind, type Usage } from '../src/cost/usage.js';
import { projectMonth, readDemand, type PublishSide, type ReadSide } from '../src/cost/projection.js';
import { parseAccessLog, parseCloudFrontLog, parseServeLog } from '../src/cost/access-log.js';
import { readSideFromLog } from '../src/repo/cost-report.js';

const GiB = 2 ** 30;
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} ≠ ${expected}`);
const usage = (u: Partial<Usage>): Usage => ({ ...emptyUsage(), ...u });

// Dollars per 1,000 requests of each kind, from the providers' price pages (docs/cost.md).
const PER_1000: Record<string, Record<StoreRequestKind, number>> = {
  'aws-us-east-1': { put: 0.005, conditionalPut: 0.005, copy: 0.005, post: 0.005, list: 0.005, get: 0.0004, head: 0.0004, delete: 0 },
  'cloudflare-r2': { put: 0.0045, conditionalPut: 0.0045, copy: 0.0045, post: 0.0045, list: 0.0045, get: 0.00036, head: 0.00036, delete: 0 },
  'self-hosted': { put: 0, conditionalPut: 0, copy: 0, post: 0, list: 0, get: 0, head: 0, delete: 0 },
};

for (const table of [AWS_US_EAST_1, CLOUDFLARE_R2, SELF_HOSTED]) {
  test(`${table.name}: each request kind costs its count times its class's price`, () => {
    for (const kind of STORE_REQUEST_KINDS) {
      const bill = billUsage(usage({ requests: { [kind]: 123_457 } }), table);
      close(bill.total, 123.457 * PER_1000[table.name]![kind], `${kind} on ${table.name}`);
      assert.equal(bill.lines.length, 1);
      assert.equal(bill.lines[0]!.quantity, 123_457);
    }
    // Kinds of one class are added up into one line; different classes are separate lines.
    const mixed = billUsage(usage({ requests: { put: 1000, conditionalPut: 2000, list: 500, get: 10_000, head: 5000, delete: 70 } }), table);
    const p = PER_1000[table.name]!;
    close(mixed.total, 3.5 * p.put + 15 * p.get + 0.07 * p.delete, `mixed on ${table.name}`);
    assert.equal(mixed.lines.reduce((s, l) => s + l.quantity, 0), 18_570);
  });
}

test('egress is billed per GB read out of the store: $0.09 on AWS, nothing on R2 or self-hosted', () => {
  const u = usage({ egressBytes: 3 * GiB, ingressBytes: 10 * GiB });
  close(billUsage(u, AWS_US_EAST_1).total, 0.27, 'aws');
  assert.equal(billUsage(u, CLOUDFLARE_R2).total, 0);
  assert.equal(billUsage(u, SELF_HOSTED).total, 0);
  // A meter's bytes in become egress only when the reader is outside the provider.
  assert.equal(usageFromMeter({ get: 1, head: 0, put: 0, conditionalPut: 0, list: 0, delete: 0, bytesIn: 500, bytesOut: 7 }).egressBytes, 500);
  assert.equal(usageFromMeter({ get: 1, head: 0, put: 0, conditionalPut: 0, list: 0, delete: 0, bytesIn: 500, bytesOut: 7 }, false).egressBytes, 0);
});

test('Lambda bills each invocation rounded up to the millisecond (1.2 ms is 2 ms) times the configured GB', () => {
  assert.equal(billedDurationMs(1.2), 2);
  assert.equal(billedDurationMs(1), 1);
  assert.equal(billedDurationMs(0), 1);
  assert.equal(billedDurationMs(999.0001), 1000);
  const f = functionUsage('commit', [1.2, 0.3, 5, 2.0001], 1536, 'x86_64');
  assert.deepEqual(f, { fn: 'commit', arch: 'x86_64', memoryMb: 1536, invocations: 4, billedMs: 2 + 1 + 5 + 3 });
  // 11 ms × 1.5 GB = 0.0165 GB-s
  const x86 = billUsage(usage({ functions: [f] }), AWS_US_EAST_1);
  close(x86.total, 4 * 0.2 / 1e6 + 0.0165 * 0.0000166667, 'x86_64');
  const arm = billUsage(usage({ functions: [{ ...f, arch: 'arm64' }] }), AWS_US_EAST_1);
  close(arm.total, 4 * 0.2 / 1e6 + 0.0165 * 0.0000133334, 'arm64');
  // Summing first and rounding after would bill 9 ms, not 11.
  assert.notEqual(Math.ceil(1.2 + 0.3 + 5 + 2.0001), f.billedMs);
  // Without a function runtime in the table (functions run locally) there is no function line.
  assert.equal(billUsage(usage({ functions: [f] }), CLOUDFLARE_R2).lines.length, 0);
});

test('Secrets Manager calls cost $0.05 per 10,000', () => {
  close(billUsage(usage({ secretCalls: 30_000 }), AWS_US_EAST_1).total, 0.15, 'secret calls');
});

test('the one-line total names the operation, the dollars and the table', () => {
  const bill = billUsage(usage({ requests: { put: 2460 } }), AWS_US_EAST_1);
  assert.equal(formatBillTotal(bill, 'publish'), 'this publish cost $0.0123 on aws-us-east-1 (prices of 2025-01-01)');
  const json = JSON.parse(JSON.stringify(bill)) as typeof bill;
  assert.deepEqual(json, bill);
  assert.equal(json.lines[0]!.dollars, json.total);
});

test('every built-in table survives its own validation, and a printed table reads back the same', () => {
  for (const t of [AWS_US_EAST_1, CLOUDFLARE_R2, SELF_HOSTED]) assert.deepEqual(parsePriceTable(JSON.stringify(t), t.name), t);
});

test('price files are validated strictly, with the field named', () => {
  const base = () => JSON.parse(JSON.stringify(AWS_US_EAST_1)) as Record<string, any>;
  const cases: [string, (t: Record<string, any>) => unknown, RegExp][] = [
    ['missing field', (t) => { delete t.pricedAt; return t; }, /pricedAt is missing/],
    ['unknown field', (t) => { t.storage.gbmonth = 1; return t; }, /storage\.gbmonth is not a known field/],
    ['negative price', (t) => { t.storage.gbMonth = -0.01; return t; }, /storage\.gbMonth must be a number of dollars ≥ 0, got -0\.01/],
    ['price as a string', (t) => { t.cdn.egressPerGB = '0.085'; return t; }, /cdn\.egressPerGB must be a number/],
    ['a kind billed nowhere', (t) => { t.storage.requestClasses.delete.kinds = []; return t; }, /bills no class for delete/],
    ['a kind billed twice', (t) => { t.storage.requestClasses.delete.kinds = ['delete', 'get']; return t; }, /'get', which class get-head bills already/],
    ['an unknown kind', (t) => { t.storage.requestClasses.delete.kinds = ['delete', 'rename']; return t; }, /"rename", not one of/],
    ['a bad date', (t) => { t.pricedAt = '2025-02-30'; return t; }, /pricedAt must be a date YYYY-MM-DD/],
    ['another currency', (t) => { t.currency = 'EUR'; return t; }, /currency must be "USD"/],
    ['an architecture missing', (t) => { delete t.functions.gbSecond.arm64; return t; }, /functions\.gbSecond\.arm64 is missing/],
    ['not an object', () => [1, 2], /the table must be an object/],
  ];
  for (const [what, edit, message] of cases) {
    assert.throws(() => validatePriceTable(edit(base()), 'mine.json'), (err: unknown) => {
      assert.ok(err instanceof RefusedError, what);
      assert.equal(err.code, 'bad-pricing', what);
      assert.match(err.message, /^price file mine\.json: /, what);
      assert.match(err.message, message, what);
      return true;
    });
  }
  assert.throws(() => parsePriceTable('{"name":', 'x.json'), { code: 'bad-pricing', message: /price file x\.json is not JSON/ });
});

// --- projections worked out by hand ---------------------------------------------------------------

const PUBLISH: PublishSide = {
  operationsPerMonth: usage({
    requests: { put: 200_000, conditionalPut: 10_000, list: 1000, get: 50_000, head: 10_000, delete: 5000 },
    egressBytes: 2 * GiB,
    functions: [{ fn: 'commit', arch: 'x86_64', memoryMb: 1024, invocations: 1000, billedMs: 2_000_000 }],
    secretCalls: 100,
  }),
  publishesPerMonth: 100,
  storageBytes: 100 * GiB,
  storageObjects: 1_000_000,
  growthBytesPerMonth: 10 * GiB,
  secrets: 2,
};
// 2,628,000 s a month / 2628 s = 1000 manifest polls per client, 1 MiB each.
const READ: ReadSide = { from: 'model', clients: 50, coldFraction: 0.2, cacheHitRatio: 0.95, ttlSeconds: 2628, manifestBytes: 2 ** 20 };

test('read demand: clients × (cold fraction × objects + polls), bytes likewise, misses = (1 − hit ratio) × that', () => {
  const d = readDemand(READ, PUBLISH);
  assert.equal(d.edgeRequests, 50 * (200_000 + 1000));                 // 10,050,000
  close(d.edgeBytes / GiB, 50 * (20 + 1000 / 1024), 'edge GB');          // 1048.828125
  close(d.originRequests, 502_500, 'origin requests');
  close(d.originBytes / GiB, 0.05 * 1048.828125, 'origin GB');
});

test('projection on AWS with CloudFront matches the hand calculation', () => {
  const p = projectMonth(PUBLISH, READ, AWS_US_EAST_1);
  const storage = 105 * 0.023;                                           // (100 + 10/2) GB-months
  const publishing = 211 * 0.005 + 60 * 0.0004 + 0 + 2 * 0.09            // requests, deletes free, egress
    + 1000 * 0.2 / 1e6 + 2000 * 0.0000166667                             // 1000 invocations, 2000 GB-s
    + 0.01 * 0.05 + 2 * 0.4;                                             // 100 secret calls, 2 secrets
  const reads = 1048.828125 * 0.085 + 1005 * 0.0075 + 502.5 * 0.0004;   // CloudFront GB, 10k requests, misses
  close(p.parts.storage, 2.415, 'storage');
  close(p.parts.publishing, 2.0930334, 'publishing');
  close(p.parts.reads, 96.888890625, 'reads');
  close(p.bill.total, storage + publishing + reads, 'total');
  close(p.bill.total, 101.396924025, 'total');
  assert.ok(p.assumptions.some((a) => a.includes('50 caches')));
});

test('projection on R2 matches the hand calculation: free egress and CDN, misses are Class B', () => {
  const p = projectMonth(PUBLISH, READ, CLOUDFLARE_R2);
  close(p.parts.storage, 105 * 0.015, 'storage');                        // 1.575
  close(p.parts.publishing, 211 * 0.0045 + 60 * 0.00036, 'publishing');  // 0.9711: no functions, no secrets
  close(p.parts.reads, 502.5 * 0.00036, 'reads');                        // 0.1809
  close(p.bill.total, 2.727, 'total');
});

test('self-hosted costs only the storage price the owner enters, and reads go to the store', () => {
  const mine: PriceTable = parsePriceTable(JSON.stringify({ ...SELF_HOSTED, name: 'our-ceph', storage: { ...SELF_HOSTED.storage, gbMonth: 0.01 } }), 'ceph.json');
  const p = projectMonth(PUBLISH, READ, mine);
  close(p.bill.total, 1.05, 'total');
  assert.equal(p.bill.lines.find((l) => l.item.startsWith('reads: store requests'))?.quantity, 10_050_000);
});

test('the read side from a scvmfs serve access log and from a CloudFront log', () => {
  const serve = [
    '127.0.0.1 GET /cvmfs/x/.cvmfspublished 200 600 1ms',
    '::ffff:10.0.0.2 GET /cvmfs/x/data/ab/cdef 200 4000 3ms',
    '127.0.0.1 HEAD /cvmfs/x/data/ab/cdef 200 4000 1ms',
    '127.0.0.1 GET /cvmfs/x/data/00/missing 404 - 0ms',
    'error serving /cvmfs/x/data/00/y: boom',
  ].join('\n');
  const obs = parseServeLog(serve);
  assert.deepEqual(obs, { format: 'scvmfs-serve', requests: 4, bytes: 4600, skipped: 1 });
  assert.deepEqual(parseAccessLog(serve), obs);
  assert.throws(() => readSideFromLog(obs, { source: 'serve.log' }), { code: 'no-log-period' });
  const side = readSideFromLog(obs, { source: 'serve.log', periodSeconds: 86400, cacheHitRatio: 0.9 });
  assert.ok(side.from === 'log');
  close(side.requestsPerMonth, 4 * 2_628_000 / 86400, 'requests a month');
  close(side.bytesPerMonth, 4600 * 2_628_000 / 86400, 'bytes a month');

  const cf = [
    '#Version: 1.0',
    '#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id',
    '2026-11-01\t00:00:00\tFRA56-C1\t1000\t1.2.3.4\tGET\td1.cloudfront.net\t/data/ab/cd\t200\t-\tcvmfs\t-\t-\tHit\tid1',
    '2026-11-01\t00:30:00\tFRA56-C1\t3000\t1.2.3.4\tGET\td1.cloudfront.net\t/data/ab/ce\t200\t-\tcvmfs\t-\t-\tMiss\tid2',
    '2026-11-01\t01:00:00\tFRA56-C1\t500\t1.2.3.5\tGET\td1.cloudfront.net\t/.cvmfspublished\t200\t-\tcvmfs\t-\t-\tRefreshHit\tid3',
  ].join('\n');
  const cfObs = parseCloudFrontLog(cf);
  assert.deepEqual(cfObs, { format: 'cloudfront', requests: 3, bytes: 4500, hits: 1, skipped: 0, periodSeconds: 3600 });
  assert.deepEqual(parseAccessLog(cf), cfObs);
  const cfSide = readSideFromLog(cfObs, { source: 'cf.log' });
  assert.ok(cfSide.from === 'log');
  close(cfSide.cacheHitRatio, 1 / 3, 'hit ratio');
  close(cfSide.requestsPerMonth, 3 * 730, 'requests a month');
  const p = projectMonth({ ...PUBLISH, operationsPerMonth: emptyUsage(), secrets: 0 }, cfSide, AWS_US_EAST_1);
  close(p.parts.reads, (4500 * 730 / GiB) * 0.085 + (2190 / 10000) * 0.0075 + (2190 * 2 / 3 / 1000) * 0.0004, 'reads from the log');
  assert.throws(() => parseServeLog('nothing here\n'), { code: 'bad-access-log' });
});

test('docs/cost.md shows what the code computes for its three worked examples', async () => {
  const doc = await readFile(join(TEST_SOURCE_DIR, '..', 'docs', 'cost.md'), 'utf8');
  for (const ex of COST_EXAMPLES) {
    for (const t of [AWS_US_EAST_1, CLOUDFLARE_R2, SELF_HOSTED_EXAMPLE]) {
      const p = projectMonth(ex.publish, ex.read, t);
      const row = `| ${t.name} | ${formatDollars(p.parts.storage)} | ${formatDollars(p.parts.publishing)} | ${formatDollars(p.parts.reads)} | **${formatDollars(p.bill.total)}** |`;
      assert.ok(doc.includes(row), `${ex.name}: docs/cost.md lacks ${row}`);
    }
  }
});

// --- through the CLI -------------------------------------------------------------------------------

async function ledgerStore(): Promise<string> {
  const dir = join(tempDir('cost-cli'), 'store');
  const store = new FsStore(dir);
  // November 2026 has 720 hours; 1 GiB added at hour 360 is held for half of them: 0.5 GB-month.
  // 998 PUTs + the record's own create-only PUT and upkeep LIST = 1000 write-class requests.
  await appendLedgerRecord(store, { operation: 'publish', publisher: 'alice', revision: 7, usage: usage({ requests: { put: 998, get: 1000 } }), storage: { bytesAdded: GiB, objectsAdded: 10 } }, { now: new Date('2026-11-16T00:00:00Z') });
  await appendLedgerRecord(store, { operation: 'gc', usage: usage({ requests: { list: 8, delete: 3 } }), storage: { bytesRemoved: 1000, objectsRemoved: 3 } }, { now: new Date('2026-12-02T00:00:00Z') });
  return dir;
}

test('scvmfs cost --json shows a month\'s spend and the storage held, read through the real CLI', async () => {
  const dir = await ledgerStore();
  const r = await cliOk(['cost', dir, '--month', '2026-11', '--by', 'publisher', '--json']);
  const report = JSON.parse(r.stdout);
  assert.equal(report.month, '2026-11');
  assert.equal(report.records, 1);
  assert.equal(report.pricing.name, 'aws-us-east-1');
  assert.equal(report.hoursElapsed, 720);
  close(report.storage.gbMonths, 0.5, 'GB-months');
  assert.equal(report.storage.bytesNow, GiB);
  close(report.bill.total, 0.005 + 0.0004 + 0.5 * 0.023, 'bill');
  assert.deepEqual(report.groups.map((g: { name: string; records: number }) => [g.name, g.records]), [['alice', 1]]);

  const dec = JSON.parse((await cliOk(['cost', dir, '--month', '2026-12', '--json', '--pricing', 'cloudflare-r2'])).stdout);
  assert.equal(dec.storage.bytesAtStart, GiB);
  assert.equal(dec.storage.bytesNow, GiB - 1000);
  assert.equal(dec.records, 1);
  assert.equal(dec.pricing.name, 'cloudflare-r2');

  const text = await cliOk(['cost', dir, '--month', '2026-11']);
  assert.match(text.stdout, /^2026-11: \$0\.0169 on aws-us-east-1/);
});

test('scvmfs cost project --json compares the tables side by side; a bad price file is refused with status 3', async () => {
  const dir = await ledgerStore();
  const out = JSON.parse((await cliOk(['cost', 'project', dir, '--month', '2026-11', '--clients', '10', '--cold-fraction', '0.5', '--cache-hit-ratio', '0.9', '--json'])).stdout);
  assert.deepEqual(out.projections.map((p: { pricing: { name: string } }) => p.pricing.name), ['aws-us-east-1', 'cloudflare-r2', 'self-hosted']);
  // One publish in a 720-hour month, scaled to 730 hours.
  close(out.publish.publishesPerMonth, 730 / 720, 'publishes a month');
  close(out.projections[0].demand.edgeBytes, 10 * (0.5 * GiB + (2_628_000 / 240) * 1024), 'edge bytes');

  const printed = (await cliOk(['cost', 'pricing', 'self-hosted'])).stdout;
  const mine = join(tempDir('cost-price'), 'mine.json');
  await writeFile(mine, printed.replace('"gbMonth": 0,', '"gbMonth": 0.02,'));
  const own = JSON.parse((await cliOk(['cost', dir, '--month', '2026-11', '--pricing', mine, '--json'])).stdout);
  close(own.bill.total, 0.5 * 0.02, 'own storage price');

  await writeFile(mine, printed.replace('"gbMonth": 0,', '"gbMonth": "cheap",'));
  const badRun = await runCli(['cost', dir, '--pricing', mine]);
  assert.equal(badRun.code, 3);
  assert.match(badRun.stderr, /price file .*mine\.json: storage\.gbMonth must be a number of dollars/);
  const noReads = await runCli(['cost', 'project', dir, '--month', '2026-11']);
  assert.equal(noReads.code, 3);
  assert.match(noReads.stderr, /--access-log <file>, or --clients, --cold-fraction, --cache-hit-ratio/);
  const badMonth = await runCli(['cost', dir, '--month', '2026-13']);
  assert.equal(badMonth.code, 2);
});
