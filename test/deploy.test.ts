// Deploying as a user does it: `npm run synth` from a fresh checkout with no network, the template it
// writes, the package check's refusal of a runtime the addon was not built for, and the stack's
// outputs read once, saved, and used by `--stack` (with the cloud recorded on 127.0.0.1).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { InvokeCommand } from '@aws-sdk/client-lambda';
import type { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { UpdateFunctionConfigurationCommand } from '@aws-sdk/client-lambda';
import { readAddonRequirements, NODE_MODULE_VERSIONS } from '../infra/addon-compat.js';
import { planCdk } from '../infra/cdk-plan.js';
import { defaultLambdaRuntime } from '../infra/lambda-runtime.js';
import { DATA_TTL, DEFAULT_FUNCTION_SETTINGS, MANIFEST_TTL } from '../infra/stack.js';
import { FUNCTION_NAMES } from '../src/functions/types.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { loadKeys, writeKeys } from '../src/repo/keys-dir.js';
import { addPublisher } from '../src/repo/publishers.js';
import { initRepository } from '../src/repo/repository.js';
import { FsStore } from '../src/store/fs-store.js';
import { lambdaHandler } from '../src/runtime/aws.js';
import { awsInvoker } from '../src/runtime/invokers.js';
import { clientConfig, putKeys } from '../src/runtime/aws-owner.js';
import {
  deployedFunctionNames, functionOutputName, loadStackOutputs, resolveStack, stackOutputsFromCdk, STACK_OUTPUT,
} from '../src/runtime/stack-outputs.js';
import { startAwsRecorder, recordedEnv, RECORDED_REFUSAL } from './aws-recorder.js';
import { runCli, tempDir } from './helpers.js';
import {
  freshCheckout, npmRun, recordedOutputs, RECORDED_BUCKET, RECORDED_DOMAIN, SYNTH_FQRN, SYNTH_STACK, synthesized,
} from './synthesized.js';

type Json = any;
const synth = synthesized();
const resources = (type: string): [string, Json][] => Object.entries(synth.template.Resources as Record<string, Json>).filter(([, r]) => r.Type === type);
const runtime = defaultLambdaRuntime();

test('npm run synth from a fresh checkout, with no network, writes the template and says where', () => {
  assert.equal(synth.run.status, 0);
  assert.match(synth.run.stdout, new RegExp(`template: .*${SYNTH_STACK}\\.template\\.json \\(${runtime.replace('.', '\\.')}, x86_64\\)`));
  assert.match(synth.run.stdout, /better_sqlite3\.node loads on nodejs\d+\.x on Amazon Linux 2023/, 'the package step checked the addon');
});

test('the synthesized bucket keeps the data when the stack is deleted and serves only the public part', () => {
  const buckets = resources('AWS::S3::Bucket');
  assert.equal(buckets.length, 1);
  const [bucketId, bucket] = buckets[0]!;
  assert.equal(bucket.DeletionPolicy, 'Retain');
  assert.equal(bucket.UpdateReplacePolicy, 'Retain');
  assert.deepEqual(bucket.Properties.OwnershipControls.Rules, [{ ObjectOwnership: 'BucketOwnerEnforced' }]);
  const [, policy] = resources('AWS::S3::BucketPolicy').find(([, p]) => p.Properties.Bucket.Ref === bucketId)!;
  const publicRead = policy.Properties.PolicyDocument.Statement.find((s: Json) => s.Sid === 'PublicRepositoryRead');
  assert.deepEqual(publicRead.Resource.map((r: Json) => r['Fn::Join'][1][1]), [`/${SYNTH_FQRN}/.cvmfs*`, `/${SYNTH_FQRN}/data/*`]);
});

test('the synthesized distribution caches .cvmfs* files 61 s and objects 3 days, uncompressed, GET/HEAD only', () => {
  const [[, cdn]] = resources('AWS::CloudFront::Distribution') as [[string, Json]];
  const config = cdn.Properties.DistributionConfig;
  assert.equal(config.HttpVersion, 'http1.1');
  const ttlOf = (behavior: Json) => {
    const [, p] = resources('AWS::CloudFront::CachePolicy').find(([id]) => id === behavior.CachePolicyId.Ref)!;
    const c = p.Properties.CachePolicyConfig;
    assert.equal(c.MinTTL, c.DefaultTTL);
    assert.equal(c.MaxTTL, c.DefaultTTL);
    assert.equal(c.ParametersInCacheKeyAndForwardedToOrigin.EnableAcceptEncodingGzip, false);
    return c.DefaultTTL;
  };
  const behaviors = Object.fromEntries(config.CacheBehaviors.map((b: Json) => [b.PathPattern, b]));
  assert.deepEqual(Object.keys(behaviors).sort(), [`${SYNTH_FQRN}/.cvmfs*`, `${SYNTH_FQRN}/data/*`]);
  assert.equal(ttlOf(behaviors[`${SYNTH_FQRN}/.cvmfs*`]), MANIFEST_TTL.toSeconds());
  assert.equal(ttlOf(behaviors[`${SYNTH_FQRN}/data/*`]), DATA_TTL.toSeconds());
  assert.equal(ttlOf(config.DefaultCacheBehavior), 61);
  for (const b of [...config.CacheBehaviors, config.DefaultCacheBehavior]) {
    assert.equal(b.Compress, false);
    assert.deepEqual(b.AllowedMethods, ['GET', 'HEAD']);
  }
});

test('every synthesized function has its memory, timeout, runtime and handler, and its package holds what it loads', () => {
  const functions = resources('AWS::Lambda::Function');
  assert.equal(functions.length, FUNCTION_NAMES.length);
  const assets = JSON.parse(readFileSync(join(synth.outDir, `${SYNTH_STACK}.assets.json`), 'utf8')).files as Record<string, Json>;
  for (const fn of FUNCTION_NAMES) {
    const [, f] = functions.find(([, r]) => r.Properties.FunctionName === `${SYNTH_STACK}-${fn}`)!;
    const p = f.Properties;
    const expected = fn === 'commit' ? { memoryMB: 2048, timeout: DEFAULT_FUNCTION_SETTINGS.commit.timeout } : DEFAULT_FUNCTION_SETTINGS[fn];
    assert.equal(p.MemorySize, expected.memoryMB, `${fn} memory`);
    assert.equal(p.Timeout, expected.timeout.toSeconds(), `${fn} timeout`);
    assert.equal(p.Runtime, runtime, `${fn} runtime`);
    assert.deepEqual(p.Architectures, ['x86_64']);
    assert.equal(p.Handler, `dist/src/runtime/aws-entry/${fn}.handler`);
    // The staged asset is the package: the entry module and an addon for this runtime's Node ABI.
    const asset = assets[p.Code.S3Key.replace(/\.zip$/, '')];
    const dir = join(synth.outDir, asset.source.path);
    assert.ok(existsSync(join(dir, 'dist', 'src', 'runtime', 'aws-entry', `${fn}.js`)), `${fn} entry module in the package`);
    const addon = readAddonRequirements(readFileSync(join(dir, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')));
    assert.equal(addon.nodeModuleVersion, NODE_MODULE_VERSIONS[Number(runtime.slice(6, 8))]);
    assert.ok(!existsSync(join(dir, 'node_modules', 'aws-cdk-lib')), 'no development dependency is shipped');
  }
});

test('the synthesized schedule re-signs through resign every resignEveryDays days; the secrets hold no value and are kept', () => {
  const rules = resources('AWS::Events::Rule');
  assert.equal(rules.length, 1);
  const rule = rules[0]![1].Properties;
  assert.equal(rule.ScheduleExpression, 'rate(5 days)');
  const [resignId] = resources('AWS::Lambda::Function').find(([, r]) => r.Properties.FunctionName === `${SYNTH_STACK}-resign`)!;
  assert.deepEqual(rule.Targets.map((t: Json) => t.Arn['Fn::GetAtt'][0]), [resignId]);
  const secrets = resources('AWS::SecretsManager::Secret').map(([, s]) => s);
  assert.deepEqual(secrets.map((s) => s.Properties.Name).sort(), [`scvmfs/${SYNTH_FQRN}/master-key`, `scvmfs/${SYNTH_FQRN}/repository-key`]);
  for (const s of secrets) {
    assert.equal(s.DeletionPolicy, 'Retain');
    assert.equal(s.Properties.GenerateSecretString, undefined);
    assert.equal(s.Properties.SecretString, undefined);
  }
});

test('synth for a Node major the addon was not built for is refused before anything is built, saying how to build it', () => {
  const other = runtime === 'nodejs22.x' ? 'nodejs20.x' : 'nodejs22.x';
  const checkout = freshCheckout(tempDir('synth-refused'));
  const out = join(checkout, 'out');
  const r = npmRun(checkout, 'synth', ['-c', `fqrn=${SYNTH_FQRN}`, '-c', `lambdaRuntime=${other}`, '--output', out]);
  assert.notEqual(r.status, 0);
  const built = runtime.slice(6, 8);
  const wanted = other.slice(6, 8);
  assert.match(r.stderr, new RegExp(`cannot load on ${other.replace('.', '\\.')} on Amazon Linux 2023`));
  assert.match(r.stderr, new RegExp(`NODE_MODULE_VERSION ${NODE_MODULE_VERSIONS[Number(built)]} \\(Node ${built}\\), ${other.replace('.', '\\.')} .* needs ${NODE_MODULE_VERSIONS[Number(wanted)]} \\(Node ${wanted}\\)\\. Build the package under Node ${wanted}`));
  assert.match(r.stderr, new RegExp(`npm run synth -- -c lambdaRuntime=${other.replace('.', '\\.')}`));
  assert.ok(!existsSync(out), 'no template');
  assert.ok(!existsSync(join(checkout, 'build', 'lambda')), 'no package');
});

test('synth refuses a missing repository name and an unknown option before it builds anything', () => {
  assert.throws(() => planCdk('synth', []), /give the repository name: npm run synth -- -c fqrn=repo\.example\.org/);
  assert.throws(() => planCdk('synth', ['-c', 'fqrn=a.example.org', '-c', 'masterkeyInAccount=true']), /unknown context option masterkeyInAccount: the options are/);
  assert.throws(() => planCdk('synth', ['-c', 'fqrn=a.example.org', '-c', 'lambdaRuntime=nodejs18.x']), /lambdaRuntime must be one of nodejs20\.x, nodejs22\.x, nodejs24\.x/);
  assert.throws(() => planCdk('synth', ['-c', 'fqrn=a.example.org', '-c', 'nodeVersion=22']), /now lambdaRuntime: -c lambdaRuntime=nodejs22\.x/);
});

test('synth runs the CLI with no credentials, version check, notices, telemetry or lookups; deploy saves its outputs', () => {
  const env = { AWS_ACCESS_KEY_ID: 'AKID', AWS_PROFILE: 'prod', PATH: '/usr/bin' };
  const s = planCdk('synth', ['-c', 'fqrn=a.example.org', '--context=lambdaRuntime=nodejs22.x', '-o', '/tmp/x'], env);
  assert.equal(s.env.AWS_ACCESS_KEY_ID, undefined);
  assert.equal(s.env.AWS_PROFILE, undefined);
  assert.equal(s.env.AWS_SHARED_CREDENTIALS_FILE, '/dev/null');
  assert.equal(s.env.CDK_DISABLE_VERSION_CHECK, '1');
  assert.equal(s.env.CDK_DISABLE_CLI_TELEMETRY, 'true');
  assert.deepEqual(s.cdkArgs.filter((a) => a.startsWith('--no-')), ['--no-notices', '--no-lookups']);
  assert.equal(s.settings.lambdaRuntime, 'nodejs22.x');
  assert.equal(s.outputDir, '/tmp/x');
  const d = planCdk('deploy', ['-c', 'fqrn=a.example.org', '--require-approval', 'never'], env);
  assert.equal(d.env.AWS_PROFILE, 'prod', 'deploy uses the account');
  assert.deepEqual(d.cdkArgs.slice(-5), ['--outputs-file', d.outputsFile, 'scvmfs-a-example-org', '--require-approval', 'never']);
  assert.match(d.outputsFile!, /build\/stacks\/scvmfs-a-example-org\.outputs\.json$/);
  assert.equal(d.context.lambdaRuntime, runtime, 'the default runtime is that of the Node that built the addon');
});

test('a deploy\'s recorded outputs file is read once and saved; --stack then finds the functions, and nothing is copied by hand', async () => {
  const dir = tempDir('stacks');
  const file = join(tempDir('outputs'), 'cdk-outputs.json');
  writeFileSync(file, JSON.stringify(recordedOutputs(synth.template)));
  const read = await resolveStack({ outputsFile: file, dir });
  assert.equal(read.stackName, SYNTH_STACK);
  assert.equal(read.fqrn, SYNTH_FQRN);
  assert.equal(read.storeUrl, `s3://${RECORDED_BUCKET}/${SYNTH_FQRN}?region=us-east-1`);
  assert.equal(read.serverUrl, `http://${RECORDED_DOMAIN}/@fqrn@`);
  assert.equal(read.masterKeySecret, `scvmfs/${SYNTH_FQRN}/master-key`);
  for (const fn of FUNCTION_NAMES) assert.equal(read.functionNames[fn], `${SYNTH_STACK}-${fn}`);
  assert.deepEqual(readdirSync(dir), [`${SYNTH_STACK}.json`]);
  const saved = await loadStackOutputs(SYNTH_STACK, dir);
  assert.deepEqual(saved, read);

  // The saved names are what the writer's invoker calls (a recording Lambda client stands for Lambda).
  const sent: InvokeCommand['input'][] = [];
  const client = { send: async (c: InvokeCommand) => { sent.push(c.input); return { StatusCode: 200, Payload: Buffer.from('{"result":{"ok":true},"requests":{}}') }; } };
  const invoker = awsInvoker({ functionNames: deployedFunctionNames(saved), store: new FsStore(tempDir('unused-store')), client: client as never });
  assert.deepEqual(await invoker.invoke('lease', { action: 'list' }), { ok: true });
  assert.equal(sent[0]!.FunctionName, `${SYNTH_STACK}-lease`);

  await assert.rejects(loadStackOutputs('scvmfs-other', dir), /no saved outputs for stack scvmfs-other .*--stack-outputs/);
  await assert.rejects(loadStackOutputs('../etc/passwd', dir), /not a CloudFormation stack name/);
  const broken = { [SYNTH_STACK]: { ...recordedOutputs(synth.template)[SYNTH_STACK], [STACK_OUTPUT.serverUrl]: undefined } };
  assert.throws(() => stackOutputsFromCdk(broken), /has no output ServerUrl/);
  assert.throws(() => stackOutputsFromCdk({ a: {}, b: {} }), /holds stacks a, b: name one with --stack/);
  assert.equal(functionOutputName('upload-grant'), 'UploadGrantFunctionName');
});

async function ownerKeys(fqrn: string) {
  const dir = tempDir('owner-keys');
  const keys = await generateRepositoryKeys(fqrn);
  await writeKeys(dir, fqrn, keys);
  return { dir, keys };
}

test('put-keys stores the keys in the secrets the functions read them from, and restarts the functions that cache them', async () => {
  const stack = stackOutputsFromCdk(recordedOutputs(synth.template));
  const { dir, keys } = await ownerKeys(SYNTH_FQRN);
  const stored = new Map<string, string>();
  const secrets = { send: async (c: PutSecretValueCommand) => { stored.set(c.input.SecretId!, c.input.SecretString!); return {}; } };
  const updated: UpdateFunctionConfigurationCommand['input'][] = [];
  const lambda = { send: async (c: UpdateFunctionConfigurationCommand) => { updated.push(c.input); return {}; } };
  const plan = await putKeys(stack, dir, { masterKey: true, secrets, lambda });
  assert.deepEqual([...stored.keys()], [`scvmfs/${SYNTH_FQRN}/repository-key`, `scvmfs/${SYNTH_FQRN}/master-key`]);
  assert.deepEqual(updated.map((u) => u.FunctionName), [`${SYNTH_STACK}-commit`, `${SYNTH_STACK}-resign`, `${SYNTH_STACK}-gc`]);
  assert.equal(plan.retire.length, 3);

  // What was stored is what the deployed adapter reads back into a keys directory.
  const reader = { send: async (c: GetSecretValueCommand) => ({ SecretString: stored.get(c.input.SecretId!) }) };
  const env: NodeJS.ProcessEnv = {
    SCVMFS_STORE: stack.storeUrl, SCVMFS_FQRN: SYNTH_FQRN,
    SCVMFS_KEY_SECRET: stack.repositoryKeySecret, SCVMFS_MASTER_KEY_SECRET: stack.masterKeySecret,
  };
  const handler = lambdaHandler('resign', async () => ({ result: 'ran' }), { env, secrets: reader, scratchDir: tempDir('scratch') });
  await handler({}, { awsRequestId: 'r', functionName: 'f', memoryLimitInMB: '256', getRemainingTimeInMillis: () => 1000 });
  const loaded = await loadKeys(env.SCVMFS_KEYS!, SYNTH_FQRN, { need: ['master', 'repository', 'anchor'] });
  assert.equal(loaded.certificatePem, keys.certificatePem);
  assert.equal(loaded.masterKeyPem, keys.masterKeyPem);

  // A stack without the master key secret refuses --master-key before storing anything.
  const { masterKeySecret: _, ...withoutMaster } = stack;
  stored.clear();
  await assert.rejects(putKeys(withoutMaster, dir, { masterKey: true, secrets, lambda }), /keeps no master key: deploy it with -c masterKeyInAccount=true/);
  assert.equal(stored.size, 0);
});

test('the CLI saves the outputs, stores the keys through the real SDK and publishes through the stack\'s functions (cloud recorded on 127.0.0.1)', async () => {
  const recorder = await startAwsRecorder();
  try {
    const config = tempDir('config');
    const work = tempDir('cli-stack');
    const env = recordedEnv(recorder, { XDG_CONFIG_HOME: config });
    const file = join(work, 'outputs.json');
    writeFileSync(file, JSON.stringify(recordedOutputs(synth.template)));
    const saved = await runCli(['aws', 'save-outputs', file], { env });
    assert.equal(saved.code, 0, saved.stderr);
    assert.match(saved.stdout, new RegExp(`saved the outputs of stack ${SYNTH_STACK} \\(${SYNTH_FQRN}\\) in ${config}/scvmfs/stacks/${SYNTH_STACK}\\.json`));
    const got = await runCli(['aws', 'outputs', '--stack', SYNTH_STACK, '--get', 'CommitFunctionName'], { env });
    assert.equal(got.stdout.trim(), `${SYNTH_STACK}-commit`);

    const { dir } = await ownerKeys(SYNTH_FQRN);
    const dry = await runCli(['aws', 'put-keys', '--stack', SYNTH_STACK, '--keys', dir, '--dry-run'], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would store key, crt, pub of deploy\.example\.org in secret scvmfs\/deploy\.example\.org\/repository-key/);
    assert.equal(recorder.calls.length, 0, 'a dry run calls nothing');
    const put = await runCli(['aws', 'put-keys', '--stack', SYNTH_STACK, '--keys', dir], { env });
    assert.equal(put.code, 0, put.stderr);
    assert.deepEqual(recorder.calls.map((c) => [c.service, c.operation, c.body.SecretId ?? c.functionName]), [
      ['secretsmanager', 'PutSecretValue', `scvmfs/${SYNTH_FQRN}/repository-key`],
      ['lambda', 'UpdateFunctionConfiguration', `${SYNTH_STACK}-commit`],
      ['lambda', 'UpdateFunctionConfiguration', `${SYNTH_STACK}-resign`],
      ['lambda', 'UpdateFunctionConfiguration', `${SYNTH_STACK}-gc`],
    ]);
    assert.deepEqual(Object.keys(JSON.parse(recorder.calls[0]!.body.SecretString)), ['key', 'crt', 'pub']);

    const client = await runCli(['aws', 'client-config', '--stack', SYNTH_STACK], { env });
    assert.match(client.stdout, new RegExp(`^CVMFS_SERVER_URL=http://${RECORDED_DOMAIN}/@fqrn@$`, 'm'));
    assert.equal(client.stdout, `# /etc/cvmfs/config.d/${SYNTH_FQRN}.conf (and the master public key as /etc/cvmfs/keys/${SYNTH_FQRN}.pub)\n`
      + clientConfig(stackOutputsFromCdk(recordedOutputs(synth.template))).text);

    // A publisher's publish through the stack: the first call is the lease function of the saved outputs.
    const store = new FsStore(join(work, 'store'));
    const keys = await loadKeys(dir, SYNTH_FQRN, { need: ['master', 'repository', 'anchor'] });
    await initRepository(store, { fqrn: SYNTH_FQRN, keys: keys as never });
    await addPublisher(store, { keysDir: dir, fqrn: SYNTH_FQRN, name: 'alice', paths: ['/alice'] });
    const manifest = readFileSync(join(store.root, '.cvmfspublished'));
    const src = join(work, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'a\n');
    recorder.calls.length = 0;
    const pub = await runCli(['publish', SYNTH_FQRN, src, '--path', '/alice', '--store', store.root, '--publisher', join(dir, 'alice.publisher'),
      '--runtime', 'aws', '--stack', SYNTH_STACK, '-q'], { env });
    assert.equal(pub.code, 3, pub.stderr);
    assert.match(pub.stderr, new RegExp(RECORDED_REFUSAL.message));
    assert.deepEqual(recorder.calls.map((c) => [c.operation, c.functionName, c.invocationType]), [['Invoke', `${SYNTH_STACK}-lease`, 'RequestResponse']]);
    assert.equal(recorder.calls[0]!.body.action, 'acquire');
    assert.deepEqual(readFileSync(join(store.root, '.cvmfspublished')), manifest, 'the refused publish changed nothing');

    const wrong = await runCli(['publish', 'other.example.org', src, '--store', store.root, '--publisher', join(dir, 'alice.publisher'), '--runtime', 'aws', '--stack', SYNTH_STACK], { env });
    assert.equal(wrong.code, 3);
    assert.match(wrong.stderr, /stack scvmfs-deploy-example-org serves deploy\.example\.org, not other\.example\.org/);
    const unknown = await runCli(['publish', SYNTH_FQRN, src, '--publisher', join(dir, 'alice.publisher'), '--runtime', 'aws', '--stack', 'scvmfs-nowhere'], { env });
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /no saved outputs for stack scvmfs-nowhere/);
  } finally {
    await recorder.close();
  }
});
