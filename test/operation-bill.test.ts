// Every mutating command ends with its bill (src/cli/operation-bill.ts): the bill counts what the S3
// server saw, the functions' requests and GB-s are in it, every command prints its one-line total and
// carries the bill in --json, and the ledger's storage totals are the bytes really stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cliOk, cliRepo, runCli, tempDir } from './helpers.js';
import { freshBucket } from './s3-env.js';
import { FsStore } from '../src/store/fs-store.js';
import { listAll, type ObjectStore } from '../src/store/object-store.js';
import { AWS_US_EAST_1, CLOUDFLARE_R2, type PriceTable } from '../src/cost/prices.js';
import { gbSeconds, type FunctionUsage, type StoreRequestKind, type Usage } from '../src/cost/usage.js';
import type { Bill } from '../src/cost/bill.js';
import { functionUsageOfRecords } from '../src/runtime/invokers.js';
import type { InvocationRecord } from '../src/runtime/stats.js';

const FQRN = 'bills.example.org';

interface JsonBill { operation: string; publisher: string; revision: number | null; usage: Usage; bill: Bill; line: string; ledger: { recorded: boolean; id?: string; reason?: string } }

function makeTree(root: string, label: string, files: number): void {
  mkdirSync(join(root, 'lib'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'lib', `f${i}`), `${label} file ${i}\n`.repeat(1 + i * 50));
}

/** Bytes and objects under data/, from a LIST of the store. */
async function storedData(store: ObjectStore): Promise<{ bytes: number; objects: number }> {
  let bytes = 0;
  let objects = 0;
  for await (const o of listAll(store, 'data/')) { bytes += o.size; objects++; }
  return { bytes, objects };
}

async function ledgerStorage(store: string): Promise<{ bytesNow: number; objectsNow: number }> {
  return (JSON.parse((await cliOk(['cost', store, '--json'])).stdout) as { storage: { bytesNow: number; objectsNow: number } }).storage;
}

// --- radosgw's own log ----------------------------------------------------------------------------
// radosgw logs every request it served ("beast: … "GET /bucket/key?… HTTP/1.1" 200 …") at debug_rgw 1,
// its default; the usage and ops logs are off in the Ceph that scripts/s3-start.sh starts.

const RGW_LOG = join(process.env.SCVMFS_S3_DIR || '/tmp/scvmfs-s3', 'log', 'client.rgw.a.log');

type ServerKind = 'get' | 'head' | 'put' | 'list' | 'delete';

function logSize(): number {
  assert.ok(existsSync(RGW_LOG), `radosgw's log ${RGW_LOG} is missing: these tests need the Ceph of scripts/s3-start.sh`);
  return statSync(RGW_LOG).size;
}

function readFrom(offset: number): string {
  const size = statSync(RGW_LOG).size;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(RGW_LOG, 'r');
  try { readSync(fd, buf, 0, buf.length, offset); } finally { closeSync(fd); }
  return buf.toString('utf8');
}

/** The requests radosgw served for `bucket` since `offset`, by kind, up to a sentinel HEAD made now. */
async function serverCounts(bucket: { bucket: string; store(prefix?: string): ObjectStore }, offset: number): Promise<Record<ServerKind, number>> {
  const sentinel = `sentinel-${randomUUID()}`;
  await bucket.store().head(sentinel);
  const deadline = Date.now() + 15_000;
  while (!readFrom(offset).includes(`/${bucket.bucket}/${sentinel}`)) {
    assert.ok(Date.now() < deadline, 'radosgw logged the sentinel request within 15 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
  const counts: Record<ServerKind, number> = { get: 0, head: 0, put: 0, list: 0, delete: 0 };
  const re = /beast: \S+ .*?"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP\/1\.1" (\d{3})/g;
  for (const m of readFrom(offset).matchAll(re)) {
    const [, method, target] = m as unknown as [string, string, string];
    const path = target.split('?')[0]!;
    const query = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
    if (path !== `/${bucket.bucket}` && !path.startsWith(`/${bucket.bucket}/`)) continue;
    if (path.endsWith(sentinel)) continue;
    const onBucket = path === `/${bucket.bucket}` || path === `/${bucket.bucket}/`;
    if (method === 'GET') counts[onBucket || /(^|&)list-type=/.test(query) ? 'list' : 'get']++;
    else if (method === 'HEAD') counts.head++;
    else if (method === 'PUT') counts.put++;
    else if (method === 'POST' && /(^|&)delete(=|&|$)/.test(query)) counts.delete++;
    else if (method === 'DELETE') counts.delete++;
    else assert.fail(`unexpected request in radosgw's log: ${method} ${target}`);
  }
  return counts;
}

/** A usage's requests in the server's kinds (a conditional PUT is a PUT on the wire). */
function byServerKind(u: Usage): Record<ServerKind, number> {
  const r = (k: StoreRequestKind) => u.requests[k] ?? 0;
  return { get: r('get'), head: r('head'), put: r('put') + r('conditionalPut') + r('copy') + r('post'), list: r('list'), delete: r('delete') };
}

/** Each request class line of `bill` equals the server's count in that class, and its dollars are count × price. */
function assertClassesPriced(bill: Bill, server: Record<ServerKind, number>, table: PriceTable): void {
  for (const rc of Object.values(table.storage.requestClasses)) {
    const n = rc.kinds.reduce((s, k) => s + (k === 'conditionalPut' || k === 'copy' || k === 'post' ? 0 : (server as Partial<Record<string, number>>)[k] ?? 0), 0);
    const line = bill.lines.find((l) => l.item === `store requests: ${rc.label}`);
    if (n === 0) { assert.equal(line, undefined, `no line for ${rc.label}`); continue; }
    assert.ok(line, `a line for ${rc.label}`);
    assert.equal(line.quantity, n, `${rc.label}: the bill's count is the server's`);
    assert.equal(line.dollars, (n / 1000) * rc.per1000, `${rc.label}: dollars = count × table`);
  }
}

test('a publish into Ceph: every request class in its bill equals what radosgw logged, dollars = counts × the table (owner, then publisher with grants)', { timeout: 240_000 }, async () => {
  const bucket = await freshBucket('bills');
  const { work, store, keys, src } = await cliRepo('bills-ceph', FQRN, { store: bucket.url('repo') });
  makeTree(src, 'ceph', 12);

  let offset = logSize();
  const owner = JSON.parse((await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '--no-cache', '-q', '--json'])).stdout) as { revision: number; bill: JsonBill };
  let server = await serverCounts(bucket, offset);
  assert.equal(owner.bill.ledger.recorded, true);
  assert.ok(server.put > 12 && server.get > 0, `the publish stored its objects (${JSON.stringify(server)})`);
  assert.deepEqual(byServerKind(owner.bill.usage), server, 'owner publish: each kind counted as the server saw it, the ledger\'s own requests included');
  assertClassesPriced(owner.bill.bill, server, AWS_US_EAST_1);

  await cliOk(['publisher', 'add', FQRN, 'w1', '--path', '/w1', '--store', store, '--keys', keys]);
  const wsrc = join(work, 'wsrc');
  makeTree(wsrc, 'writer', 8);
  offset = logSize();
  const run = await cliOk(['publish', FQRN, wsrc, '--store', store, '--keys', keys, '--publisher', join(keys, 'w1.publisher'), '--path', '/w1',
    '--upload-via', 'grants', '--fn-timeout', '60s', '--fn-memory', '256', '--no-cache', '-q', '--json', '--pricing', 'cloudflare-r2']);
  const pub = JSON.parse(run.stdout) as { urlPuts: number; bill: JsonBill };
  server = await serverCounts(bucket, offset);
  assert.ok(pub.urlPuts >= 8, `objects went up through granted URLs (${pub.urlPuts})`);
  assert.deepEqual(byServerKind(pub.bill.usage), server, 'publisher publish: the writer, its URL PUTs and every function invocation, as the server saw them');
  assertClassesPriced(pub.bill.bill, server, CLOUDFLARE_R2);
  assert.deepEqual(pub.bill.usage.functions.map((f) => f.fn).sort(), ['commit', 'lease', 'upload-grant']);

  const held = await ledgerStorage(store);
  assert.deepEqual({ bytes: held.bytesNow, objects: held.objectsNow }, await storedData(bucket.store('repo')), 'ledger storage = LIST of data/');
});

test('on the publisher path (local runtime) the bill has the lease, upload-grant and commit functions: requests and GB-s from the measured durations × --fn-memory', { timeout: 180_000 }, async () => {
  const { store, keys, src } = await cliRepo('bills-publisher', FQRN, { publishers: ['w1'] });
  makeTree(src, 'local', 20);
  const run = await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '--publisher', join(keys, 'w1.publisher'), '--path', '/w1',
    '--upload-via', 'grants', '--fn-timeout', '60s', '--fn-memory', '512', '--no-cache', '-q', '--json']);
  type Stats = { invocations: number; totalDurationMs: number; requests: Record<string, number> };
  const out = JSON.parse(run.stdout) as { bill: JsonBill; functions: Record<string, Stats>; requests: { writer: Record<string, number>; functions: Record<string, number> }; urlPuts: number };
  const fns = out.bill.usage.functions;
  for (const name of ['lease', 'upload-grant', 'commit']) {
    const f = fns.find((x) => x.fn === name);
    const measured = out.functions[name]!;
    assert.ok(f, `the bill has ${name}`);
    assert.equal(f.memoryMb, 512, `${name} billed at the configured memory`);
    assert.equal(f.invocations, measured.invocations, `${name}: every invocation the runtime ran`);
    // Each invocation rounded up to the next millisecond (at least 1): between the sum and the sum + n.
    assert.ok(f.billedMs >= Math.ceil(measured.totalDurationMs) && f.billedMs <= Math.ceil(measured.totalDurationMs) + f.invocations,
      `${name}: billed ${f.billedMs} ms for ${measured.totalDurationMs.toFixed(1)} ms measured in ${f.invocations} invocations`);
  }
  const gbs = fns.reduce((s, f) => s + gbSeconds(f), 0);
  const line = out.bill.bill.lines.find((l) => l.unit === 'GB-s')!;
  assert.ok(line, 'a GB-s line');
  assert.ok(Math.abs(line.quantity - gbs) < 1e-12 && Math.abs(line.dollars - gbs * AWS_US_EAST_1.functions!.gbSecond.x86_64) < 1e-15);
  const invocations = out.bill.bill.lines.find((l) => l.unit === 'invocations')!;
  assert.equal(invocations.quantity, Object.values(out.functions).reduce((s, x) => s + x.invocations, 0));
  // Store requests: the writer's + every function's + the URL PUTs + the ledger's own PUT and LIST.
  const kinds = ['get', 'head', 'list', 'delete'] as const;
  for (const k of kinds) {
    assert.equal(out.bill.usage.requests[k] ?? 0, out.requests.writer[k]! + out.requests.functions[k]! + (k === 'list' ? 1 : 0), k);
  }
  assert.equal(out.bill.usage.requests.conditionalPut ?? 0, out.requests.writer.conditionalPut! + out.requests.functions.conditionalPut! + out.urlPuts + 1);
  assert.ok((out.requests.functions.get ?? 0) > 0 && (out.requests.functions.conditionalPut ?? 0) > 0, "the functions' own requests are there");
  const held = await ledgerStorage(store);
  assert.deepEqual({ bytes: held.bytesNow, objects: held.objectsNow }, await storedData(new FsStore(store)));
});

test('the billed time of invocations is each duration rounded up to 1 ms, grouped by function and memory', () => {
  const rec = (fn: string, durationMs: number, memoryMb: number) => ({ fn, durationMs, memoryMb }) as InvocationRecord;
  const usage = functionUsageOfRecords([rec('commit', 0.2, 256), rec('commit', 10.01, 256), rec('lease', 3, 128), rec('commit', 5, 1024)]);
  const by = (fn: string, mb: number) => usage.find((u: FunctionUsage) => u.fn === fn && u.memoryMb === mb)!;
  assert.deepEqual([by('commit', 256).invocations, by('commit', 256).billedMs], [2, 1 + 11]);
  assert.deepEqual([by('lease', 128).invocations, by('lease', 128).billedMs], [1, 3]);
  assert.deepEqual([by('commit', 1024).invocations, by('commit', 1024).billedMs], [1, 5]);
});

test('every mutating command prints its one-line total and carries its bill in --json; --no-ledger records nothing; a bad --pricing changes nothing', { timeout: 180_000 }, async () => {
  const work = tempDir('bills-commands');
  const store = join(work, 'store');
  const keys = join(work, 'keys');
  const src = join(work, 'src');
  makeTree(src, 'commands', 3);
  const tarDir = join(work, 'tar');
  makeTree(tarDir, 'tarball', 4);
  const tarball = join(work, 'in.tar');
  execFileSync('tar', ['-cf', tarball, '-C', tarDir, '.']);
  const common = ['--store', store, '--keys', keys];
  const records = () => {
    const dir = join(store, '.scvmfs', 'ledger', 'records');
    return existsSync(dir) ? execFileSync('find', [dir, '-type', 'f']).toString().trim().split('\n').filter(Boolean).length : 0;
  };
  // Each command twice: as people read it, then as --json.
  const commands: [string, string[], string[]][] = [
    ['init', ['init', FQRN, ...common], []],
    ['publish', ['publish', FQRN, src, ...common, '--no-cache', '-q'], []],
    ['ingest', ['ingest', FQRN, tarball, ...common, '--path', '/t', '-q'], ['--delete', '/t']],
    ['tag', ['tag', 'add', FQRN, 'v1', ...common], []],
    ['tag', ['tag', 'remove', FQRN, 'v1', ...common], []],
    ['resign', ['resign', FQRN, ...common], []],
    ['rotate-key', ['rotate-key', FQRN, ...common], []],
  ];
  for (const [op, args, jsonExtra] of commands) {
    const before = records();
    const text = await cliOk(args);
    assert.match(text.stdout, new RegExp(`^  this ${op} cost (\\$[0-9.]+|<\\$0\\.000001) on aws-us-east-1 \\(prices of \\d{4}-\\d{2}-\\d{2}\\)$`, 'm'), `${op} prints its total`);
    assert.match(text.stdout, /^  bill:$/m);
    assert.equal(records(), before + 1, `${op} appended one ledger record`);
    if (op === 'init') continue; // a second init is refused
    const again = args[0] === 'tag' && args[1] === 'add' ? [...args.slice(0, 3), 'v2', ...args.slice(4)] : args;
    const json = await cliOk([...(args[0] === 'tag' && args[1] === 'remove' ? [...args.slice(0, 3), 'v2', ...args.slice(4)] : again), ...jsonExtra, '--json', '--pricing', 'self-hosted']);
    const out = JSON.parse(json.stdout) as { bill: JsonBill };
    assert.equal(out.bill.operation, op);
    assert.equal(out.bill.bill.pricing, 'self-hosted');
    assert.equal(out.bill.ledger.recorded, true);
    assert.match(out.bill.line, new RegExp(`^this ${op} cost .* on self-hosted`));
    assert.ok((out.bill.usage.requests.conditionalPut ?? 0) >= 1 && (out.bill.usage.requests.list ?? 0) >= 1, `${op}: the ledger's own requests are in the usage`);
    assert.equal(out.bill.bill.total, out.bill.bill.lines.reduce((s, l) => s + l.dollars, 0));
    assert.equal(records(), before + 2);
  }
  // rollback needs a tag to go back to.
  await cliOk(['tag', 'add', FQRN, 'back', ...common]);
  await cliOk(['tag', 'add', FQRN, 'later', ...common]);
  const rolled = await cliOk(['rollback', FQRN, '--tag', 'back', ...common]);
  assert.match(rolled.stdout, /^  this rollback cost \$[0-9.]+ on aws-us-east-1/m);
  await cliOk(['tag', 'add', FQRN, 'later', ...common]);
  const rolledJson = JSON.parse((await cliOk(['rollback', FQRN, '--tag', 'back', ...common, '--json'])).stdout) as { revision: number; bill: JsonBill };
  assert.equal(rolledJson.bill.revision, rolledJson.revision);

  const before = records();
  const quiet = await cliOk(['publish', FQRN, src, ...common, '--no-cache', '-q', '--no-ledger', '--json']);
  assert.deepEqual((JSON.parse(quiet.stdout) as { bill: JsonBill }).bill.ledger, { recorded: false, reason: '--no-ledger' });
  assert.equal(records(), before, '--no-ledger writes no record');

  const manifest = readFileSync(join(store, '.cvmfspublished'));
  writeFileSync(join(src, 'new'), 'changed');
  const bad = await runCli(['publish', FQRN, src, ...common, '--no-cache', '-q', '--pricing', join(work, 'no-such-prices.json')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--pricing .*neither a built-in table .* nor a readable price file/);
  assert.deepEqual(readFileSync(join(store, '.cvmfspublished')), manifest, 'a bad --pricing is refused before anything is published');
  assert.equal(records(), before);

  const prices = join(work, 'mine.json');
  writeFileSync(prices, JSON.stringify({ ...AWS_US_EAST_1, name: 'mine', storage: { ...AWS_US_EAST_1.storage, requestClasses: Object.fromEntries(Object.entries(AWS_US_EAST_1.storage.requestClasses).map(([k, v]) => [k, { ...v, per1000: v.per1000 * 1000 }])) } }));
  const mine = JSON.parse((await cliOk(['publish', FQRN, src, ...common, '--no-cache', '-q', '--json', '--pricing', prices])).stdout) as { bill: JsonBill };
  assert.equal(mine.bill.bill.pricing, 'mine');
  const put = mine.bill.bill.lines.find((l) => l.item.includes('PUT'))!;
  const putClass = Object.values(AWS_US_EAST_1.storage.requestClasses).find((c) => c.kinds.includes('put'))!;
  assert.ok(Math.abs(put.dollars - put.quantity * putClass.per1000) < 1e-12, 'priced with the file\'s table');
});

test('a publish that landed does not fail when its ledger record cannot be written: it warns', { timeout: 60_000 }, async () => {
  const { store, keys, src } = await cliRepo('bills-ledger-fails', FQRN);
  makeTree(src, 'fails', 2);
  rmSync(join(store, '.scvmfs', 'ledger'), { recursive: true, force: true });
  writeFileSync(join(store, '.scvmfs', 'ledger'), 'not a directory');
  const r = await runCli(['publish', FQRN, src, '--store', store, '--keys', keys, '--no-cache', '-q', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: the publish is done, but its cost could not be recorded in the ledger/);
  const out = JSON.parse(r.stdout) as { revision: number; bill: JsonBill };
  assert.equal(out.revision, 2);
  assert.equal(out.bill.ledger.recorded, false);
  assert.ok(out.bill.bill.total > 0, 'the bill is still printed');
});

test("the ledger's storage totals equal the bytes under data/ after owner publishes, an ingest and publisher publishes (directory store)", { timeout: 180_000 }, async () => {
  const { work, store, keys, src } = await cliRepo('bills-storage', FQRN);
  for (let i = 0; i < 3; i++) {
    makeTree(src, `round ${i}`, 5 + i);
    await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '--no-cache', '-q']);
    assert.deepEqual(await ledgerStorage(store).then((h) => ({ bytes: h.bytesNow, objects: h.objectsNow })), await storedData(new FsStore(store)), `after publish ${i + 1}`);
  }
  const tarDir = join(work, 'tar');
  makeTree(tarDir, 'ingested', 6);
  execFileSync('tar', ['-cf', join(work, 'in.tar'), '-C', tarDir, '.']);
  await cliOk(['ingest', FQRN, join(work, 'in.tar'), '--store', store, '--keys', keys, '--path', '/t', '-q']);
  await cliOk(['publisher', 'add', FQRN, 'w1', '--path', '/w1', '--store', store, '--keys', keys]);
  for (const via of ['direct', 'grants']) {
    const wsrc = join(work, `w-${via}`);
    makeTree(wsrc, `writer ${via}`, 6);
    await cliOk(['publish', FQRN, wsrc, '--store', store, '--keys', keys, '--publisher', join(keys, 'w1.publisher'), '--path', '/w1',
      '--upload-via', via, '--fn-timeout', '60s', '--fn-memory', '256', '--no-cache', '-q']);
  }
  await cliOk(['tag', 'add', FQRN, 'v1', '--store', store, '--keys', keys]);
  const held = await ledgerStorage(store);
  assert.deepEqual({ bytes: held.bytesNow, objects: held.objectsNow }, await storedData(new FsStore(store)), 'no drift');
});
