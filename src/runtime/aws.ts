// Runs our `Handler`s on AWS Lambda: maps Lambda's context onto ours, checks the configuration in the
// environment, turns the repository key secret into the keys directory the handlers already know how to
// read, and hands a `next` step to the next function as an asynchronous invocation.
//
// What crosses the Lambda boundary (docs/aws.md, "The Lambda adapter"):
// - a synchronous answer is `{ result, requests }`: the handler's result and the store requests this
//   invocation made, which the writer adds to its summary;
// - our errors (ScvmfsError, refusals above all) are thrown with their ErrorJSON (kind, code, message)
//   as the error message, so the caller rebuilds them with their code;
// - a chain step hands its successor `{ scvmfsChain: { requests, steps }, event }`, so the chain's cost
//   travels with it, and a chain's last step (or a refusal inside it) is recorded as the chain's outcome
//   in the store, where the writer, which cannot receive an asynchronous answer, reads it at once.
//
// The SDK clients are passed in (or created on first use) so that tests can put a fake at the cloud edge.
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { lambdaSdk, secretsSdk } from './aws-sdk.js';
import { describeError, ScvmfsError, type ErrorJSON } from '../errors.js';
import { txnKeys } from '../format/changeset.js';
import { meteringInvocation } from '../functions/env.js';
import { keyFilePaths } from '../repo/keys-dir.js';
import { meterSum, type MeterSnapshot } from '../store/metered-store.js';
import { openInvocationStore } from '../store/open-store.js';
import type { RepositoryKeys } from '../format/keys.js';
import { FUNCTION_NAMES, type FunctionContext, type FunctionName, type Handler } from '../functions/types.js';
import { addUsage, emptyUsage, functionUsage, type FunctionArchitecture, type FunctionUsage } from '../cost/usage.js';

/** The part of Lambda's Node.js context object we use (Lambda passes `memoryLimitInMB` as a string). */
export interface LambdaContext {
  readonly awsRequestId: string;
  readonly functionName: string;
  readonly memoryLimitInMB: string | number;
  getRemainingTimeInMillis(): number;
}

export type LambdaHandler<E = any, R = unknown> = (event: E, context: LambdaContext) => Promise<LambdaAnswer<R>>;

/** What we ask of a Lambda client: one command. `LambdaClient` fits; so does a test's recorder. */
export interface InvokeClient {
  send(command: InvokeCommand): Promise<{ StatusCode?: number; FunctionError?: string }>;
}

/** What we ask of a Secrets Manager client. `SecretsManagerClient` fits. */
export interface SecretClient {
  send(command: GetSecretValueCommand): Promise<{ SecretString?: string; SecretBinary?: Uint8Array }>;
}

export interface AwsRuntimeOptions {
  lambda?: InvokeClient;
  secrets?: SecretClient;
  /** Where configuration is read and SCVMFS_KEYS is set; the handlers read `process.env`, the default. */
  env?: NodeJS.ProcessEnv;
  /** Parent of the keys directory made from the secrets; default the sandbox's /tmp. */
  scratchDir?: string;
  /**
   * For a function that runs as an asynchronous chain (commit): `key` names where the chain's outcome is
   * recorded for an event, and `ends` says whether a result without `next` ends the chain (a duplicate
   * delivery that lost to its twin answers without ending it). A refusal recorded there ends the step
   * without an error, so Lambda does not retry what would be refused again.
   */
  chainOutcome?: { key: (event: any) => string; ends?: (result: unknown) => boolean };
}

/**
 * What invocations cost beside their store requests, as the adapter measured it: the time from the
 * event's arrival to the handler's answer (secrets read included), rounded up to 1 ms, times the
 * configured memory; and the Secrets Manager calls made. Lambda's own billed duration (the REPORT line,
 * which a synchronous caller can read from the log tail) also covers the adapter's last few ms and any
 * billed INIT phase; the writer prefers it where it has it (runtime/invokers.ts).
 */
export interface InvocationBilling {
  functions: FunctionUsage[];
  secretCalls: number;
}

/** What a synchronous invocation answers. */
export interface LambdaAnswer<R = unknown> {
  result: R | null;
  /** The store requests this invocation made. */
  requests: MeterSnapshot;
  billing?: InvocationBilling;
}

/** The payload of a chain step after the first: the handler's `next` event and what the chain spent so far. */
export interface ChainStepPayload {
  scvmfsChain: { requests: MeterSnapshot; steps: number; billing?: InvocationBilling };
  event: unknown;
}

/** The record of how a chain ended, at `chainOutcomeKey`. */
export type ChainOutcome =
  | { status: 'finished'; result: unknown; requests: MeterSnapshot; steps: number; billing?: InvocationBilling }
  | { status: 'refused'; error: ErrorJSON; requests: MeterSnapshot; steps: number; billing?: InvocationBilling };

/** Two billings together (functions merged by name, architecture and memory). */
export function addBilling(a: InvocationBilling | undefined, b: InvocationBilling | undefined): InvocationBilling {
  const u = addUsage({ ...emptyUsage(), functions: a?.functions ?? [], secretCalls: a?.secretCalls ?? 0 },
    { ...emptyUsage(), functions: b?.functions ?? [], secretCalls: b?.secretCalls ?? 0 });
  return { functions: u.functions, secretCalls: u.secretCalls };
}

function architecture(): FunctionArchitecture {
  return process.arch === 'arm64' ? 'arm64' : 'x86_64';
}

/** Where the commit chain of `txnId` records its outcome (beside its checkpoint). */
export function commitOutcomeKey(txnId: string): string {
  return `${txnKeys(txnId).prefix}outcome.json`;
}

function isChainStep(event: unknown): event is ChainStepPayload {
  const e = event as Partial<ChainStepPayload> | null;
  return typeof e === 'object' && e !== null && typeof e.scvmfsChain === 'object' && e.scvmfsChain !== null && 'event' in e;
}

/** Refusals and usage errors say the input is wrong: repeating the step cannot help. */
function isRefusal(err: unknown): boolean {
  const kind = describeError(err).kind;
  return kind === 'refused' || kind === 'usage';
}

/** Our errors as their JSON (kind, code, message), anything else as an internal error with its message. */
function errorJSON(err: unknown): ErrorJSON {
  if (err instanceof ScvmfsError) return err.toJSON();
  const d = describeError(err);
  return { name: err instanceof Error ? err.name : 'Error', ...d };
}

/** The environment variable naming the deployed Lambda function that runs `fn`: SCVMFS_FN_UPLOAD_GRANT. */
export function functionEnvName(fn: FunctionName): string {
  return `SCVMFS_FN_${fn.toUpperCase().replace(/-/g, '_')}`;
}

export interface AwsConfig {
  store: string;
  fqrn: string;
  /** Secret with the repository key and certificate: `{"key": PEM, "crt": PEM}`. */
  keySecret?: string;
  /** Secret with the master key: `{"masterkey": PEM, "pub"?: PEM}` — only if the owner stored it. */
  masterKeySecret?: string;
  /** Deployed function names this function may chain to, from SCVMFS_FN_<NAME>. */
  next: Partial<Record<FunctionName, string>>;
}

/** Reads and checks the configuration; throws one message naming every missing variable. */
export function configFromEnv(env: NodeJS.ProcessEnv): AwsConfig {
  const missing = ['SCVMFS_STORE', 'SCVMFS_FQRN'].filter((name) => !env[name]);
  if (missing.length > 0) throw new Error(`missing environment: ${missing.join(', ')} (set by the deployment)`);
  const keySecret = env.SCVMFS_KEY_SECRET || undefined;
  const masterKeySecret = env.SCVMFS_MASTER_KEY_SECRET || undefined;
  const next: Partial<Record<FunctionName, string>> = {};
  for (const fn of FUNCTION_NAMES) {
    const name = env[functionEnvName(fn)];
    if (name) next[fn] = name;
  }
  return { store: env.SCVMFS_STORE!, fqrn: env.SCVMFS_FQRN!, keySecret, masterKeySecret, next };
}

export function functionContext(context: LambdaContext): FunctionContext {
  const memory = Number(context.memoryLimitInMB);
  if (!Number.isFinite(memory) || memory <= 0) {
    throw new Error(`Lambda context has no usable memoryLimitInMB: ${JSON.stringify(context.memoryLimitInMB)}`);
  }
  return {
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
    memoryLimitInMB: memory,
    getRemainingTimeInMillis: () => context.getRemainingTimeInMillis(),
  };
}

// Secret JSON fields are the key file suffixes of a keys directory (spec §7.3), so filling a secret is
// "put the files' contents under their suffixes", and reading it back is writing those files.
export const SECRET_FIELDS: Readonly<Record<string, keyof RepositoryKeys>> = {
  masterkey: 'masterKeyPem', pub: 'masterPublicKeyPem', key: 'repositoryKeyPem', crt: 'certificatePem',
};

async function readSecretFields(
  client: SecretClient, secretId: string, required: string[], counted: () => void,
): Promise<Partial<Record<keyof RepositoryKeys, string>>> {
  let text: string | undefined;
  try {
    counted();
    const { GetSecretValueCommand } = await secretsSdk();
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    text = out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString('utf8') : undefined);
  } catch (e) {
    // A secret created by the stack has no value until the owner stores one; say so, not just "not found".
    throw new Error(`cannot read secret ${secretId}: ${(e as Error).message}`
      + ' (has the owner stored the keys in it? see docs/aws.md)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? '');
  } catch {
    throw new Error(`secret ${secretId} is not a JSON object of PEM texts keyed by ${Object.keys(SECRET_FIELDS).join('/')}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`secret ${secretId} is not a JSON object of PEM texts keyed by ${Object.keys(SECRET_FIELDS).join('/')}`);
  }
  const fields: Partial<Record<keyof RepositoryKeys, string>> = {};
  for (const [name, value] of Object.entries(parsed)) {
    const field = SECRET_FIELDS[name];
    if (field === undefined) throw new Error(`secret ${secretId}: unknown field '${name}'`);
    if (typeof value !== 'string' || !value.includes('-----BEGIN ')) {
      throw new Error(`secret ${secretId}: field '${name}' is not a PEM text`);
    }
    fields[field] = value;
  }
  const absent = required.filter((name) => fields[SECRET_FIELDS[name]!] === undefined);
  if (absent.length > 0) throw new Error(`secret ${secretId} lacks ${absent.map((n) => `'${n}'`).join(', ')}`);
  return fields;
}

/** Writes the secrets as `<dir>/<fqrn>.<suffix>` files, private to the sandbox's user. */
async function materializeKeys(client: SecretClient, config: AwsConfig, scratchDir: string, counted: () => void): Promise<string> {
  const fields: Partial<Record<keyof RepositoryKeys, string>> = {};
  if (config.keySecret) Object.assign(fields, await readSecretFields(client, config.keySecret, ['key', 'crt'], counted));
  if (config.masterKeySecret) {
    Object.assign(fields, await readSecretFields(client, config.masterKeySecret, ['masterkey'], counted));
  }
  const dir = await mkdtemp(join(scratchDir, 'scvmfs-keys-'));
  await chmod(dir, 0o700);
  const paths = keyFilePaths(dir, config.fqrn);
  for (const [field, text] of Object.entries(fields) as [keyof RepositoryKeys, string][]) {
    await writeFile(paths[field], text, { mode: 0o600 });
  }
  return dir;
}

/**
 * Wraps `handler` (the function `fn`) as a Lambda handler. A synchronous caller receives the handler's
 * `result` (null when it has none) and the invocation's store requests; a `next` step is started before
 * returning, because Lambda freezes the sandbox as soon as the handler's promise settles.
 */
export function lambdaHandler<E, R>(fn: FunctionName, handler: Handler<E, R>, options: AwsRuntimeOptions = {}):
  LambdaHandler<E, R> {
  const env = options.env ?? process.env;
  let lambda = options.lambda;
  let secrets = options.secrets;
  // Cached per warm sandbox (this closure lives as long as the loaded entry module). Safe because:
  // - the secret ids come from the function's configuration, and any configuration change makes Lambda
  //   start fresh sandboxes, so a cache can never outlive the ids it was read for;
  // - key and certificate come from one secret in one read, so the cached pair always belongs together,
  //   and every manifest names the certificate it was signed with;
  // - after a key rotation an old sandbox keeps signing with the previous pair, which clients accept for
  //   as long as the whitelist still lists the previous certificate (docs/aws.md: rotate by listing both,
  //   updating the secret, then touching the functions' configuration to retire old sandboxes).
  // A failed read is not cached, so the next invocation tries again.
  let keysDir: Promise<string> | undefined;
  let keysFor: string | undefined;
  // Lambda runs one invocation at a time per sandbox, so a count per sandbox splits cleanly per invocation.
  let secretCallsMade = 0;

  return async (payload, lambdaContext) => {
    const started = performance.now();
    const secretCallsBefore = secretCallsMade;
    const chain: ChainStepPayload['scvmfsChain'] = isChainStep(payload) ? payload.scvmfsChain : { requests: meterSum([]), steps: 0 };
    const event = (isChainStep(payload) ? payload.event : payload) as E;
    const context = functionContext(lambdaContext);
    const config = configFromEnv(env);
    if (config.keySecret || config.masterKeySecret) {
      const wanted = `${config.keySecret ?? ''}\n${config.masterKeySecret ?? ''}\n${config.fqrn}`;
      if (keysDir === undefined || keysFor !== wanted) {
        secrets ??= new (await secretsSdk()).SecretsManagerClient({});
        keysFor = wanted;
        keysDir = materializeKeys(secrets, config, options.scratchDir ?? tmpdir(), () => { secretCallsMade++; });
        keysDir.catch(() => { if (keysFor === wanted) keysDir = undefined; });
      }
      // Handlers load keys from a keys directory in both runtimes; on AWS this runtime owns SCVMFS_KEYS.
      env.SCVMFS_KEYS = await keysDir;
    }

    const outcome = await meteringInvocation(() => handler(event, context));
    const billing: InvocationBilling = {
      functions: [functionUsage(fn, [performance.now() - started], context.memoryLimitInMB, architecture())],
      secretCalls: secretCallsMade - secretCallsBefore,
    };
    const spent = { requests: meterSum([chain.requests, outcome.requests]), steps: chain.steps + 1, billing: addBilling(chain.billing, billing) };
    const outcomeKey = options.chainOutcome ? chainOutcomeKeyOf(options.chainOutcome.key, event) : undefined;
    if (!outcome.ok) {
      const refused = isRefusal(outcome.error);
      if (refused && outcomeKey !== undefined) {
        await recordOutcome(config.store, env, fn, outcomeKey, { status: 'refused', error: errorJSON(outcome.error), ...spent });
        return { result: null, requests: outcome.requests, billing };
      }
      // The message carries kind and code across Lambda's error payload ({errorType, errorMessage}).
      if (refused || outcome.error instanceof ScvmfsError) {
        throw Object.assign(new Error(JSON.stringify(errorJSON(outcome.error))), { name: (outcome.error as Error)?.name ?? 'Error' });
      }
      throw outcome.error;
    }
    const answer = outcome.value;

    if (answer.next !== undefined) {
      const { fn: nextFn, event: nextEvent } = answer.next;
      if (!(FUNCTION_NAMES as readonly string[]).includes(nextFn)) {
        throw new Error(`${fn} returned an unknown next function ${JSON.stringify(nextFn)}`);
      }
      const target = config.next[nextFn];
      if (target === undefined) {
        throw new Error(`${fn} wants to continue with ${nextFn}, but ${functionEnvName(nextFn)} is not set:`
          + ' this deployment does not let it chain there');
      }
      const sdk = await lambdaSdk();
      lambda ??= new sdk.LambdaClient({});
      const out = await lambda.send(new sdk.InvokeCommand({
        FunctionName: target,
        InvocationType: 'Event',
        Payload: Buffer.from(JSON.stringify({ scvmfsChain: spent, event: nextEvent ?? null } satisfies ChainStepPayload)),
      }));
      // An accepted asynchronous invocation answers 202; anything else means the chain stopped here, and
      // throwing makes Lambda retry this (idempotent) step rather than lose the rest of the chain.
      if (out.StatusCode !== 202 || out.FunctionError) {
        throw new Error(`asynchronous invocation of ${target} (${nextFn}) was not accepted:`
          + ` status ${out.StatusCode ?? 'none'}${out.FunctionError ? `, ${out.FunctionError}` : ''}`);
      }
    } else if (outcomeKey !== undefined && (options.chainOutcome!.ends?.(answer.result) ?? true)) {
      await recordOutcome(config.store, env, fn, outcomeKey, { status: 'finished', result: answer.result ?? null, ...spent });
    }
    return { result: answer.result ?? null, requests: outcome.requests, billing };
  };
}

function chainOutcomeKeyOf(keyOf: (event: any) => string, event: unknown): string | undefined {
  try {
    return keyOf(event);
  } catch {
    // An event that names no valid transaction has no outcome to record; the handler refuses it anyway.
    return undefined;
  }
}

/** Writes the chain's outcome; its own put is counted in the requests it records. */
async function recordOutcome(spec: string, env: NodeJS.ProcessEnv, fn: FunctionName, key: string, outcome: ChainOutcome): Promise<void> {
  const { store } = openInvocationStore(spec, { recordTo: env.SCVMFS_STORE_RECORD || undefined, who: fn });
  const requests = { ...outcome.requests, put: outcome.requests.put + 1 };
  await store.put(key, Buffer.from(JSON.stringify({ ...outcome, requests })));
}
