// One repository on AWS: a bucket (public repository part, private control part), a CloudFront
// distribution with the cache rules of spec §11, the functions with least-privilege roles, the key
// secrets, and the whitelist re-signing schedule. docs/aws.md says what each piece is for and what it costs.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { FUNCTION_NAMES, type FunctionName } from '../src/functions/types.js';
import { functionEnvName } from '../src/runtime/aws.js';
import { functionOutputName, STACK_OUTPUT } from '../src/runtime/stack-outputs.js';
import { LEASES_KEY } from '../src/repo/leases.js';
import { POLICY_KEY } from '../src/repo/publisher-policy.js';
import { HIGH_WATER_KEY } from '../src/repo/high-water.js';
import { GC_PREFIX } from '../src/functions/gc.js';
import { FENCE_KEY } from '../src/repo/gc-fence.js';
import { LOCK_KEY } from '../src/repo/publish-lock.js';
import { TXN_PREFIX } from '../src/format/changeset.js';
import { GRANTS_PREFIX, REPORTS_PREFIX } from '../src/repo/object-verification.js';
import { CHECK_PREFIX } from '../src/repo/check-parts.js';

/** Where scripts/package-lambda.sh puts dist/src + production node_modules. */
export const DEFAULT_CODE_DIRECTORY = fileURLToPath(new URL('../../build/lambda', import.meta.url));

/** spec §11.1: `.cvmfs*` files 61 s ("60 s and below is not cached at all by Squid"), CAS objects 3 days. */
export const MANIFEST_TTL = Duration.seconds(61);
export const DATA_TTL = Duration.days(3);

/**
 * What each function may do to objects, as key patterns under the repository prefix `<fqrn>/`. This table
 * is the whole S3 permission model; widen a row here, nowhere else. test/iam-evaluation.test.ts records
 * every store request the functions make and checks it against the roles, both ways: each request is
 * allowed, and each pattern here is used by some request (or justified there).
 */
export interface ObjectAccess {
  read?: string[];
  write?: string[];
  delete?: string[];
  /**
   * ListBucket on the bucket: S3 answers a missing key with 404 only to a caller that may list (403
   * otherwise), and the store reads 404 as "not there"; abort also lists its transaction's objects.
   * It reveals key names, never content.
   */
  list?: boolean;
}
const TXN_OBJECTS = `${TXN_PREFIX}*`;
const GRANTS = `${GRANTS_PREFIX}*`;
const BAD_OBJECTS = `${REPORTS_PREFIX}*`;
const GC_OBJECTS = `${GC_PREFIX}*`;
const LOCK_OBJECT = LOCK_KEY;
const REPLICATE_OBJECTS = '.scvmfs/replicate/*';
const CHECK_OBJECTS = `${CHECK_PREFIX}*`;
export const FUNCTION_ACCESS: Record<FunctionName, ObjectAccess> = {
  // Records, renews and releases leases in the lease table; reads the publisher policy to check who signed.
  lease: { read: [LEASES_KEY, POLICY_KEY], write: [LEASES_KEY], list: true },
  // Checks the lease, answers "already there" (HEAD) or a pre-signed PUT; the URL carries this role's
  // rights, so PutObject on data/* is exactly what a writer can be granted through it. It records each
  // grant under grants/ (who may have uploaded a key, for the commit's report of a bad object).
  'upload-grant': { read: ['data/*', LEASES_KEY, GRANTS], write: ['data/*', GRANTS], list: true },
  // Reads changesets, the policy, the lease, grant records and catalogs, the gc fence, and the whitelist
  // and high-water record to check the head against the master key; writes catalogs and objects, manifest, reflog, the
  // high-water record, its checkpoint, bad-object reports and the lease table (it releases the lease). It
  // deletes only data objects whose bytes do not match their name (so that their writer can upload the
  // right bytes with a create-only grant) and the grant records of objects it checked.
  commit: {
    read: ['.cvmfspublished', '.cvmfswhitelist', '.cvmfsreflog', 'data/*', TXN_OBJECTS, LEASES_KEY, POLICY_KEY, GRANTS, HIGH_WATER_KEY, FENCE_KEY],
    write: ['.cvmfspublished', '.cvmfsreflog', 'data/*', TXN_OBJECTS, LEASES_KEY, BAD_OBJECTS, HIGH_WATER_KEY],
    delete: ['data/*', GRANTS],
    list: true,
  },
  // Marks a transaction aborted, deletes its changeset and releases its lease.
  abort: { read: [TXN_OBJECTS, LEASES_KEY], write: [TXN_OBJECTS, LEASES_KEY], delete: [TXN_OBJECTS], list: true },
  // Checks the head against the master key before re-signing: manifest, whitelist, certificate objects
  // (data/*X only) and the high-water record, which may be absent (hence list); writes the whitelist.
  resign: { read: ['.cvmfspublished', '.cvmfswhitelist', 'data/*X', HIGH_WATER_KEY], write: ['.cvmfswhitelist'], list: true },
  // Garbage collection: reads everything a commit reads; publishes its revision (history and reflog
  // without the dropped revisions) under the publish lock, keeps its own state and the gc fence under
  // gc/, and deletes data objects, finished transactions' records and its own state, nothing else.
  gc: {
    read: ['.cvmfspublished', '.cvmfswhitelist', '.cvmfsreflog', 'data/*', TXN_OBJECTS, GC_OBJECTS, LOCK_OBJECT, HIGH_WATER_KEY],
    write: ['.cvmfspublished', '.cvmfsreflog', 'data/*', GC_OBJECTS, LOCK_OBJECT, HIGH_WATER_KEY],
    delete: ['data/*', TXN_OBJECTS, GC_OBJECTS, LOCK_OBJECT],
    list: true,
  },
  // Makes this bucket's repository a replica (stratum 1) of a source it reads over HTTP(S) (the source's
  // public part, so no grant here): HEADs and writes objects, writes the manifest ensemble, reflog and
  // stratum 1 markers last, and keeps its chain state and walk log under .scvmfs/replicate/.
  replicate: {
    read: ['.cvmfspublished', '.cvmfswhitelist', '.cvmfsreflog', '.cvmfs_status.json', 'data/*', REPLICATE_OBJECTS],
    write: ['.cvmfspublished', '.cvmfswhitelist', '.cvmfswhitelist.pkcs7', '.cvmfsreflog', '.cvmfs_status.json',
      '.cvmfs_last_snapshot', '.cvmfs_is_snapshotting', 'data/*', REPLICATE_OBJECTS],
    delete: ['.cvmfs_is_snapshotting', REPLICATE_OBJECTS],
    list: true,
  },
  // Reads the head, the whitelist, the reflog and every object, lists data/ (existence without a HEAD per
  // object), and writes and deletes only its own state, walk log and findings under .scvmfs/check/.
  check: {
    read: ['.cvmfspublished', '.cvmfswhitelist', '.cvmfsreflog', 'data/*', CHECK_OBJECTS],
    write: [CHECK_OBJECTS], delete: [CHECK_OBJECTS], list: true,
  },
};

/** Which function may start which as its next step (asynchronous invoke). Commit continues in slices. */
export const FUNCTION_CHAINS: Record<FunctionName, FunctionName[]> = {
  lease: [], 'upload-grant': [], commit: ['commit'], abort: [], resign: [], gc: ['gc'], replicate: ['replicate'], check: ['check'],
};

export interface FunctionSettings {
  memoryMB: number;
  timeout: Duration;
}

// Small, short functions; commit gets the memory for SQLite catalogs and the longest slice.
export const DEFAULT_FUNCTION_SETTINGS: Record<FunctionName, FunctionSettings> = {
  lease: { memoryMB: 256, timeout: Duration.seconds(10) },
  'upload-grant': { memoryMB: 256, timeout: Duration.seconds(30) },
  commit: { memoryMB: 1024, timeout: Duration.minutes(5) },
  abort: { memoryMB: 256, timeout: Duration.minutes(1) },
  resign: { memoryMB: 256, timeout: Duration.seconds(30) },
  // The walk's state is a scratch SQLite file: 128 MB suffices at any size (docs/performance.md).
  gc: { memoryMB: 256, timeout: Duration.minutes(15) },
  replicate: { memoryMB: 1024, timeout: Duration.minutes(5) },
  // A check slice hands over before half its time: 128 MB holds a slice whatever the repository's size.
  check: { memoryMB: 128, timeout: Duration.minutes(5) },
};

/** A schedule that keeps this stack's bucket a replica of `source` (one schedule per replica). */
export interface ReplicaSchedule {
  /** http(s) URL of the source repository (stratum 0 or 1). */
  source: string;
  /** The source's master public key (PEM): its whitelist must be signed with it. */
  publicKeyPem: string;
  /** Time between runs; default 15 minutes. */
  every?: Duration;
  allRevisions?: boolean;
}

/** The event the schedule sends to resign. */
export const RESIGN_SCHEDULE_EVENT = { trigger: 'schedule' };

export interface ScvmfsStackProps extends StackProps {
  /** Repository name; objects live under `<fqrn>/` (as cvmfs_server's S3 uploader lays them out). */
  fqrn: string;
  /** A fixed bucket name; default a generated one. */
  bucketName?: string;
  /** Per-function memory and timeout, over the defaults above. */
  functions?: Partial<Record<FunctionName, Partial<FunctionSettings>>>;
  /**
   * Node.js major version of the functions. Default 20 (the project's minimum); Lambda deprecates 20 in
   * 2026, and 22 or 24 run the same code. The package's native addon must be built by the same major
   * (infra/check-addon.ts refuses it otherwise); the app's `lambdaRuntime` context chooses both.
   */
  nodeVersion?: 20 | 22 | 24;
  /** Must match the machine that built the native modules in the code directory. Default x86_64. */
  architecture?: 'x86_64' | 'arm64';
  /** dist/src + production node_modules; default `build/lambda` (scripts/package-lambda.sh). */
  codeDirectory?: string;
  /**
   * The owner keeps the master key in this account (a second secret, readable by resign only). Without
   * it the master key stays with the owner and the whitelist is re-signed off-line with `scvmfs resign`.
   */
  masterKeyInAccount?: boolean;
  /** Run gc on a schedule with this retention (days between runs, and what to keep). Default none. */
  scheduleGc?: { everyDays: number; keepRevisions?: number; keepSinceDays?: number };
  /** Re-sign the whitelist on a schedule; needs `masterKeyInAccount`. Default false. */
  scheduleResign?: boolean;
  /** Days between scheduled re-signings (1–29: a whitelist is valid 30 days). Default 7. */
  resignEveryDays?: number;
  /** CloudFront edge locations paid for. Default PRICE_CLASS_100 (North America and Europe). */
  priceClass?: cloudfront.PriceClass;
  /** Make this bucket a stratum 1 of another repository of the same name, replicated on a schedule. */
  replicaOf?: ReplicaSchedule;
  /** How long function logs are kept. Default one month. */
  logRetention?: logs.RetentionDays;
}

const NODE_RUNTIMES = { 20: lambda.Runtime.NODEJS_20_X, 22: lambda.Runtime.NODEJS_22_X, 24: lambda.Runtime.NODEJS_24_X };

const FQRN_PATTERN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/;

export class ScvmfsStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  readonly repositoryKey: secretsmanager.Secret;
  readonly masterKey?: secretsmanager.Secret;
  readonly functions: Record<FunctionName, lambda.Function>;

  constructor(scope: Construct, id: string, props: ScvmfsStackProps) {
    super(scope, id, props);
    const { fqrn } = props;
    if (!FQRN_PATTERN.test(fqrn)) {
      throw new Error(`invalid repository name ${JSON.stringify(fqrn)}: expected a lower-case DNS name like repo.example.org`);
    }
    if (props.scheduleResign && !props.masterKeyInAccount) {
      throw new Error('scheduleResign needs masterKeyInAccount: the schedule can only re-sign with a master key'
        + ' stored in this account; otherwise re-sign off-line with `scvmfs resign`');
    }
    const resignEveryDays = props.resignEveryDays ?? 7;
    if (!Number.isInteger(resignEveryDays) || resignEveryDays < 1 || resignEveryDays > 29) {
      throw new Error(`resignEveryDays must be a whole number of days from 1 to 29, got ${resignEveryDays}`);
    }
    if (props.nodeVersion !== undefined && !(props.nodeVersion in NODE_RUNTIMES)) {
      throw new Error(`nodeVersion must be 20, 22 or 24, got ${props.nodeVersion}`);
    }
    const codeDirectory = props.codeDirectory ?? DEFAULT_CODE_DIRECTORY;
    if (!existsSync(codeDirectory)) {
      throw new Error(`function code directory ${codeDirectory} does not exist: npm run synth (or deploy) builds it,`
        + ' or build it alone with scripts/package-lambda.sh');
    }

    this.bucket = new s3.Bucket(this, 'Repository', {
      bucketName: props.bucketName,
      // ACLs off: access is decided by the policy below alone, so no object can be made public by an upload
      // that sends `x-amz-acl: public-read` (it is refused), and the control area stays private.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      blockPublicAccess: new s3.BlockPublicAccess({
        blockPublicAcls: true, ignorePublicAcls: true, blockPublicPolicy: false, restrictPublicBuckets: false,
      }),
      encryption: s3.BucketEncryption.S3_MANAGED,
      // Stock clients and proxies read over plain HTTP (through CloudFront or directly), so no TLS-only rule.
      enforceSSL: false,
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      // The repository outlives the stack: deleting the stack must not delete the data.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Anonymous reads of exactly what the stock client fetches (spec §1.1); the control area
    // `<fqrn>/.scvmfs/` matches neither pattern.
    this.bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'PublicRepositoryRead',
      principals: [new iam.AnyPrincipal()],
      actions: ['s3:GetObject'],
      resources: [this.bucket.arnForObjects(`${fqrn}/.cvmfs*`), this.bucket.arnForObjects(`${fqrn}/data/*`)],
    }));

    this.distribution = this.cdn(fqrn, props.priceClass ?? cloudfront.PriceClass.PRICE_CLASS_100);

    this.repositoryKey = this.emptySecret('RepositoryKey', `scvmfs/${fqrn}/repository-key`,
      `Repository key and certificate of ${fqrn}: JSON {"key": PEM, "crt": PEM} (docs/aws.md)`);
    if (props.masterKeyInAccount) {
      this.masterKey = this.emptySecret('MasterKey', `scvmfs/${fqrn}/master-key`,
        `Master key of ${fqrn}, for scheduled whitelist re-signing: JSON {"masterkey": PEM} (docs/aws.md)`);
    }

    const code = lambda.Code.fromAsset(codeDirectory);
    const architecture = props.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;
    const names = Object.fromEntries(FUNCTION_NAMES.map((fn) => [fn, `${this.stackName}-${fn}`])) as
      Record<FunctionName, string>;
    const functions: Partial<Record<FunctionName, lambda.Function>> = {};
    for (const fn of FUNCTION_NAMES) {
      const settings = { ...DEFAULT_FUNCTION_SETTINGS[fn], ...props.functions?.[fn] };
      checkSettings(fn, settings);
      const environment: Record<string, string> = {
        SCVMFS_STORE: `s3://${this.bucket.bucketName}/${fqrn}`,
        SCVMFS_FQRN: fqrn,
        NODE_OPTIONS: '--enable-source-maps',
      };
      if (readsRepositoryKey(fn, this.masterKey !== undefined)) environment.SCVMFS_KEY_SECRET = this.repositoryKey.secretArn;
      if (fn === 'resign' && this.masterKey) environment.SCVMFS_MASTER_KEY_SECRET = this.masterKey.secretArn;
      for (const next of FUNCTION_CHAINS[fn]) environment[functionEnvName(next)] = names[next];

      const logGroup = new logs.LogGroup(this, `${pascal(fn)}Logs`, {
        logGroupName: `/aws/lambda/${names[fn]}`,
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const f = new lambda.Function(this, `${pascal(fn)}Function`, {
        functionName: names[fn],
        description: `scvmfs ${fn} for ${fqrn}`,
        runtime: NODE_RUNTIMES[props.nodeVersion ?? 20],
        architecture,
        code,
        handler: `dist/src/runtime/aws-entry/${fn}.handler`,
        memorySize: settings.memoryMB,
        timeout: settings.timeout,
        environment,
        logGroup,
      });
      this.grantObjects(f, fqrn, FUNCTION_ACCESS[fn]);
      // Names come from the stack, not from the function resources, so that commit can be allowed to invoke
      // itself without a reference cycle.
      const chainTargets = FUNCTION_CHAINS[fn].map((next) => this.formatArn({
        service: 'lambda', resource: 'function', resourceName: names[next], arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }));
      if (chainTargets.length > 0) {
        f.addToRolePolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: chainTargets }));
      }
      functions[fn] = f;
    }
    this.functions = functions as Record<FunctionName, lambda.Function>;
    for (const fn of FUNCTION_NAMES) {
      if (readsRepositoryKey(fn, this.masterKey !== undefined)) this.repositoryKey.grantRead(this.functions[fn]);
    }
    if (this.masterKey) this.masterKey.grantRead(this.functions.resign);

    // What the owner needs after `cdk deploy`, under the names src/runtime/stack-outputs.ts reads back
    // (`npm run deploy` saves them for `--stack <name>`).
    const outputs: [string, string, string?][] = [
      [STACK_OUTPUT.repository, fqrn],
      [STACK_OUTPUT.bucketName, this.bucket.bucketName],
      [STACK_OUTPUT.storeUrl, `s3://${this.bucket.bucketName}/${fqrn}?region=${this.region}`, '--store of every scvmfs command'],
      [STACK_OUTPUT.serverUrl, `http://${this.distribution.distributionDomainName}/@fqrn@`, 'CVMFS_SERVER_URL for clients'],
      [STACK_OUTPUT.region, this.region],
      [STACK_OUTPUT.repositoryKeySecret, this.repositoryKey.secretName],
      ...(this.masterKey ? [[STACK_OUTPUT.masterKeySecret, this.masterKey.secretName] as [string, string]] : []),
      ...FUNCTION_NAMES.map((fn) => [functionOutputName(fn), names[fn]] as [string, string]),
    ];
    for (const [id, value, description] of outputs) new CfnOutput(this, id, { value, description });

    if (props.scheduleGc) {
      const g = props.scheduleGc;
      if (!Number.isInteger(g.everyDays) || g.everyDays < 1) throw new Error(`scheduleGc.everyDays must be a whole number of days ≥ 1, got ${g.everyDays}`);
      if (g.keepRevisions === undefined && g.keepSinceDays === undefined) throw new Error('scheduleGc needs keepRevisions and/or keepSinceDays');
      new events.Rule(this, 'GcSchedule', {
        description: `Garbage-collect ${fqrn} every ${g.everyDays} days`,
        schedule: events.Schedule.rate(Duration.days(g.everyDays)),
        targets: [new targets.LambdaFunction(this.functions.gc, {
          event: events.RuleTargetInput.fromObject({ trigger: 'schedule', options: { keepRevisions: g.keepRevisions, keepSinceDays: g.keepSinceDays } }),
        })],
      });
    }
    if (props.replicaOf) {
      const r = props.replicaOf;
      new events.Rule(this, 'ReplicateSchedule', {
        description: `Replicate ${fqrn} from ${r.source}`,
        schedule: events.Schedule.rate(r.every ?? Duration.minutes(15)),
        targets: [new targets.LambdaFunction(this.functions.replicate, {
          event: events.RuleTargetInput.fromObject({ source: r.source, fqrn, publicKeys: [r.publicKeyPem], allRevisions: r.allRevisions === true }),
        })],
      });
    }
    if (props.scheduleResign) {
      new events.Rule(this, 'ResignSchedule', {
        description: `Re-sign the whitelist of ${fqrn} every ${resignEveryDays} days (valid 30)`,
        schedule: events.Schedule.rate(Duration.days(resignEveryDays)),
        targets: [new targets.LambdaFunction(this.functions.resign, {
          event: events.RuleTargetInput.fromObject(RESIGN_SCHEDULE_EVENT),
          retryAttempts: 2,
        })],
      });
    }
  }

  /**
   * The origin is the bucket read anonymously, so CloudFront serves exactly what the bucket policy makes
   * public. (An origin access control would let CloudFront read the whole bucket, control area included.)
   */
  private cdn(fqrn: string, priceClass: cloudfront.PriceClass): cloudfront.Distribution {
    const origin = origins.S3BucketOrigin.withBucketDefaults(this.bucket);
    const policy = (id: string, ttl: Duration, comment: string) => new cloudfront.CachePolicy(this, id, {
      comment,
      defaultTtl: ttl, minTtl: ttl, maxTtl: ttl,
      // Nothing from the request varies the answer: one cache entry per object, whatever the client sends.
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      // The client checks the stored bytes' hash: no Content-Encoding may be added (spec §11.2).
      enableAcceptEncodingGzip: false,
      enableAcceptEncodingBrotli: false,
    });
    const manifest = policy('ManifestCachePolicy', MANIFEST_TTL, `scvmfs ${fqrn}: .cvmfs* files, 61 s`);
    const data = policy('DataCachePolicy', DATA_TTL, `scvmfs ${fqrn}: content-addressed objects, 3 days`);
    const behavior = (cachePolicy: cloudfront.ICachePolicy): cloudfront.BehaviorOptions => ({
      origin,
      cachePolicy,
      compress: false,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
      cachedMethods: cloudfront.CachedMethods.CACHE_GET_HEAD,
      // Clients and site proxies (Squid) mostly speak plain HTTP.
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.ALLOW_ALL,
    });
    return new cloudfront.Distribution(this, 'Cdn', {
      comment: `scvmfs ${fqrn}`,
      // The stock client speaks HTTP/1.1 only (spec §11.2); nothing newer is offered.
      httpVersion: cloudfront.HttpVersion.HTTP1_1,
      priceClass,
      // Anything that is neither public file nor object gets the short lifetime (mostly errors).
      defaultBehavior: behavior(manifest),
      additionalBehaviors: {
        [`${fqrn}/.cvmfs*`]: behavior(manifest),
        [`${fqrn}/data/*`]: behavior(data),
      },
    });
  }

  /** A secret with no value: the owner stores the keys (docs/aws.md), and redeploying never touches them. */
  private emptySecret(id: string, secretName: string, description: string): secretsmanager.Secret {
    const secret = new secretsmanager.Secret(this, id, { secretName, description, removalPolicy: RemovalPolicy.RETAIN });
    // CDK generates a random value when none is given; a repository key is not a password, so store none.
    (secret.node.defaultChild as secretsmanager.CfnSecret).addPropertyDeletionOverride('GenerateSecretString');
    return secret;
  }

  private grantObjects(f: lambda.Function, fqrn: string, access: ObjectAccess): void {
    const objects = (patterns: string[] | undefined) => (patterns ?? []).map((p) => this.bucket.arnForObjects(`${fqrn}/${p}`));
    const grants: [string, string[]][] = [
      ['s3:GetObject', objects(access.read)],
      ['s3:PutObject', objects(access.write)],
      ['s3:DeleteObject', objects(access.delete)],
    ];
    for (const [action, resources] of grants) {
      if (resources.length > 0) f.addToRolePolicy(new iam.PolicyStatement({ actions: [action], resources }));
    }
    // Without ListBucket, S3 answers 403 instead of 404 for a missing key, and every "is it there?" in the
    // store (lease lookups, existence checks) would fail (ObjectAccess.list).
    if (access.list) f.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }));
  }
}

/**
 * Commit signs manifests. Resign, when the master key is in the account, gets the repository secret too:
 * re-signing needs the certificate, the keys directory it loads is then complete as on a laptop, and a
 * holder of the master key can already make any key trusted, so the repository key adds no power.
 */
function readsRepositoryKey(fn: FunctionName, masterKeyInAccount: boolean): boolean {
  return fn === 'commit' || fn === 'gc' || (fn === 'resign' && masterKeyInAccount);
}

function checkSettings(fn: FunctionName, s: FunctionSettings): void {
  if (!Number.isInteger(s.memoryMB) || s.memoryMB < 128 || s.memoryMB > 10240) {
    throw new Error(`${fn}: memoryMB must be a whole number from 128 to 10240, got ${s.memoryMB}`);
  }
  const seconds = s.timeout.toSeconds();
  if (seconds < 1 || seconds > 900) throw new Error(`${fn}: timeout must be from 1 s to 15 min, got ${seconds} s`);
}

function pascal(fn: string): string {
  return fn.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}
