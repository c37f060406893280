// The Lambda wrapper, with fakes only where the cloud would answer: a Lambda client that records
// invocations and a Secrets Manager client that serves a JSON secret.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import type { InvokeCommand } from '@aws-sdk/client-lambda';
import type { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { loadKeys } from '../src/repo/keys-dir.js';
import { functionEnvName, lambdaHandler, type LambdaContext } from '../src/runtime/aws.js';
import type { FunctionContext, Handler } from '../src/functions/types.js';
import { RefusedError } from '../src/errors.js';
import { storeFromEnv } from '../src/functions/env.js';
import { FsStore } from '../src/store/fs-store.js';
import { tempDir } from './helpers.js';

const FQRN = 'aws.example.org';

class RecordingLambda {
  readonly invocations: InvokeCommand['input'][] = [];
  constructor(private readonly status = 202) {}
  async send(command: InvokeCommand) {
    this.invocations.push(command.input);
    return { StatusCode: this.status };
  }
}

class FakeSecrets {
  calls = 0;
  failuresLeft = 0;
  constructor(private readonly values: Record<string, string | undefined>) {}
  async send(command: GetSecretValueCommand) {
    this.calls++;
    const id = command.input.SecretId!;
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      throw new Error('Rate exceeded');
    }
    if (this.values[id] === undefined) {
      throw new Error("Secrets Manager can't find the specified secret value for staging label: AWSCURRENT");
    }
    return { SecretString: this.values[id] };
  }
}

function lambdaContext(remaining = 4321): LambdaContext {
  return {
    awsRequestId: 'req-1',
    functionName: 'stack-commit',
    memoryLimitInMB: '512',
    getRemainingTimeInMillis: () => remaining,
  };
}

function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { SCVMFS_STORE: 's3://bucket/aws.example.org', SCVMFS_FQRN: FQRN, ...extra };
}

test('the Lambda context becomes our FunctionContext', async () => {
  let seen: FunctionContext | undefined;
  const toy: Handler = async (_event, context) => {
    seen = context;
    return { result: 'ok' };
  };
  const wrapped = lambdaHandler('commit', toy, { env: baseEnv(), lambda: new RecordingLambda() });
  let remaining = 9000;
  const ctx = { ...lambdaContext(), getRemainingTimeInMillis: () => remaining };
  assert.equal((await wrapped({}, ctx)).result, 'ok');
  assert.equal(seen!.awsRequestId, 'req-1');
  assert.equal(seen!.functionName, 'stack-commit');
  assert.equal(seen!.memoryLimitInMB, 512);
  remaining = 1234;
  assert.equal(seen!.getRemainingTimeInMillis(), 1234, 'remaining time is asked of Lambda each time');
});

test('a next step becomes exactly one asynchronous invoke of the configured function with the event', async () => {
  const lambda = new RecordingLambda();
  const event = { txn: 'abc', slice: 3, paths: ['/a', '/b'] };
  const toy: Handler = async () => ({ result: { sliced: true }, next: { fn: 'commit', event } });
  const env = baseEnv({ [functionEnvName('commit')]: 'prod-commit', SCVMFS_FN_ABORT: 'prod-abort' });
  const wrapped = lambdaHandler('commit', toy, { env, lambda });
  assert.deepEqual((await wrapped({}, lambdaContext())).result, { sliced: true });
  assert.equal(lambda.invocations.length, 1);
  const call = lambda.invocations[0]!;
  assert.equal(call.FunctionName, 'prod-commit');
  assert.equal(call.InvocationType, 'Event');
  // The event travels with what the chain has spent so far, and the next step unwraps it.
  const payload = JSON.parse(Buffer.from(call.Payload as Uint8Array).toString('utf8'));
  assert.deepEqual(payload.event, event);
  assert.equal(payload.scvmfsChain.steps, 1);
  let seen: unknown;
  const next = lambdaHandler('commit', async (e) => { seen = e; return {}; }, { env, lambda });
  await next(payload, lambdaContext());
  assert.deepEqual(seen, event, 'the handler of the next step gets its event, not the envelope');
});

test('no next step, no invocation; a handler without result answers null', async () => {
  const lambda = new RecordingLambda();
  const wrapped = lambdaHandler('lease', async () => ({}), { env: baseEnv({ SCVMFS_FN_LEASE: 'x' }), lambda });
  assert.equal((await wrapped({}, lambdaContext())).result, null);
  assert.equal(lambda.invocations.length, 0);
});

test('chaining to a function the deployment did not wire is refused by name', async () => {
  const lambda = new RecordingLambda();
  const toy: Handler = async () => ({ next: { fn: 'resign', event: {} } });
  const wrapped = lambdaHandler('commit', toy, { env: baseEnv({ SCVMFS_FN_COMMIT: 'c' }), lambda });
  await assert.rejects(wrapped({}, lambdaContext()), /SCVMFS_FN_RESIGN is not set/);
  assert.equal(lambda.invocations.length, 0);
  assert.equal(functionEnvName('upload-grant'), 'SCVMFS_FN_UPLOAD_GRANT');
});

test('an invocation Lambda did not accept fails this step so that Lambda retries it', async () => {
  const toy: Handler = async () => ({ next: { fn: 'commit', event: {} } });
  const wrapped = lambdaHandler('commit', toy, { env: baseEnv({ SCVMFS_FN_COMMIT: 'c' }), lambda: new RecordingLambda(500) });
  await assert.rejects(wrapped({}, lambdaContext()), /was not accepted: status 500/);
});

test('missing configuration is named and the handler does not run', async () => {
  let ran = false;
  const toy: Handler = async () => { ran = true; return {}; };
  const wrapped = lambdaHandler('lease', toy, { env: { SCVMFS_FQRN: FQRN }, lambda: new RecordingLambda() });
  await assert.rejects(wrapped({}, lambdaContext()), /missing environment: SCVMFS_STORE/);
  assert.equal(ran, false);
});

test('the key secret becomes a keys directory, read once per warm sandbox', async () => {
  const keys = await generateRepositoryKeys(FQRN);
  const secrets = new FakeSecrets({
    'repo-secret': JSON.stringify({ key: keys.repositoryKeyPem, crt: keys.certificatePem }),
    'master-secret': JSON.stringify({ masterkey: keys.masterKeyPem }),
  });
  const env = baseEnv({ SCVMFS_KEY_SECRET: 'repo-secret', SCVMFS_MASTER_KEY_SECRET: 'master-secret' });
  const loaded: string[] = [];
  const toy: Handler = async () => {
    // The handler loads keys exactly as under the local runtime.
    const found = await loadKeys(env.SCVMFS_KEYS!, FQRN, { need: ['repository', 'master'] });
    loaded.push(found.certificatePem);
    return {};
  };
  const wrapped = lambdaHandler('resign', toy, { env, secrets, scratchDir: tempDir('aws-keys') });
  await wrapped({}, lambdaContext());
  const dir = env.SCVMFS_KEYS!;
  await wrapped({}, lambdaContext());
  await wrapped({}, lambdaContext());
  assert.deepEqual(loaded, [keys.certificatePem, keys.certificatePem, keys.certificatePem]);
  assert.equal(secrets.calls, 2, 'one read per secret for three invocations');
  assert.equal(env.SCVMFS_KEYS, dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(`${dir}/${FQRN}.key`).mode & 0o777, 0o600);
  assert.equal(statSync(`${dir}/${FQRN}.masterkey`).mode & 0o777, 0o600);
});

test('a failed secret read is not cached: the next invocation reads again', async () => {
  const keys = await generateRepositoryKeys(FQRN);
  const secrets = new FakeSecrets({ s: JSON.stringify({ key: keys.repositoryKeyPem, crt: keys.certificatePem }) });
  secrets.failuresLeft = 1;
  let runs = 0;
  const env = baseEnv({ SCVMFS_KEY_SECRET: 's' });
  const wrapped = lambdaHandler('commit', async () => { runs++; return {}; }, { env, secrets, scratchDir: tempDir('aws-keys') });
  await assert.rejects(wrapped({}, lambdaContext()), /cannot read secret s: Rate exceeded/);
  assert.equal(runs, 0);
  await wrapped({}, lambdaContext());
  await wrapped({}, lambdaContext());
  assert.equal(runs, 2);
  assert.equal(secrets.calls, 2);
});

test('an unfilled or malformed secret is refused with a message that says what to store', async () => {
  const cases: [string | undefined, RegExp][] = [
    [undefined, /cannot read secret s: .*has the owner stored the keys/],
    ['not json', /not a JSON object of PEM texts/],
    ['{}', /lacks 'key', 'crt'/],
    [JSON.stringify({ key: 'x', crt: 'y' }), /field 'key' is not a PEM text/],
    [JSON.stringify({ password: '-----BEGIN x' }), /unknown field 'password'/],
  ];
  for (const [value, message] of cases) {
    let ran = false;
    const wrapped = lambdaHandler('commit', async () => { ran = true; return {}; }, {
      env: baseEnv({ SCVMFS_KEY_SECRET: 's' }), secrets: new FakeSecrets({ s: value }), scratchDir: tempDir('aws-keys'),
    });
    await assert.rejects(wrapped({}, lambdaContext()), message);
    assert.equal(ran, false);
  }
});

test("a synchronous answer carries the invocation's own store requests; a refusal its kind and code", async () => {
  const dir = tempDir('aws-requests');
  process.env.SCVMFS_STORE = dir;
  const toy: Handler = async (event: { puts: number }) => {
    const store = storeFromEnv('lease');
    for (let i = 0; i < event.puts; i++) await store.put(`.scvmfs/x${i}`, Buffer.from('x'));
    await store.get('.scvmfs/x0');
    return { result: 'done' };
  };
  const wrapped = lambdaHandler('lease', toy, { env: baseEnv({ SCVMFS_STORE: dir }), lambda: new RecordingLambda() });
  const [a, b] = await Promise.all([wrapped({ puts: 2 }, lambdaContext()), wrapped({ puts: 5 }, lambdaContext())]);
  assert.deepEqual([a.result, a.requests.put, a.requests.get], ['done', 2, 1], 'counted per invocation, even side by side');
  assert.deepEqual([b.requests.put, b.requests.get], [5, 1]);

  const refusing = lambdaHandler('lease', async () => { throw new RefusedError('no-such-thing', 'refused for a reason'); },
    { env: baseEnv(), lambda: new RecordingLambda() });
  const err = await refusing({}, lambdaContext()).then(() => null, (e: Error) => e);
  assert.ok(err);
  assert.deepEqual(JSON.parse(err.message), { name: 'RefusedError', kind: 'refused', code: 'no-such-thing', message: 'refused for a reason' },
    "Lambda's errorMessage is the error's JSON");
});

test("a chain's last step records the chain's outcome and cost; a step that does not end the chain records none", async () => {
  const dir = tempDir('aws-outcome');
  process.env.SCVMFS_STORE = dir;
  const store = new FsStore(dir);
  const chainOutcome = { key: (e: { id: string }) => `.scvmfs/txn/${e.id}/outcome.json`, ends: (r: unknown) => r !== 'superseded' };
  const toy: Handler = async (event: { id: string; answer: string }) => {
    await storeFromEnv('commit').put(`.scvmfs/txn/${event.id}/work`, Buffer.from('w'));
    return { result: event.answer };
  };
  const wrapped = lambdaHandler('commit', toy, { env: baseEnv({ SCVMFS_STORE: dir }), lambda: new RecordingLambda(), chainOutcome });
  await wrapped({ id: 'lost-twin', answer: 'superseded' }, lambdaContext());
  assert.equal(await store.get('.scvmfs/txn/lost-twin/outcome.json'), null, 'the winning twin ends the chain, not this one');
  // The last of three steps: the envelope says what the two before it spent.
  const earlier = { get: 4, head: 0, put: 3, conditionalPut: 2, list: 0, delete: 0, preconditionFailed: 0, failed: 0, bytesIn: 10, bytesOut: 20 };
  await wrapped({ scvmfsChain: { requests: earlier, steps: 2 }, event: { id: 'done', answer: 'committed' } }, lambdaContext());
  const outcome = JSON.parse((await store.get('.scvmfs/txn/done/outcome.json'))!.body.toString());
  assert.equal(outcome.status, 'finished');
  assert.equal(outcome.result, 'committed');
  assert.equal(outcome.steps, 3);
  assert.equal(outcome.requests.put, 3 + 1 + 1, "earlier steps' puts, this step's, and the outcome's own");
  assert.equal(outcome.requests.conditionalPut, 2);
});

test("an answer carries the invocation's billing: its measured time at the context's memory, and the secret reads it made", async () => {
  const keys = await generateRepositoryKeys(FQRN);
  const secrets = new FakeSecrets({
    'repo-secret': JSON.stringify({ key: keys.repositoryKeyPem, crt: keys.certificatePem }),
    'master-secret': JSON.stringify({ masterkey: keys.masterKeyPem }),
  });
  const env = baseEnv({ SCVMFS_KEY_SECRET: 'repo-secret', SCVMFS_MASTER_KEY_SECRET: 'master-secret' });
  const wrapped = lambdaHandler('resign', async () => { await new Promise((r) => setTimeout(r, 30)); return {}; }, { env, secrets, scratchDir: tempDir('aws-billing') });
  const first = await wrapped({}, lambdaContext());
  const second = await wrapped({}, lambdaContext());
  assert.equal(first.billing?.secretCalls, 2, 'a cold sandbox reads both secrets');
  assert.equal(second.billing?.secretCalls, 0, 'a warm one reads none');
  for (const a of [first, second]) {
    const [f, ...rest] = a.billing!.functions;
    assert.equal(rest.length, 0);
    assert.deepEqual([f!.fn, f!.memoryMb, f!.invocations], ['resign', 512, 1]);
    assert.ok(f!.billedMs >= 30 && f!.billedMs < 5000, `the handler's time, rounded up (${f!.billedMs} ms)`);
  }
});
