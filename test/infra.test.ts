// The CDK app, synthesized (no account, no Docker, no network) and read back: who may read and write
// which keys, what the CDN caches for how long, how the functions are set up.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { App, Duration, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ScvmfsStack, type ScvmfsStackProps } from '../infra/stack.js';
import { FUNCTION_NAMES, type FunctionName } from '../src/functions/types.js';
import { tempDir } from './helpers.js';

const FQRN = 'repo.example.org';
const codeDirectory = tempDir('lambda-code');
writeFileSync(`${codeDirectory}/index.js`, '// stands in for dist + node_modules\n');

function synth(props: Partial<ScvmfsStackProps> = {}, id = 'Repo'): Template {
  const stack = new ScvmfsStack(new App(), id, { fqrn: FQRN, codeDirectory, ...props });
  // Synthesis also validates the template against the CloudFormation schemas; its one warning is that
  // Lambda is retiring Node 20 (docs/aws.md: nodeVersion). Any other finding still shows.
  Validations.of(stack).acknowledge({ id: 'CloudFormation-Validate::W2531', reason: 'Node 20 is the tested default' });
  return Template.fromStack(stack);
}

const plain = synth();
const full = synth({
  masterKeyInAccount: true, scheduleResign: true, resignEveryDays: 5,
  functions: { commit: { memoryMB: 2048, timeout: Duration.minutes(10) } },
});

type Json = any;

function resources(t: Template, type: string): Record<string, Json> {
  return t.findResources(type);
}

function only(t: Template, type: string, match: Json = {}): [string, Json] {
  const found = Object.entries(t.findResources(type, match));
  assert.equal(found.length, 1, `expected one ${type}, found ${found.length}`);
  return found[0]!;
}

/** An object ARN in the template, as the key pattern it grants (`<fqrn>/data/*`), or the raw value. */
function objectPattern(resource: Json): string {
  if (typeof resource === 'string') return resource;
  const parts = resource?.['Fn::Join']?.[1];
  if (Array.isArray(parts) && parts.length === 2 && parts[0]?.['Fn::GetAtt']?.[1] === 'Arn'
    && typeof parts[1] === 'string' && parts[1].startsWith('/')) {
    return parts[1].slice(1);
  }
  return JSON.stringify(resource);
}

/** IAM wildcard match: `*` any run of characters (slashes included), `?` one character. */
function globMatches(pattern: string, key: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(key);
}

function list<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

function functionOf(t: Template, fn: FunctionName): [string, Json] {
  return only(t, 'AWS::Lambda::Function', { Properties: { Handler: `dist/src/runtime/aws-entry/${fn}.handler` } });
}

/** Statements of the inline policies attached to the role of `fn`. */
function statementsOf(t: Template, fn: FunctionName): Json[] {
  const role = functionOf(t, fn)[1].Properties.Role['Fn::GetAtt'][0];
  return Object.values(resources(t, 'AWS::IAM::Policy'))
    .filter((p) => p.Properties.Roles.some((r: Json) => r.Ref === role))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

function allows(t: Template, fn: FunctionName, action: string, key: string): boolean {
  return statementsOf(t, fn).some((s) => s.Effect === 'Allow' && list(s.Action).includes(action)
    && list(s.Resource).some((r) => globMatches(objectPattern(r), `${FQRN}/${key}`)));
}

const PUBLIC_KEYS = ['.cvmfspublished', '.cvmfswhitelist', '.cvmfsreflog', '.cvmfs_master_replica',
  'data/6e/d3d49a5c64f21f36936ab350d49aaf57585b9aC', 'data/ab/cdef0123456789abcdef0123456789abcdef01'];
const CONTROL_KEYS = ['.scvmfs/leases.json', '.scvmfs/publishers.json', '.scvmfs/txn/abc/changeset.json', '.scvmfs/publish.lock'];

test('the bucket policy lets anyone read the public files and objects, never the control area', () => {
  const [, policy] = only(plain, 'AWS::S3::BucketPolicy');
  const statements: Json[] = policy.Properties.PolicyDocument.Statement;
  assert.equal(statements.length, 1);
  const [s] = statements;
  assert.deepEqual([s.Effect, s.Principal, s.Action], ['Allow', { AWS: '*' }, 's3:GetObject']);
  const patterns = list(s.Resource).map(objectPattern);
  assert.deepEqual(patterns, [`${FQRN}/.cvmfs*`, `${FQRN}/data/*`]);
  for (const key of PUBLIC_KEYS) {
    assert.ok(patterns.some((p) => globMatches(p, `${FQRN}/${key}`)), `${key} is public`);
  }
  for (const key of CONTROL_KEYS) {
    assert.ok(!patterns.some((p) => globMatches(p, `${FQRN}/${key}`)), `${key} is not public`);
  }
  // Nothing else is readable anonymously either: not other repositories' prefixes, not the bucket root.
  assert.ok(!patterns.some((p) => globMatches(p, 'other.example.org/.cvmfspublished')));
});

test('the bucket refuses ACLs, keeps the data when the stack goes, and CloudFront reads it anonymously', () => {
  const [, bucket] = only(plain, 'AWS::S3::Bucket');
  assert.equal(bucket.DeletionPolicy, 'Retain');
  assert.deepEqual(bucket.Properties.OwnershipControls, { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
  assert.equal(bucket.Properties.PublicAccessBlockConfiguration.BlockPublicAcls, true);
  assert.equal(bucket.Properties.PublicAccessBlockConfiguration.IgnorePublicAcls, true);
  // No origin access identity or control: either would let CloudFront serve the control area.
  assert.equal(Object.keys(resources(plain, 'AWS::CloudFront::OriginAccessControl')).length, 0);
  assert.equal(Object.keys(resources(plain, 'AWS::CloudFront::CloudFrontOriginAccessIdentity')).length, 0);
  const [, cdn] = only(plain, 'AWS::CloudFront::Distribution');
  const [origin] = cdn.Properties.DistributionConfig.Origins;
  assert.deepEqual(origin.S3OriginConfig, { OriginAccessIdentity: '' });
  assert.equal(origin.OriginAccessControlId, undefined);
});

test('CloudFront: .cvmfs* 61 s, data/ 3 days, no compression, HTTP/1.1, nothing from the request in the key', () => {
  const [, cdn] = only(plain, 'AWS::CloudFront::Distribution');
  const config = cdn.Properties.DistributionConfig;
  assert.equal(config.HttpVersion, 'http1.1');
  const policies = resources(plain, 'AWS::CloudFront::CachePolicy');
  const ttls = (behavior: Json) => {
    const c = policies[behavior.CachePolicyId.Ref].Properties.CachePolicyConfig;
    const p = c.ParametersInCacheKeyAndForwardedToOrigin;
    assert.equal(p.QueryStringsConfig.QueryStringBehavior, 'none');
    assert.equal(p.CookiesConfig.CookieBehavior, 'none');
    assert.equal(p.HeadersConfig.HeaderBehavior, 'none');
    assert.equal(p.EnableAcceptEncodingGzip, false);
    assert.equal(p.EnableAcceptEncodingBrotli, false);
    assert.equal(behavior.Compress, false);
    assert.equal(behavior.ForwardedValues, undefined);
    assert.deepEqual(behavior.AllowedMethods, ['GET', 'HEAD']);
    assert.equal(behavior.ViewerProtocolPolicy, 'allow-all');
    return [c.MinTTL, c.DefaultTTL, c.MaxTTL];
  };
  const byPath = Object.fromEntries(config.CacheBehaviors.map((b: Json) => [b.PathPattern, b]));
  assert.deepEqual(Object.keys(byPath).sort(), [`${FQRN}/.cvmfs*`, `${FQRN}/data/*`]);
  assert.deepEqual(ttls(byPath[`${FQRN}/.cvmfs*`]), [61, 61, 61]);
  assert.deepEqual(ttls(byPath[`${FQRN}/data/*`]), [259200, 259200, 259200]);
  assert.deepEqual(ttls(config.DefaultCacheBehavior), [61, 61, 61]);
});

test('every function on Node 20, one entry module each, with default and overridden limits', async () => {
  plain.resourceCountIs('AWS::Lambda::Function', FUNCTION_NAMES.length);
  const expected: Record<FunctionName, [number, number]> = {
    lease: [256, 10], 'upload-grant': [256, 30], commit: [1024, 300], abort: [256, 60], resign: [256, 30], gc: [256, 900], check: [128, 300], replicate: [1024, 300],
  };
  for (const fn of FUNCTION_NAMES) {
    const p = functionOf(plain, fn)[1].Properties;
    assert.equal(p.Runtime, 'nodejs20.x');
    assert.deepEqual([p.MemorySize, p.Timeout], expected[fn], fn);
    assert.equal(p.FunctionName, `Repo-${fn}`);
    assert.equal(p.Environment.Variables.SCVMFS_FQRN, FQRN);
    assert.deepEqual(p.Environment.Variables.SCVMFS_STORE,
      { 'Fn::Join': ['', ['s3://', { Ref: only(plain, 'AWS::S3::Bucket')[0] }, `/${FQRN}`]] });
    // The handler setting names a module that exists in the build and exports a Lambda handler.
    const entry = await import(`../src/runtime/aws-entry/${fn}.js`);
    assert.equal(typeof entry.handler, 'function', fn);
  }
  const commit = functionOf(full, 'commit')[1].Properties;
  assert.deepEqual([commit.MemorySize, commit.Timeout], [2048, 600]);
  assert.equal(functionOf(synth({ nodeVersion: 22 }, 'Node22'), 'lease')[1].Properties.Runtime, 'nodejs22.x');
});

test('only commit and gc (and resign beside the master key) read the repository key; only resign reads the master key; commit, gc, check and replicate chain, each in itself', () => {
  const [repoKey, secret] = only(full, 'AWS::SecretsManager::Secret', { Properties: { Name: `scvmfs/${FQRN}/repository-key` } });
  const [masterKey] = only(full, 'AWS::SecretsManager::Secret', { Properties: { Name: `scvmfs/${FQRN}/master-key` } });
  // Created without a value (no placeholder text, no generated password): the owner stores the keys.
  assert.equal(secret.Properties.SecretString, undefined);
  assert.equal(secret.Properties.GenerateSecretString, undefined);
  assert.equal(secret.DeletionPolicy, 'Retain');
  plain.resourceCountIs('AWS::SecretsManager::Secret', 1);

  for (const fn of FUNCTION_NAMES) {
    const env = functionOf(full, fn)[1].Properties.Environment.Variables;
    const statements = statementsOf(full, fn);
    const readsSecret = (id: string) => statements.some((s) => list(s.Action).includes('secretsmanager:GetSecretValue')
      && list(s.Resource).some((r) => r.Ref === id));
    assert.equal(readsSecret(repoKey), fn === 'commit' || fn === 'gc' || fn === 'resign', `${fn} and the repository key`);
    assert.equal(readsSecret(masterKey), fn === 'resign', `${fn} and the master key`);
    assert.deepEqual(env.SCVMFS_KEY_SECRET, fn === 'commit' || fn === 'gc' || fn === 'resign' ? { Ref: repoKey } : undefined);
    assert.deepEqual(env.SCVMFS_MASTER_KEY_SECRET, fn === 'resign' ? { Ref: masterKey } : undefined);
    const invokes = statements.filter((s) => list(s.Action).some((a: string) => a.startsWith('lambda:')));
    if (fn === 'commit' || fn === 'check' || fn === 'gc' || fn === 'replicate') {
      // Each chain continues only in itself.
      assert.equal(env[`SCVMFS_FN_${fn.toUpperCase()}`], `Repo-${fn}`);
      assert.equal(invokes.length, 1);
      assert.deepEqual(invokes[0].Action, 'lambda:InvokeFunction');
      assert.match(JSON.stringify(invokes[0].Resource), new RegExp(`:function:Repo-${fn}"`));
    } else {
      assert.equal(invokes.length, 0, `${fn} invokes nothing`);
      assert.ok(!Object.keys(env).some((k) => k.startsWith('SCVMFS_FN_')), `${fn} chains nowhere`);
    }
  }
  // Without the master key in the account, resign holds no key at all.
  const plainResign = functionOf(plain, 'resign')[1].Properties.Environment.Variables;
  assert.equal(plainResign.SCVMFS_MASTER_KEY_SECRET, undefined);
  assert.equal(plainResign.SCVMFS_KEY_SECRET, undefined);
  assert.ok(!statementsOf(plain, 'resign').some((s) => list(s.Action).some((a: string) => a.startsWith('secretsmanager:'))));
});

test('each role reaches only its own keys, and no policy grants a wildcard action or every resource', () => {
  for (const t of [plain, full]) {
    for (const fn of FUNCTION_NAMES) {
      for (const s of statementsOf(t, fn)) {
        assert.equal(s.Effect, 'Allow');
        for (const a of list(s.Action) as string[]) assert.ok(!a.includes('*'), `${fn}: action ${a}`);
        for (const r of list(s.Resource)) assert.notEqual(r, '*', `${fn}: ${s.Action} on every resource`);
        if (list(s.Action).some((a: string) => a.startsWith('s3:') && a !== 's3:ListBucket')) {
          for (const r of list(s.Resource)) assert.ok(objectPattern(r).startsWith(`${FQRN}/`), `${fn}: ${objectPattern(r)}`);
        }
        if (list(s.Action).includes('s3:ListBucket')) {
          assert.deepEqual(list(s.Resource), [{ 'Fn::GetAtt': [only(t, 'AWS::S3::Bucket')[0], 'Arn'] }]);
        }
      }
    }
  }
  const may = (fn: FunctionName, action: string, key: string) => allows(full, fn, action, key);
  const put = 's3:PutObject';
  const get = 's3:GetObject';
  const del = 's3:DeleteObject';

  // The lease table is the lease function's; the publisher policy it may only read.
  assert.ok(may('lease', put, '.scvmfs/leases.json') && may('lease', get, '.scvmfs/leases.json'));
  assert.ok(may('lease', get, '.scvmfs/publishers.json') && !may('lease', put, '.scvmfs/publishers.json'));
  for (const key of [...PUBLIC_KEYS, '.scvmfs/txn/abc/changeset.json', '.scvmfs/publish.lock']) {
    assert.ok(!may('lease', put, key) && !may('lease', get, key), `lease stays off ${key}`);
  }

  assert.ok(may('upload-grant', put, 'data/ab/cdef0123456789abcdef0123456789abcdef01'));
  assert.ok(may('upload-grant', get, 'data/ab/cdef0123456789abcdef0123456789abcdef01'));
  // It checks the writer's lease, so it reads the lease table, and writes nothing but objects.
  assert.ok(may('upload-grant', get, '.scvmfs/leases.json') && !may('upload-grant', put, '.scvmfs/leases.json'));
  for (const key of ['.cvmfspublished', '.cvmfswhitelist', ...CONTROL_KEYS.filter((k) => k !== '.scvmfs/leases.json')]) {
    assert.ok(!may('upload-grant', put, key) && !may('upload-grant', get, key), `upload-grant stays off ${key}`);
  }

  for (const key of ['.cvmfspublished', '.cvmfsreflog', ...PUBLIC_KEYS.filter((k) => k.startsWith('data/')), '.scvmfs/txn/abc/state.json', '.scvmfs/leases.json']) {
    assert.ok(may('commit', get, key) && may('commit', put, key), key);
  }
  assert.ok(may('commit', get, '.scvmfs/publishers.json') && !may('commit', put, '.scvmfs/publishers.json'), 'commit only reads the policy');
  for (const key of ['.cvmfswhitelist', '.cvmfs_master_replica', '.scvmfs/publish.lock']) assert.ok(!may('commit', put, key), `commit never writes ${key}`);
  for (const key of [...PUBLIC_KEYS, ...CONTROL_KEYS].filter((k) => !k.startsWith('data/'))) assert.ok(!may('commit', del, key), `commit never deletes ${key}`);
  // A data object whose bytes do not match its name is removed, so that its writer can upload it again.
  assert.ok(may('commit', del, 'data/ab/cdef0123456789abcdef0123456789abcdef01'));
  assert.ok(may('upload-grant', put, '.scvmfs/grants/data/ab/cdef0123456789abcdef0123456789abcdef01'), 'grants are recorded');

  assert.ok(may('abort', del, '.scvmfs/txn/abc/changeset.json') && may('abort', put, '.scvmfs/leases.json'));
  for (const key of ['.scvmfs/leases.json', '.scvmfs/publishers.json', '.scvmfs/publish.lock']) assert.ok(!may('abort', del, key), `abort never deletes ${key}`);
  for (const key of PUBLIC_KEYS) assert.ok(!may('abort', put, key) && !may('abort', del, key), `abort stays off ${key}`);

  assert.ok(may('resign', put, '.cvmfswhitelist'));
  assert.ok(may('resign', get, '.cvmfspublished'));
  // It checks the head against the master key first: whitelist, certificates, the high-water record.
  for (const key of ['.cvmfswhitelist', 'data/74/f7d8e735e0d05b68a809f8a87163257409daa1X', '.scvmfs/high-water.json']) assert.ok(may('resign', get, key), key);
  assert.ok(may('commit', get, '.cvmfswhitelist') && may('commit', put, '.scvmfs/high-water.json'));
  for (const key of ['.cvmfspublished', 'data/ab/cd', ...CONTROL_KEYS]) assert.ok(!may('resign', put, key), key);
  for (const key of ['data/ab/cd', ...CONTROL_KEYS]) assert.ok(!may('resign', get, key), key);
});

test('the whitelist schedule exists only when asked for, and then targets resign', () => {
  plain.resourceCountIs('AWS::Events::Rule', 0);
  const [, rule] = only(full, 'AWS::Events::Rule');
  assert.equal(rule.Properties.ScheduleExpression, 'rate(5 days)');
  const [resign] = functionOf(full, 'resign');
  assert.deepEqual(rule.Properties.Targets[0].Arn, { 'Fn::GetAtt': [resign, 'Arn'] });
  full.hasResourceProperties('AWS::Lambda::Permission', {
    Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', FunctionName: { 'Fn::GetAtt': [resign, 'Arn'] },
  });
  synth({ masterKeyInAccount: true }, 'NoSchedule').resourceCountIs('AWS::Events::Rule', 0);
});

test('a gc schedule invokes gc with its retention; a schedule that keeps nothing named is refused', () => {
  const scheduled = synth({ scheduleGc: { everyDays: 7, keepRevisions: 20, keepSinceDays: 30 } }, 'Gc');
  const [, rule] = only(scheduled, 'AWS::Events::Rule');
  assert.equal(rule.Properties.ScheduleExpression, 'rate(7 days)');
  const [fn] = functionOf(scheduled, 'gc');
  assert.deepEqual(rule.Properties.Targets[0].Arn, { 'Fn::GetAtt': [fn, 'Arn'] });
  assert.deepEqual(JSON.parse(rule.Properties.Targets[0].Input), { trigger: 'schedule', options: { keepRevisions: 20, keepSinceDays: 30 } });
  assert.throws(() => synth({ scheduleGc: { everyDays: 7 } }, 'GcNothing'), /keepRevisions and\/or keepSinceDays/);
});

test('a replica schedule invokes replicate with its source, trust and interval', () => {
  const replica = synth({ replicaOf: { source: 'https://stratum0.example.org/cvmfs/x', publicKeyPem: 'PEM', every: Duration.minutes(30) } }, 'Replica');
  const [, rule] = only(replica, 'AWS::Events::Rule');
  assert.equal(rule.Properties.ScheduleExpression, 'rate(30 minutes)');
  const [fn] = functionOf(replica, 'replicate');
  assert.deepEqual(rule.Properties.Targets[0].Arn, { 'Fn::GetAtt': [fn, 'Arn'] });
  assert.deepEqual(JSON.parse(rule.Properties.Targets[0].Input),
    { source: 'https://stratum0.example.org/cvmfs/x', fqrn: FQRN, publicKeys: ['PEM'], allRevisions: false });
});

test('the outputs tell the owner where to store keys and what to give clients', () => {
  const outputs = full.toJSON().Outputs;
  assert.deepEqual(outputs.ServerUrl.Value,
    { 'Fn::Join': ['', ['http://', { 'Fn::GetAtt': [only(full, 'AWS::CloudFront::Distribution')[0], 'DomainName'] }, '/@fqrn@']] });
  assert.equal(outputs.CommitFunctionName.Value, 'Repo-commit');
  assert.ok(outputs.RepositoryKeySecret && outputs.MasterKeySecret && outputs.StoreUrl && outputs.BucketName);
  assert.equal(plain.toJSON().Outputs.MasterKeySecret, undefined);
});

test('bad settings are refused at synthesis with a message that names them', () => {
  const cases: [Partial<ScvmfsStackProps>, RegExp][] = [
    [{ fqrn: 'Repo/../x' }, /invalid repository name/],
    [{ scheduleResign: true }, /scheduleResign needs masterKeyInAccount/],
    [{ masterKeyInAccount: true, scheduleResign: true, resignEveryDays: 30 }, /resignEveryDays must be .* 1 to 29/],
    [{ functions: { lease: { memoryMB: 64 } } }, /lease: memoryMB must be/],
    [{ functions: { commit: { timeout: Duration.minutes(16) } } }, /commit: timeout must be from 1 s to 15 min/],
    [{ codeDirectory: `${codeDirectory}/missing` }, /does not exist: npm run synth \(or deploy\) builds it/],
  ];
  for (const [props, message] of cases) {
    assert.throws(() => new ScvmfsStack(new App(), 'Bad', { fqrn: FQRN, codeDirectory, ...props }), message);
  }
});
