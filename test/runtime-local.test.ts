// The local runtime enforces a cloud function's limits, reuses warm sandboxes, re-delivers and kills
// on request, with toy handlers from test/fixtures/functions standing in for the real steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ChainError, FunctionError, KilledError, LocalRuntime, killAtPlan, killPlansFrom, type LocalRuntimeOptions } from '../src/runtime/local.js';
import type { FunctionName } from '../src/functions/types.js';
import { describeError, exitStatusOf } from '../src/errors.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'functions');
const TOY = join(FIXTURES, 'toy.js');
const STEP = join(FIXTURES, 'chain-step.js');
const CHAIN_MODULES = { lease: STEP, commit: STEP, resign: STEP };

/** A runtime closed when the test ends, whatever happens. */
function runtime(t: { after(fn: () => Promise<void>): void }, options: LocalRuntimeOptions = {}): LocalRuntime {
  const rt = new LocalRuntime({ modules: { lease: TOY }, ...options });
  t.after(() => rt.close());
  return rt;
}

async function rejectsWith(p: Promise<unknown>, kind: string, pattern: RegExp): Promise<FunctionError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FunctionError, `expected a FunctionError, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected a ${kind} failure`);
}

test('a chain of three steps runs each step once, in order, and returns the last result', async (t) => {
  const rt = runtime(t, { modules: CHAIN_MODULES });
  const out = await rt.runChain('lease', { plan: ['commit', 'resign'], trail: [] });
  assert.deepEqual(out.result, ['lease', 'commit', 'resign']);
  assert.deepEqual(out.path, ['lease', 'commit', 'resign']);
  for (const fn of ['lease', 'commit', 'resign'] as const) {
    assert.equal(out.report[fn]?.invocations, 1);
    assert.equal(out.report[fn]?.failures, 0);
    assert.ok(out.report[fn]!.peakMemoryMb > 0);
  }
});

test('a chain longer than maxSteps fails with a clear error', async (t) => {
  const rt = runtime(t, { modules: CHAIN_MODULES });
  const plan: FunctionName[] = Array(10).fill('commit');
  await assert.rejects(rt.runChain('lease', { plan, trail: [] }, { maxSteps: 5 }),
    (e: unknown) => e instanceof ChainError && /did not finish within 5 steps/.test(e.message) && e.records.length === 5);
});

test('a synchronous busy loop is killed at the timeout and the runtime keeps working', async (t) => {
  const rt = runtime(t);
  const started = Date.now();
  await rejectsWith(rt.invoke('lease', { action: 'busy' }, { timeoutMs: 300 }), 'timeout', /Task timed out after 0\.30 seconds/);
  const took = Date.now() - started;
  assert.ok(took >= 300 && took < 2000, `took ${took} ms`);
  assert.deepEqual((await rt.invoke('lease', { action: 'sleep', ms: 1 })).result, 'slept');
  assert.equal(rt.report().lease?.timeouts, 1);
});

test('heap growth past the memory limit is an out-of-memory failure and the next invocation is fine', async (t) => {
  const rt = runtime(t);
  await rejectsWith(rt.invoke('lease', { action: 'heap', mb: 400 }, { memoryMb: 128, timeoutMs: 20_000 }), 'out-of-memory', /Runtime\.OutOfMemory/);
  assert.deepEqual((await rt.invoke('lease', { action: 'heap', mb: 16 }, { memoryMb: 128 })).result, 'survived');
  const s = rt.report().lease!;
  assert.equal(s.outOfMemory, 1);
  assert.equal(s.invocations, 2);
});

test('worker mode does not limit memory outside the heap (documented gap)', async (t) => {
  const rt = runtime(t);
  assert.equal((await rt.invoke('lease', { action: 'buffer', mb: 200 }, { memoryMb: 128, timeoutMs: 10_000 })).result, 200 * 1024 * 1024);
});

test('strict mode kills a 512 MB Buffer under a 128 MB limit, reports the peak, and keeps working', async (t) => {
  const rt = runtime(t, { mode: 'strict' });
  await rejectsWith(rt.invoke('lease', { action: 'buffer', mb: 512 }, { memoryMb: 128, timeoutMs: 10_000 }), 'out-of-memory', /Runtime\.OutOfMemory: resident memory/);
  const s = rt.report().lease!;
  assert.equal(s.outOfMemory, 1);
  assert.ok(s.peakMemoryMb >= 128 && s.peakMemoryMb < 300, `peak ${s.peakMemoryMb} MB`);
  assert.equal((await rt.invoke('lease', { action: 'buffer', mb: 8 }, { memoryMb: 128 })).result, 8 * 1024 * 1024);
  const last = rt.report().lease!;
  assert.ok(last.peakMemoryMb > 20, 'peak RSS is measured');
});

test('strict mode kills a busy loop at the timeout', async (t) => {
  const rt = runtime(t, { mode: 'strict' });
  await rejectsWith(rt.invoke('lease', { action: 'busy' }, { timeoutMs: 300 }), 'timeout', /Task timed out after 0\.30 seconds/);
  assert.equal((await rt.invoke('lease', { action: 'counter' })).result, 1, 'a new sandbox after the kill');
});

test('warm sandboxes keep module state; forceColdStart gives every invocation a new one', async (t) => {
  for (const mode of ['worker', 'strict'] as const) {
    const warm = runtime(t, { mode });
    const counts = [];
    for (let i = 0; i < 3; i++) counts.push((await warm.invoke('lease', { action: 'counter' })).result);
    assert.deepEqual(counts, [1, 2, 3], mode);
    assert.equal(warm.report().lease?.coldStarts, 1);

    const cold = runtime(t, { mode, forceColdStart: true });
    const coldCounts = [];
    for (let i = 0; i < 3; i++) coldCounts.push((await cold.invoke('lease', { action: 'counter' })).result);
    assert.deepEqual(coldCounts, [1, 1, 1], mode);
    assert.equal(cold.report().lease?.coldStarts, 3);
  }
});

test('a thrown error fails the invocation but keeps the sandbox warm; process.exit crashes it', async (t) => {
  const rt = runtime(t);
  assert.equal((await rt.invoke('lease', { action: 'counter' })).result, 1);
  const err = await rejectsWith(rt.invoke('lease', { action: 'throw' }), 'error', /TypeError: the toy was told to throw/);
  assert.equal(err.errorType, 'TypeError');
  assert.match(err.sandboxStack ?? '', /toy\.js/);
  assert.equal((await rt.invoke('lease', { action: 'counter' })).result, 3);
  await rejectsWith(rt.invoke('lease', { action: 'exit' }), 'crashed', /exited with code 3/);
  assert.equal((await rt.invoke('lease', { action: 'counter' })).result, 1);
});

test('deliverTwice delivers every event of a chain twice and counts both', async (t) => {
  for (const deliverTwice of ['sequential', 'concurrent'] as const) {
    const rt = runtime(t, { modules: CHAIN_MODULES, deliverTwice });
    const out = await rt.runChain('lease', { plan: ['commit', 'resign'], trail: [] });
    assert.deepEqual(out.result, ['lease', 'commit', 'resign']);
    for (const fn of ['lease', 'commit', 'resign'] as const) assert.equal(out.report[fn]?.invocations, 2, `${deliverTwice} ${fn}`);
    assert.equal(out.records.length, 6);
  }
});

test('killAt stops an invocation mid-flight and runChain retries the step to completion', async (t) => {
  // Kill the first delivery of commit 1 s in (it sleeps 2 s, under the 3 s timeout), and the second at its last checkpoint.
  // The margins are wide because a loaded machine can take hundreds of ms to start the sandbox.
  const rt = runtime(t, {
    modules: CHAIN_MODULES,
    killAt: (fn, i) => (fn !== 'commit' ? undefined : i === 0 ? 1000 : i === 1 ? { checkpoint: 'after-work' } : undefined),
  });
  const out = await rt.runChain('lease', { plan: ['commit', 'resign'], trail: [], ms: 2000 });
  assert.deepEqual(out.result, ['lease', 'commit', 'resign']);
  const commit = out.records.filter((r) => r.fn === 'commit');
  assert.deepEqual(commit.map((r) => r.outcome), ['killed', 'killed', 'ok']);
  assert.deepEqual(commit[0]!.checkpoints, ['before-work'], 'killed during the sleep');
  // libuv timers run on a millisecond clock, so they may fire a fraction of a millisecond early.
  assert.ok(commit[0]!.durationMs >= 999, `${commit[0]!.durationMs} ms`);
  assert.deepEqual(commit[1]!.checkpoints, ['before-work', 'after-work']);
  assert.equal(out.report.commit?.killed, 2);
  assert.equal(out.report.commit?.invocations, 3);
});

test('a step killed more often than it is retried fails the chain with the KilledError', async (t) => {
  const rt = runtime(t, { modules: CHAIN_MODULES, killAt: (fn) => (fn === 'resign' ? { checkpoint: 0 } : undefined) });
  await assert.rejects(rt.runChain('lease', { plan: ['resign'], trail: [] }, { retries: 1 }),
    (e: unknown) => e instanceof ChainError && e.cause instanceof KilledError && e.report.resign?.killed === 2 && /after 2 attempt/.test(e.message));
});

test('killing every function at every checkpoint and before every answer still completes the chain', async (t) => {
  const clean = await runtime(t, { modules: CHAIN_MODULES }).runChain('lease', { plan: ['commit', 'resign'], trail: [] });
  const plans = killPlansFrom(clean.records);
  // Three steps, each with two checkpoints and an answer.
  assert.equal(plans.length, 9);
  for (const plan of plans) {
    const rt = runtime(t, { modules: CHAIN_MODULES, killAt: killAtPlan(plan) });
    const out = await rt.runChain('lease', { plan: ['commit', 'resign'], trail: [] });
    const what = `${plan.fn} #${plan.index} at ${JSON.stringify(plan.at)}`;
    assert.deepEqual(out.result, ['lease', 'commit', 'resign'], what);
    assert.deepEqual(out.records.map((r) => r.outcome).filter((o) => o !== 'ok'), ['killed'], what);
    assert.equal(out.report[plan.fn]?.invocations, 2, what);
    await rt.close();
  }
});

test('checkpoint kills work in strict mode too', async (t) => {
  const rt = runtime(t, { mode: 'strict', killAt: (_fn, i) => (i === 0 ? { checkpoint: 'middle' } : undefined) });
  const err = await rejectsWith(rt.invoke('lease', { action: 'checkpoints', ms: 5 }), 'killed', /checkpoint #1 'middle'/);
  assert.ok(err instanceof KilledError);
  assert.deepEqual((await rt.invoke('lease', { action: 'checkpoints', ms: 5 })).result, 'passed all checkpoints');
});

test('the sandbox environment is exactly the configured one plus the function name and memory', async (t) => {
  for (const mode of ['worker', 'strict'] as const) {
    const env = { SCVMFS_STORE: '/tmp/store', SCVMFS_FQRN: 'test.cern.ch', SCVMFS_KEYS: '/tmp/keys' };
    const rt = runtime(t, { mode, env });
    const seen = (await rt.invoke('lease', { action: 'env' }, { memoryMb: 256 })).result as Record<string, string>;
    assert.deepEqual(seen, { ...env, AWS_LAMBDA_FUNCTION_NAME: 'lease', AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256' }, mode);
  }
});

test('the context carries the request id, name and memory, and the remaining time decreases', async (t) => {
  const rt = runtime(t);
  const echo = (await rt.invoke('lease', { action: 'echo' }, { memoryMb: 192 })).result as Record<string, unknown>;
  assert.match(String(echo.requestId), /^[0-9a-f-]{36}$/);
  assert.equal(echo.functionName, 'lease');
  assert.equal(echo.memoryLimitInMB, 192);
  const [first, second] = (await rt.invoke('lease', { action: 'remaining', ms: 100 }, { timeoutMs: 2000 })).result as number[];
  assert.ok(first! <= 2000 && first! > 1500, `first ${first}`);
  assert.ok(second! <= first! - 90, `${first} then ${second}`);
});

test('bad input is refused with a clear message', async (t) => {
  const rt = runtime(t);
  await assert.rejects(rt.invoke('nope' as FunctionName, {}), /unknown function 'nope'/);
  await assert.rejects(rt.invoke('lease', { action: 'echo' }, { memoryMb: 64 }), /memoryMb for lease must be an integer from 128 to 10240/);
  await assert.rejects(rt.invoke('lease', { blob: 'x'.repeat(7 * 1024 * 1024) }), /above the 6291456-byte limit/);
  const missing = runtime(t, { modules: { commit: '/nonexistent/functions/commit.js' } });
  await rejectsWith(missing.invoke('commit', {}), 'init', /no handler module at .*commit\.js/);
  await rejectsWith(rt.invoke('lease', { action: 'bad-next' }), 'error', /names no known function/);
  assert.throws(() => new LocalRuntime({ env: { A: 1 as unknown as string } }), /env\.A must be a string/);
});

test('a process using the runtime exits promptly, with or without close()', () => {
  const local = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'runtime', 'local.js')).href;
  for (const mode of ['worker', 'strict']) {
    for (const close of [true, false]) {
      const script = `import { LocalRuntime } from ${JSON.stringify(local)};
        const rt = new LocalRuntime({ mode: '${mode}', modules: { lease: ${JSON.stringify(TOY)} } });
        await rt.invoke('lease', { action: 'counter' });
        ${close ? 'await rt.close();' : ''}`;
      const started = Date.now();
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, encoding: 'utf8' });
      assert.equal(r.status, 0, `${mode} close=${close}: ${r.stderr}`);
      assert.ok(Date.now() - started < 5000, `${mode} close=${close} took ${Date.now() - started} ms`);
    }
  }
});

test('a handler\'s refusal keeps its kind and code across the sandbox boundary, in both sandbox modes', async (t) => {
  for (const mode of ['worker', 'strict'] as const) {
    const rt = runtime(t, { mode });
    const err = await rejectsWith(rt.invoke('lease', { action: 'refuse' }), 'error', /the toy refuses/);
    assert.deepEqual(err.handlerError, { name: 'RefusedError', kind: 'refused', code: 'untrusted-head', message: 'the toy refuses', data: { revision: 7 } });
    assert.equal(describeError(err).code, 'untrusted-head');
    assert.equal(exitStatusOf(err), 3);
    // An engine error inside a handler is a bug, not a refusal.
    const bug = await rejectsWith(rt.invoke('lease', { action: 'throw' }), 'error', /told to throw/);
    assert.equal(bug.handlerError, undefined);
    assert.equal(exitStatusOf(bug), 70);
  }
});
