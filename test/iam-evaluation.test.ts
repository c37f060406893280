// The functions' store requests, recorded while they publish under the local runtime, against the IAM
// roles of the template `npm run synth` writes: an IAM policy evaluator (@cloud-copilot/iam-simulate) decides each request
// as S3 would, and every permission a role holds must be used by some request (or be justified below).
// A function that starts touching a key its role does not allow, or a role that grows a permission no
// function uses, fails here.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { signLeaseRequest } from '../src/format/lease.js';
import { FUNCTION_NAMES, type FunctionName } from '../src/functions/types.js';
import { publishThroughChain, type FunctionInvoker } from '../src/publish/publish-changeset.js';
import type { CommitConfig } from '../src/functions/commit.js';
import { objectKeysOf, poison } from './poisoning-helpers.js';
import { writeKeys } from '../src/repo/keys-dir.js';
import { addPublisher, loadPublisherKey } from '../src/repo/publishers.js';
import { initRepository } from '../src/repo/repository.js';
import { LocalRuntime } from '../src/runtime/local.js';
import { FsStore } from '../src/store/fs-store.js';
import { parseStoreRecords, type StoreRecord } from '../src/store/recording-store.js';
import { tempDir } from './helpers.js';
import { SYNTH_FQRN, synthesized } from './synthesized.js';

// The repository of the synthesized template (masterKeyInAccount and scheduleResign on: every role there).
const FQRN = SYNTH_FQRN;
const BUCKET = 'scvmfs-iam-test';
const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';

type Json = any;

/** One request as IAM sees it. */
interface IamRequest {
  fn: FunctionName;
  action: string;
  resource: string;
  context: Record<string, string>;
  /** What the store call was, for messages. */
  what: string;
}

/**
 * Permissions a role holds that the recorded publishes do not use, each with why it must stay. Keyed
 * `<function> <action> <resource pattern under the repository prefix>`.
 */
const JUSTIFIED: Record<string, string> = {
  'upload-grant s3:PutObject data/*': 'the pre-signed PUT URLs it hands out carry this role\'s rights; '
    + 'on a directory store no URL is signed, so the local runtime never uses it',
  'replicate s3:PutObject .cvmfswhitelist.pkcs7': 'written only when the source has a PKCS#7 whitelist, which '
    + 'repositories rarely do; without it such a replica would serve a whitelist the manifest does not match',
  'resign s3:ListBucket <bucket>': 'a repository made before the high-water record existed has none, and without '
    + 'ListBucket S3 answers the GET of a missing key with 403 instead of 404',
};

/** S3 action, resource ARN and context of one recorded store call. */
function iamRequests(r: StoreRecord & { who: FunctionName }): IamRequest[] {
  const object = (key: string) => `arn:aws:s3:::${BUCKET}/${FQRN}/${key}`;
  const bucket = `arn:aws:s3:::${BUCKET}`;
  const what = `${r.action} ${r.key}`;
  switch (r.action) {
    case 'get':
    case 'head': {
      const out: IamRequest[] = [{ fn: r.who, action: 's3:GetObject', resource: object(r.key), context: {}, what }];
      // S3 answers a missing key with 404 only to a caller that may list the bucket (403 otherwise), and
      // the store takes 404 for "not there": the missing-key answer needs ListBucket as well.
      if (r.found === false) out.push({ fn: r.who, action: 's3:ListBucket', resource: bucket, context: {}, what: `${what} (missing)` });
      return out;
    }
    case 'put': return [{ fn: r.who, action: 's3:PutObject', resource: object(r.key), context: {}, what }];
    case 'list': return [{ fn: r.who, action: 's3:ListBucket', resource: bucket, context: { 's3:prefix': `${FQRN}/${r.key}` }, what }];
    case 'delete': return (r.keys ?? [r.key]).map((k) => ({ fn: r.who, action: 's3:DeleteObject', resource: object(k), context: {}, what: `delete ${k}` }));
  }
}

/** The template's intrinsic functions, resolved for one account, region and bucket name. */
function resolve(value: Json, bucketId: string): Json {
  if (Array.isArray(value)) return value.map((v) => resolve(v, bucketId));
  if (typeof value !== 'object' || value === null) return value;
  if ('Fn::Join' in value) {
    const [sep, parts] = value['Fn::Join'];
    return (parts as Json[]).map((p) => resolve(p, bucketId)).join(sep);
  }
  if ('Fn::GetAtt' in value) {
    const [id, attr] = value['Fn::GetAtt'];
    if (id === bucketId && attr === 'Arn') return `arn:aws:s3:::${BUCKET}`;
    return `arn:aws:cloudformation:::${id}/${attr}`;
  }
  if ('Ref' in value) {
    const ref = value.Ref;
    if (ref === bucketId) return BUCKET;
    if (ref === 'AWS::Partition') return 'aws';
    if (ref === 'AWS::Region') return REGION;
    if (ref === 'AWS::AccountId') return ACCOUNT;
    if (ref === 'AWS::URLSuffix') return 'amazonaws.com';
    return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${ref}`;
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, bucketId)]));
}

/**
 * The S3 statements of each function's role in the template `npm run synth` wrote (test/synthesized.ts,
 * shared with test/deploy.test.ts), with concrete ARNs.
 */
function rolePolicies(): Record<FunctionName, Json[]> {
  const resources = synthesized().template.Resources as Record<string, Json>;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const [[bucketId]] = ofType('AWS::S3::Bucket') as [[string, Json]];
  const functions = ofType('AWS::Lambda::Function');
  const policies = ofType('AWS::IAM::Policy').map(([, p]) => p);
  const out = {} as Record<FunctionName, Json[]>;
  for (const fn of FUNCTION_NAMES) {
    const [, f] = functions.find(([, r]) => r.Properties.Handler === `dist/src/runtime/aws-entry/${fn}.handler`)!;
    const role = f.Properties.Role['Fn::GetAtt'][0];
    const statements = policies.filter((p) => p.Properties.Roles.some((r: Json) => r.Ref === role))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Json[]);
    out[fn] = statements
      .filter((s) => list(s.Action).some((a: string) => a.startsWith('s3:')))
      .map((s) => resolve(s, bucketId));
  }
  return out;
}

function list<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

async function allowed(statements: Json[], r: IamRequest): Promise<boolean> {
  const result = await runSimulation({
    request: { principal: `arn:aws:iam::${ACCOUNT}:role/Iam-${r.fn}`, action: r.action, resource: { resource: r.resource, accountId: ACCOUNT }, contextVariables: r.context },
    identityPolicies: [{ name: r.fn, policy: { Version: '2012-10-17', Statement: statements } }],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  }, {});
  if (result.resultType === 'error') throw new Error(`the evaluator refused ${JSON.stringify(r)}: ${JSON.stringify(result.errors)}`);
  return result.overallResult === 'Allowed';
}

/** Writes a small tree: `files` files under lib/, spread over `dirs` directories, and a README. */
function makeTree(root: string, label: string, files: number, dirs = 1): void {
  for (let d = 0; d < dirs; d++) mkdirSync(join(root, 'lib', `d${d}`), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'lib', `d${i % dirs}`, `f${i}`), `${label} file ${i}\n`);
  writeFileSync(join(root, 'README'), `${label}\n`);
}

/**
 * Publishes a representative set through the local runtime with every function's store recorded: a
 * publish through upload grants in many slices, one that loses the manifest race and rebases, a commit
 * that balances catalogs, an abort, a lease renewal and listing, a refused lease, and a whitelist re-sign.
 */
async function recordPublishes(): Promise<StoreRecord[]> {
  const work = tempDir('iam-record');
  const store = new FsStore(join(work, 'store'));
  const keysDir = join(work, 'keys');
  const keys = await generateRepositoryKeys(FQRN);
  await writeKeys(keysDir, FQRN, keys);
  await initRepository(store, { fqrn: FQRN, keys });
  for (const w of ['w1', 'w2', 'a']) await addPublisher(store, { keysDir, fqrn: FQRN, name: w, paths: [`/${w}`] });
  const recordFile = join(work, 'requests.jsonl');
  writeFileSync(recordFile, '');
  const runtime = new LocalRuntime({
    env: { SCVMFS_STORE: store.root, SCVMFS_FQRN: FQRN, SCVMFS_KEYS: keysDir, SCVMFS_SLICE_OPS: '8', SCVMFS_STORE_RECORD: recordFile },
    limits: { timeoutMs: 30_000, memoryMb: 256 },
  });
  // Runs a chain step by step, so a test can act between two steps.
  const functions = (between?: (step: number) => Promise<void>): FunctionInvoker => ({
    invoke: async (fn, event) => (await runtime.invoke(fn as FunctionName, event)).result,
    runChain: async (fn, event) => {
      let step = { fn: fn as FunctionName, event };
      for (let i = 0; ; i++) {
        const answer = await runtime.invoke(step.fn, step.event);
        if (!answer.next) return answer.result;
        await between?.(i);
        step = answer.next;
      }
    },
  });
  try {
    const w1 = await loadPublisherKey(keysDir, 'w1');
    const w2 = await loadPublisherKey(keysDir, 'w2');
    const src = (label: string, files: number, dirs = 1) => {
      const dir = join(work, label);
      makeTree(dir, label, files, dirs);
      return dir;
    };
    // Many slices, objects offered through upload grants.
    await publishThroughChain(store, src('first', 24), { fqrn: FQRN, publisher: w1, path: '/w1', functions: functions(), uploadVia: 'grants' });
    // w2 commits while w1's chain is between steps: w1 loses the manifest race and rebases.
    let raced = false;
    const rebased = await publishThroughChain(store, src('second', 10), {
      fqrn: FQRN, publisher: w1, path: '/w1', functions: functions(async (step) => {
        if (step !== 1 || raced) return;
        raced = true;
        await publishThroughChain(store, src('other', 3), { fqrn: FQRN, publisher: w2, path: '/w2', functions: functions() });
      }),
    });
    assert.ok(raced && rebased.rebases > 0, `the race was run and lost (${rebased.rebases} rebases)`);
    // Balancing splits the writer's catalog.
    await publishThroughChain(store, src('balanced', 120, 2), {
      fqrn: FQRN, publisher: w2, path: '/w2', functions: functions(), autocatalogs: { maxWeight: 100, minWeight: 10 },
    });
    // Writer a poisons, through its own upload grants, the keys of a file w1 then publishes: w1's commit
    // removes the bad object and its grant record, and w1 uploads the right bytes again.
    const victim = src('victim', 0);
    writeFileSync(join(victim, 'x.txt'), 'the victim file\n');
    const config = { fqrn: FQRN, keys: { masterPublicKeyPem: keys.masterPublicKeyPem } } as CommitConfig;
    await poison(store, config, keysDir, await objectKeysOf(victim, FQRN), 'grant');
    const repaired = await publishThroughChain(store, victim, { fqrn: FQRN, publisher: w1, path: '/w1', functions: functions(), uploadVia: 'grants' });
    assert.equal(repaired.changed, true);
    // A commit that never runs: the writer aborts the transaction.
    const failing = functions();
    await assert.rejects(publishThroughChain(store, src('aborted', 3), {
      fqrn: FQRN, publisher: w1, path: '/w1', functions: { ...failing, runChain: async () => { throw new Error('the chain is unreachable'); } },
    }), /unreachable/);
    // Lease renewal, listing, and an acquire refused because the path is held.
    const held = await runtime.invoke('lease', { action: 'acquire', request: signLeaseRequest(w1, { fqrn: FQRN, path: '/w1', ttlSeconds: 60 }) });
    const lease = (held.result as { lease: { leaseId: string; token: string } }).lease;
    await runtime.invoke('lease', { action: 'renew', leaseId: lease.leaseId, token: lease.token });
    // The same missing key granted twice (a writer that never used its first grant): the record is appended.
    const unused = `data/00/${'0'.repeat(38)}`;
    for (let i = 0; i < 2; i++) await runtime.invoke('upload-grant', { leaseId: lease.leaseId, token: lease.token, path: '/w1', keys: [unused] });
    await runtime.invoke('lease', { action: 'list' });
    const busy = await runtime.invoke('lease', { action: 'acquire', request: signLeaseRequest(w1, { fqrn: FQRN, path: '/w1/sub', ttlSeconds: 60 }) });
    assert.equal((busy.result as { status: string }).status, 'busy');
    await runtime.invoke('lease', { action: 'release', leaseId: lease.leaseId, token: lease.token });
    await runtime.invoke('resign', { days: 30 });
    // A check chain: reads everything, lists data/, writes and drops its own state and walk log.
    const checked = await runtime.runChain('check', { id: 'iam', publicKeys: [keys.masterPublicKeyPem], sliceCatalogs: 2, pageKeys: 50 }, { maxSteps: 1000 });
    assert.equal((checked.result as { status: string }).status, 'clean');
    // A gc that publishes its revision, marks, fences, sweeps and removes finished transactions.
    const collected = await runtime.runChain('gc', { gcId: 'gc-iam-run', options: { keepRevisions: 1, graceMs: 0, fenceWaitMs: 0 } }, { maxSteps: 1000 });
    assert.ok((collected.result as { deleted: { objects: number } }).deleted.objects > 0);
  } finally {
    await runtime.close();
  }
  // A stratum 1 of this repository in a bucket of its own: the source is read over HTTP in the stack, so
  // only the replica's requests are recorded (twice: a full copy, then an up-to-date run).
  const replicas = new LocalRuntime({
    env: { SCVMFS_STORE: join(work, 'replica'), SCVMFS_STORE_RECORD: recordFile, SCVMFS_REPLICATE_SLICE: '2' },
    limits: { timeoutMs: 30_000, memoryMb: 256 },
  });
  try {
    const event = { source: store.root, fqrn: FQRN, publicKeys: [keys.masterPublicKeyPem] };
    for (let i = 0; i < 2; i++) await replicas.runChain('replicate', event);
  } finally {
    await replicas.close();
  }
  return parseStoreRecords(readFileSync(recordFile, 'utf8'));
}

test('every store request the functions make is allowed by their roles, and every permission of a role is used', async () => {
  const records = await recordPublishes();
  const byFunction = new Map<FunctionName, StoreRecord[]>();
  for (const r of records) {
    assert.ok((FUNCTION_NAMES as readonly string[]).includes(r.who), `recorded by a function: ${r.who}`);
    byFunction.set(r.who as FunctionName, [...(byFunction.get(r.who as FunctionName) ?? []), r]);
  }
  assert.deepEqual([...byFunction.keys()].sort(), [...FUNCTION_NAMES].sort(), 'every function ran and used the store');

  const policies = rolePolicies();
  // Distinct requests only: many data objects stand for one pattern, but each is still decided.
  const requests = new Map<string, IamRequest>();
  for (const r of records) {
    for (const q of iamRequests(r as StoreRecord & { who: FunctionName })) requests.set(JSON.stringify([q.fn, q.action, q.resource, q.context]), q);
  }
  const denied: string[] = [];
  for (const q of requests.values()) {
    if (!(await allowed(policies[q.fn], q))) denied.push(`${q.fn}: ${q.action} ${q.resource.replace(`arn:aws:s3:::${BUCKET}/${FQRN}/`, '')} (${q.what})`);
  }
  assert.deepEqual(denied, [], `requests the roles do not allow:\n  ${denied.join('\n  ')}`);

  // Every (action, resource) a role grants must be what some recorded request needed.
  const unused: string[] = [];
  const justifiedUsed: string[] = [];
  for (const fn of FUNCTION_NAMES) {
    const mine = [...requests.values()].filter((q) => q.fn === fn);
    for (const s of policies[fn]) {
      for (const action of list(s.Action) as string[]) {
        for (const resource of list(s.Resource) as string[]) {
          const grant = [{ Effect: 'Allow', Action: action, Resource: resource, ...(s.Condition ? { Condition: s.Condition } : {}) }];
          let used = false;
          for (const q of mine.filter((m) => m.action === action)) {
            if (await allowed(grant, q)) { used = true; break; }
          }
          const name = `${fn} ${action} ${resource.replace(`arn:aws:s3:::${BUCKET}/${FQRN}/`, '').replace(`arn:aws:s3:::${BUCKET}`, '<bucket>')}`;
          if (!used && !(name in JUSTIFIED)) unused.push(name);
          if (used && name in JUSTIFIED) justifiedUsed.push(name);
        }
      }
    }
  }
  assert.deepEqual(unused, [], `permissions no recorded request uses (remove them, or justify them in JUSTIFIED):\n  ${unused.join('\n  ')}`);
  assert.deepEqual(justifiedUsed, [], 'justified exceptions that are in fact used: drop them from JUSTIFIED');
  for (const name of Object.keys(JUSTIFIED)) {
    const [fn, action, pattern] = name.split(' ') as [FunctionName, string, string];
    const resource = pattern === '<bucket>' ? `arn:aws:s3:::${BUCKET}` : `arn:aws:s3:::${BUCKET}/${FQRN}/${pattern}`;
    const granted = policies[fn].some((s) => list(s.Action).includes(action) && list(s.Resource).includes(resource));
    assert.ok(granted, `JUSTIFIED names a permission the role does not hold: ${name}`);
  }
});
