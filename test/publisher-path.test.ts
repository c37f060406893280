// What a publisher's publish carries to the functions and back: its catalog settings reach the commit
// function (clamped, the writer being untrusted), graft counts and refusals come back through the Lambda
// adapter at once, and the summary counts the functions' store requests beside the writer's own.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { InvokeCommand } from '@aws-sdk/client-lambda';
import { ScvmfsError } from '../src/errors.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { handler as abortHandler } from '../src/functions/abort.js';
import { writerAutocatalogs } from '../src/functions/commit.js';
import { commitEntry } from '../src/runtime/aws-entry/commit.js';
import { handler as leaseHandler } from '../src/functions/lease.js';
import { handler as grantHandler } from '../src/functions/upload-grant.js';
import type { FunctionName, Handler } from '../src/functions/types.js';
import { publishThroughChain } from '../src/publish/publish-changeset.js';
import { loadPublisherKey } from '../src/repo/publishers.js';
import { readHead } from '../src/repo/repository.js';
import { RepositoryReader } from '../src/client/reader.js';
import { verifyRepository } from '../src/client/verify.js';
import { lambdaHandler, type LambdaContext } from '../src/runtime/aws.js';
import { awsInvoker, localInvoker } from '../src/runtime/invokers.js';
import { FsStore } from '../src/store/fs-store.js';
import { MeteredStore, type MeterSnapshot } from '../src/store/metered-store.js';
import { parseStoreRecords, RecordingStore, type StoreRecord } from '../src/store/recording-store.js';
import { invoker } from './chain-invoker.js';
import { cliOk, cliRepo, runCli } from './helpers.js';
import { setupRepo } from './txn-helpers.js';

const FQRN = 'path.example.org';

/** A repository with each of `writers` a publisher of /<name>. */
const setup = (name: string, writers: string[]) => setupRepo(name, Object.fromEntries(writers.map((w) => [w, [`/${w}`]])), FQRN);

function makeTree(root: string, label: string, files: number, dirs = 1): void {
  for (let d = 0; d < dirs; d++) mkdirSync(join(root, 'lib', `d${d}`), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'lib', `d${i % dirs}`, `f${i}`), `${label} file ${i}\n`);
  writeFileSync(join(root, 'README'), `${label}\n`);
}

/** The counts a meter would show for these recorded calls. */
function countsOf(records: StoreRecord[]): Pick<MeterSnapshot, 'get' | 'head' | 'list' | 'delete'> & { puts: number } {
  const n = (action: string) => records.filter((r) => r.action === action).length;
  return { get: n('get'), head: n('head'), puts: n('put'), list: n('list'), delete: n('delete') };
}

function meterCounts(s: MeterSnapshot) {
  return { get: s.get, head: s.head, puts: s.put + s.conditionalPut, list: s.list, delete: s.delete };
}

test('a publisher publish with a small --max-weight splits its catalogs; --no-autocatalogs keeps one', { timeout: 120_000 }, async () => {
  const { store, keys, src } = await cliRepo('publisher-weights', FQRN, { publishers: ['w1', 'w2'] });
  makeTree(src, 'weights', 150, 3);
  const publish = (w: string, ...extra: string[]) => cliOk(['publish', FQRN, src, '--store', store, '--keys', keys,
    '--publisher', join(keys, `${w}.publisher`), '--path', `/${w}`, '--fn-timeout', '30s', '--fn-memory', '256', '--no-cache', '-q', ...extra]);
  const split = await publish('w1', '--max-weight', '100', '--min-weight', '10');
  assert.match(split.stdout, /published path\.example\.org\/w1 revision 2/);
  await publish('w2', '--max-weight', '100', '--min-weight', '10', '--no-autocatalogs');

  const reader = await RepositoryReader.open(new FsStore(store), { fqrn: FQRN, publicKeys: [readFileSync(join(keys, `${FQRN}.pub`), 'utf8')] });
  let nested = 0;
  for (let d = 0; d < 3; d++) {
    if (await reader.isMountpoint(`/w1/lib/d${d}`)) nested++;
    assert.equal(await reader.isMountpoint(`/w2/lib/d${d}`), false, `/w2/lib/d${d} stays in the writer's catalog`);
  }
  assert.ok(nested >= 2, `directories of 50 entries became nested catalogs under a maximum of 100 (${nested} of 3)`);
  await verifyRepository(reader);
  reader.close();
});

test("the writer's catalog weights are whole numbers, clamped to the bounds; the owner's off stays off", () => {
  const owner = { maxWeight: 100_000, minWeight: 1_000 };
  assert.deepEqual(writerAutocatalogs(undefined, owner), owner);
  assert.deepEqual(writerAutocatalogs({ maxWeight: 500, minWeight: 20 }, owner), { maxWeight: 500, minWeight: 20 });
  assert.deepEqual(writerAutocatalogs({ maxWeight: 1, minWeight: 0 }, owner), { maxWeight: 100, minWeight: 1 }, 'clamped up');
  assert.deepEqual(writerAutocatalogs({ maxWeight: 1e12, minWeight: 1e12 }, owner), { maxWeight: 10_000_000, minWeight: 5_000_000 }, 'clamped down');
  assert.equal(writerAutocatalogs(false, owner), false);
  assert.equal(writerAutocatalogs({ maxWeight: 500, minWeight: 20 }, false), false, "the owner's off wins");
  for (const bad of [{ maxWeight: '500', minWeight: 20 }, { maxWeight: 1.5, minWeight: 1 }, null, 'small', { maxWeight: 500 }]) {
    assert.throws(() => writerAutocatalogs(bad, owner), (e: ScvmfsError) => e.kind === 'refused' && e.code === 'bad-autocatalogs', JSON.stringify(bad));
  }
});

test("the summary's request counts are the writer's plus every function invocation's (local runtime)", { timeout: 120_000 }, async () => {
  const { work, store, keysDir } = await setup('count-local', ['w1']);
  const recordFile = join(work, 'functions.jsonl');
  const writerFile = join(work, 'writer.jsonl');
  writeFileSync(recordFile, '');
  writeFileSync(writerFile, '');
  const publisher = await loadPublisherKey(keysDir, 'w1');
  const src = join(work, 'src');
  makeTree(src, 'count', 30, 2);
  const fns = localInvoker({
    env: { SCVMFS_STORE: store.root, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir, SCVMFS_SLICE_OPS: '8', SCVMFS_STORE_RECORD: recordFile },
    limits: { timeoutMs: 30_000, memoryMb: 256 },
  });
  const writer = new MeteredStore(new RecordingStore(store, 'writer', writerFile));
  try {
    const s = await publishThroughChain(writer, src, { fqrn: FQRN, publisher, path: '/w1', functions: fns, uploadVia: 'grants' });
    assert.ok(s.slices > 2, `several commit steps (${s.slices})`);
    const functions = parseStoreRecords(readFileSync(recordFile, 'utf8'));
    assert.ok(s.functionRequests, 'the summary has the functions\' requests');
    assert.deepEqual(meterCounts(s.functionRequests), countsOf(functions), 'every function request is counted once');
    assert.ok(s.functionRequests.conditionalPut > 0 && s.functionRequests.get > 0);
    assert.deepEqual(meterCounts(writer.snapshot()), countsOf(parseStoreRecords(readFileSync(writerFile, 'utf8'))));
  } finally {
    await fns.close();
  }
});

test('the CLI prints the writer\'s, the functions\' and the total store requests of a publisher publish', { timeout: 120_000 }, async () => {
  const { store, keys, src } = await cliRepo('count-cli', FQRN, { publishers: ['w1'] });
  makeTree(src, 'cli', 5);
  const out = await cliOk(['publish', FQRN, src, '--store', store, '--keys', keys, '--publisher', join(keys, 'w1.publisher'),
    '--path', '/w1', '--fn-timeout', '30s', '--fn-memory', '256', '--no-cache', '-q']);
  const total = (label: string) => Number(new RegExp(`  ${label}: store requests: (\\d+) `).exec(out.stdout)?.[1]);
  assert.ok(total('functions') > 0, out.stdout);
  assert.equal(total('total'), total('writer') + total('functions'), out.stdout);
});

test('under the local runtime, a refusal inside the commit chain reaches the writer with its code, delivered once', { timeout: 120_000 }, async () => {
  const { work, store, keysDir } = await setup('local-refusal', ['w1']);
  const src = join(work, 'src');
  makeTree(src, 'refused', 3);
  const before = (await readHead(store))!.bytes;
  const fns = localInvoker({ env: { SCVMFS_STORE: store.root, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir }, limits: { timeoutMs: 30_000, memoryMb: 256 } });
  try {
    const err = await publishThroughChain(store, src, {
      fqrn: FQRN, publisher: await loadPublisherKey(keysDir, 'w1'), path: '/w1', functions: fns, autocatalogs: { maxWeight: 100.5, minWeight: 10 },
    }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ScvmfsError, `a ScvmfsError, not ${String(err)}`);
    assert.deepEqual([err.kind, err.code], ['refused', 'bad-autocatalogs']);
    assert.equal(fns.report().commit?.invocations, 1, 'a refusal is not retried');
    // A refused lease through invoke keeps its code too.
    const request = signLeaseRequest(await loadPublisherKey(keysDir, 'w1'), { fqrn: FQRN, path: '/elsewhere', ttlSeconds: 60 });
    await assert.rejects(fns.invoke('lease', { action: 'acquire', request }), (e: ScvmfsError) => e.kind === 'refused' && e.code === 'path-outside');
  } finally {
    await fns.close();
  }
  assert.ok((await readHead(store))!.bytes.equals(before), 'nothing committed');
});

// ---- Through the Lambda adapter, with a fake Lambda client that runs the real entry wrappers ----

const HANDLERS: Partial<Record<FunctionName, Handler>> = { lease: leaseHandler, 'upload-grant': grantHandler, abort: abortHandler };

function context(fn: string): LambdaContext {
  return { awsRequestId: `req-${Math.random()}`, functionName: fn, memoryLimitInMB: '512', getRemainingTimeInMillis: () => 30_000 };
}

/**
 * Lambda at the edge: synchronous calls answer the wrapper's payload (or the error payload the Node
 * runtime makes of a throw), asynchronous ones run in the background; `betweenSteps` runs before every
 * asynchronous step after the first.
 */
class FakeLambda {
  readonly background: Promise<void>[] = [];
  readonly asyncErrors: unknown[] = [];
  private readonly wrapped = new Map<string, ReturnType<typeof lambdaHandler>>();
  constructor(private readonly betweenSteps: (step: number) => Promise<void> = async () => {}) {}
  private steps = 0;

  private handlerFor(fn: FunctionName): ReturnType<typeof lambdaHandler> {
    let h = this.wrapped.get(fn);
    if (!h) {
      h = fn === 'commit' ? commitEntry({ lambda: this }) as ReturnType<typeof lambdaHandler> : lambdaHandler(fn, HANDLERS[fn]!, { lambda: this });
      this.wrapped.set(fn, h);
    }
    return h;
  }

  async send(command: InvokeCommand): Promise<{ StatusCode: number; FunctionError?: string; Payload?: Uint8Array }> {
    const { FunctionName, InvocationType, Payload } = command.input;
    const fn = FunctionName!.replace(/^fake-/, '') as FunctionName;
    const event = JSON.parse(Buffer.from(Payload as Uint8Array).toString('utf8'));
    if (InvocationType === 'Event') {
      const step = this.steps++;
      this.background.push((async () => {
        if (step > 0) await this.betweenSteps(step);
        // An asynchronous invocation's error goes nowhere the caller sees (Lambda would retry it).
        await this.handlerFor(fn)(event, context(fn)).catch((e: unknown) => { this.asyncErrors.push(e); });
      })());
      return { StatusCode: 202 };
    }
    try {
      const answer: unknown = await this.handlerFor(fn)(event, context(fn));
      return { StatusCode: 200, Payload: Buffer.from(JSON.stringify(answer)) };
    } catch (e) {
      const err = e as Error;
      return { StatusCode: 200, FunctionError: 'Unhandled', Payload: Buffer.from(JSON.stringify({ errorType: err.name, errorMessage: err.message, trace: [] })) };
    }
  }
}

const NAMES = { lease: 'fake-lease', 'upload-grant': 'fake-upload-grant', commit: 'fake-commit', abort: 'fake-abort', resign: 'fake-resign', gc: 'fake-gc', check: 'fake-check', replicate: 'fake-replicate' };

/** The functions' configuration, as the deployment sets it (the handlers read process.env). */
function functionEnv(store: FsStore, keysDir: string, recordFile: string): void {
  Object.assign(process.env, {
    SCVMFS_STORE: store.root, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir, SCVMFS_SLICE_OPS: '6', SCVMFS_STORE_RECORD: recordFile,
    SCVMFS_FN_COMMIT: 'fake-commit',
  });
}

test('on Lambda, a rebase by graft is counted in the summary, and so is every function request', { timeout: 120_000 }, async () => {
  const { work, store, keysDir, config, open } = await setup('aws-grafts', ['w1', 'w2']);
  const recordFile = join(work, 'functions.jsonl');
  writeFileSync(recordFile, '');
  functionEnv(store, keysDir, recordFile);
  const src = join(work, 'src');
  makeTree(src, 'lambda', 20);
  const other = join(work, 'other');
  makeTree(other, 'other', 2);
  // Another writer commits while this chain is between its steps: the chain loses the race once.
  let raced = false;
  const lambda = new FakeLambda(async (step) => {
    if (step !== 1 || raced) return;
    raced = true;
    await publishThroughChain(store, other, { fqrn: FQRN, publisher: await loadPublisherKey(keysDir, 'w2'), path: '/w2', functions: invoker(config) });
  });
  const writer = new MeteredStore(store);
  const functions = awsInvoker({ functionNames: NAMES, store: writer, client: lambda as never, pollMs: 10 });
  const s = await publishThroughChain(writer, src, { fqrn: FQRN, publisher: await loadPublisherKey(keysDir, 'w1'), path: '/w1', functions });
  await Promise.all(lambda.background);
  assert.deepEqual(lambda.asyncErrors, []);
  assert.ok(raced);
  assert.ok(s.rebases >= 1, `the chain rebased (${s.rebases})`);
  assert.equal(s.grafts, s.rebases, 'the rebase was a graft, and the count came back through the invoker');
  assert.equal(s.revision, 3);
  // Every function request, synchronous or in the chain, reached the summary exactly once.
  assert.ok(s.functionRequests);
  assert.deepEqual(meterCounts(s.functionRequests), countsOf(parseStoreRecords(readFileSync(recordFile, 'utf8'))));
  const reader = await open();
  assert.equal((await reader.readFile('/w1/README')).toString(), 'lambda\n');
  await verifyRepository(reader);
  reader.close();
});

test('on Lambda, a refusal inside the commit chain reaches the writer at once, with its code', { timeout: 60_000 }, async () => {
  const { work, store, keysDir } = await setup('aws-refusal', ['w1']);
  const recordFile = join(work, 'functions.jsonl');
  writeFileSync(recordFile, '');
  functionEnv(store, keysDir, recordFile);
  const src = join(work, 'src');
  makeTree(src, 'refused', 3);
  const before = (await readHead(store))!.bytes;
  const lambda = new FakeLambda();
  const functions = awsInvoker({ functionNames: NAMES, store, client: lambda as never, pollMs: 10, timeoutMs: 30_000 });
  const started = Date.now();
  const err = await publishThroughChain(store, src, {
    fqrn: FQRN, publisher: await loadPublisherKey(keysDir, 'w1'), path: '/w1', functions,
    // Not whole numbers: the commit function refuses the event.
    autocatalogs: { maxWeight: 100.5, minWeight: 10 },
  }).then(() => null, (e: unknown) => e);
  await Promise.all(lambda.background);
  assert.ok(err instanceof ScvmfsError, `a ScvmfsError, not ${String(err)}`);
  assert.deepEqual([err.kind, err.code], ['refused', 'bad-autocatalogs']);
  assert.match(err.message, /autocatalogs must be false or whole numbers/);
  assert.ok(Date.now() - started < 10_000, `stopped at once (${Date.now() - started} ms), not at the 30 s timeout`);
  assert.deepEqual(lambda.asyncErrors, [], 'the refused step ended without an error: Lambda does not retry it');
  assert.ok((await readHead(store))!.bytes.equals(before), 'nothing committed');
});

test('on Lambda, a synchronous refusal comes back with its kind and code', async () => {
  const { work, store, keysDir } = await setup('aws-sync-refusal', ['w1']);
  functionEnv(store, keysDir, join(work, 'functions.jsonl'));
  const functions = awsInvoker({ functionNames: NAMES, store, client: new FakeLambda() as never });
  const request = signLeaseRequest(await loadPublisherKey(keysDir, 'w1'), { fqrn: FQRN, path: '/elsewhere', ttlSeconds: 60 });
  await assert.rejects(functions.invoke('lease', { action: 'acquire', request }),
    (e: ScvmfsError) => e instanceof ScvmfsError && e.kind === 'refused' && e.code === 'path-outside' && /elsewhere|scope|outside/.test(e.message));
});

test('a publisher publish with nothing to change but --tag makes a revision that only adds the tag', { timeout: 120_000 }, async () => {
  const { store, keys, src } = await cliRepo('tag-only', FQRN, { publishers: ['w1'] });
  makeTree(src, 'tagged', 3);
  const args = ['publish', FQRN, src, '--store', store, '--keys', keys, '--publisher', join(keys, 'w1.publisher'),
    '--path', '/w1', '--fn-timeout', '30s', '--fn-memory', '256', '--no-cache', '-q'];
  await cliOk(args);
  const untagged = await cliOk(args);
  assert.match(untagged.stdout, /no change: .* stays at revision 2/);
  const tagged = await cliOk([...args, '--tag', 'w1-rel']);
  assert.match(tagged.stdout, /no content change: revision 3 of .* has the same tree and adds tag 'w1-rel'/);
  const listed = await cliOk(['tag', 'list', store, '--fqrn', FQRN, '--pubkey', join(keys, `${FQRN}.pub`), '--json']);
  const tags = JSON.parse(listed.stdout) as { name: string; revision: number }[];
  assert.equal(tags.find((t) => t.name === 'w1-rel')?.revision, 3);
  const before = readFileSync(join(store, '.cvmfspublished'));
  const again = await runCli([...args, '--tag', 'w1-rel']);
  assert.equal(again.code, 3, again.stderr);
  assert.match(again.stderr, /tag 'w1-rel' already exists/);
  assert.ok(readFileSync(join(store, '.cvmfspublished')).equals(before), 'a refused tag changed the manifest');
});

/** Lambda that also answers a synchronous call's log tail, with the REPORT line Lambda ends it with. */
class ReportingLambda extends FakeLambda {
  reports = 0;
  override async send(command: InvokeCommand): Promise<{ StatusCode: number; FunctionError?: string; Payload?: Uint8Array; LogResult?: string }> {
    const out = await super.send(command);
    if (command.input.InvocationType === 'Event') return out;
    assert.equal(command.input.LogType, 'Tail', 'a synchronous call asks for the log tail');
    this.reports++;
    const tail = `START RequestId: r Version: $LATEST\nEND RequestId: r\nREPORT RequestId: r\tDuration: 12.21 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 90 MB\t\n`;
    return { ...out, LogResult: Buffer.from(tail).toString('base64') };
  }
}

test("on Lambda, the writer learns every function's billed time: the REPORT line's billed duration for direct calls, the adapter's measured time for the chain", { timeout: 120_000 }, async () => {
  const { work, store, keysDir } = await setup('aws-billing', ['w1']);
  functionEnv(store, keysDir, join(work, 'functions.jsonl'));
  const src = join(work, 'src');
  makeTree(src, 'billed', 12);
  const lambda = new ReportingLambda();
  const functions = awsInvoker({ functionNames: NAMES, store, client: lambda as never, pollMs: 10 });
  const started = performance.now();
  const s = await publishThroughChain(store, src, { fqrn: FQRN, publisher: await loadPublisherKey(keysDir, 'w1'), path: '/w1', functions, uploadVia: 'grants' });
  const elapsed = performance.now() - started;
  await Promise.all(lambda.background);
  assert.equal(s.revision, 2);
  const usage = functions.functionUsage();
  const of = (fn: string) => usage.filter((f) => f.fn === fn);
  for (const fn of ['lease', 'upload-grant']) {
    assert.equal(of(fn).length, 1, `${fn}: one size`);
    assert.equal(of(fn)[0]!.memoryMb, 1024, `${fn}: the memory Lambda reported`);
    assert.equal(of(fn)[0]!.billedMs, 13 * of(fn)[0]!.invocations, `${fn}: Lambda's billed duration, not a measurement`);
  }
  assert.equal(lambda.reports, of('lease')[0]!.invocations + of('upload-grant')[0]!.invocations, 'every synchronous call billed once');
  const commit = of('commit');
  assert.equal(commit.length, 1);
  assert.equal(commit[0]!.memoryMb, 512, "the chain's steps at the memory their context says");
  assert.ok(commit[0]!.invocations >= 1 && commit[0]!.billedMs >= commit[0]!.invocations && commit[0]!.billedMs <= elapsed + commit[0]!.invocations,
    `the chain's measured time (${commit[0]!.billedMs} ms in ${commit[0]!.invocations} steps, publish took ${elapsed.toFixed(0)} ms)`);
  assert.equal(functions.secretCalls(), 0, 'keys from a directory: no Secrets Manager calls');
});
