// A deployed stack's outputs (infra/stack.ts), read once from `cdk deploy --outputs-file` and saved under
// the user's configuration directory, so that `--stack <name>` is all a command needs to find the
// functions, the store, the secrets and the CloudFront URL: nobody copies function names by hand.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { RefusedError } from '../errors.js';
import { FUNCTION_NAMES, type FunctionName } from '../functions/types.js';

/** Output names the stack declares; the function names follow `functionOutputName`. */
export const STACK_OUTPUT = {
  repository: 'RepositoryName',
  bucketName: 'BucketName',
  storeUrl: 'StoreUrl',
  serverUrl: 'ServerUrl',
  region: 'Region',
  repositoryKeySecret: 'RepositoryKeySecret',
  masterKeySecret: 'MasterKeySecret',
} as const;

/** `upload-grant` → `UploadGrantFunctionName`. */
export function functionOutputName(fn: FunctionName): string {
  return `${fn.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')}FunctionName`;
}

export interface StackOutputs {
  stackName: string;
  fqrn: string;
  bucketName: string;
  /** `s3://<bucket>/<fqrn>`: the `--store` of every command. */
  storeUrl: string;
  /** The clients' CVMFS_SERVER_URL: `http://<distribution>/@fqrn@`. */
  serverUrl: string;
  /** Where the functions and secrets are: the region of every AWS call. */
  region: string;
  repositoryKeySecret: string;
  /** Only with `masterKeyInAccount`. */
  masterKeySecret?: string;
  /** A stack deployed before a function existed has no output for it. */
  functionNames: Partial<Record<FunctionName, string>>;
}

// CloudFormation: a letter, then letters, digits and hyphens, at most 128; also keeps the saved file's
// name inside its directory.
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

function checkStackName(name: string): void {
  if (!STACK_NAME.test(name)) throw new RefusedError('bad-stack-name', `not a CloudFormation stack name: ${JSON.stringify(name)}`);
}

/**
 * The outputs of one stack from a `cdk deploy --outputs-file` JSON ({ "<stack>": { "<output>": value } }).
 * `stackName` picks one when the file holds several.
 */
export function stackOutputsFromCdk(json: unknown, stackName?: string): StackOutputs {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new RefusedError('bad-stack-outputs', 'not a cdk outputs file: expected {"<stack name>": {"<output>": "<value>"}}');
  }
  const stacks = json as Record<string, unknown>;
  const names = Object.keys(stacks);
  const name = stackName ?? (names.length === 1 ? names[0]! : undefined);
  if (name === undefined) {
    throw new RefusedError('bad-stack-outputs', `the outputs file holds ${names.length === 0 ? 'no stack' : `stacks ${names.join(', ')}`}: name one with --stack`);
  }
  checkStackName(name);
  const values = stacks[name];
  if (typeof values !== 'object' || values === null) {
    throw new RefusedError('bad-stack-outputs', `the outputs file has no stack ${name} (it has ${names.join(', ') || 'none'})`);
  }
  const out = values as Record<string, unknown>;
  const text = (key: string): string | undefined => (typeof out[key] === 'string' && out[key] !== '' ? out[key] as string : undefined);
  const required = [STACK_OUTPUT.repository, STACK_OUTPUT.bucketName, STACK_OUTPUT.storeUrl, STACK_OUTPUT.serverUrl, STACK_OUTPUT.region, STACK_OUTPUT.repositoryKeySecret];
  const missing = required.filter((k) => text(k) === undefined);
  if (missing.length > 0) {
    throw new RefusedError('bad-stack-outputs', `stack ${name} has no output ${missing.join(', ')}: is it an scvmfs stack (infra/stack.ts), deployed from this version?`);
  }
  const functionNames: Partial<Record<FunctionName, string>> = {};
  for (const fn of FUNCTION_NAMES) {
    const value = text(functionOutputName(fn));
    if (value !== undefined) functionNames[fn] = value;
  }
  return {
    stackName: name,
    fqrn: text(STACK_OUTPUT.repository)!,
    bucketName: text(STACK_OUTPUT.bucketName)!,
    storeUrl: text(STACK_OUTPUT.storeUrl)!,
    serverUrl: text(STACK_OUTPUT.serverUrl)!,
    region: text(STACK_OUTPUT.region)!,
    repositoryKeySecret: text(STACK_OUTPUT.repositoryKeySecret)!,
    ...(text(STACK_OUTPUT.masterKeySecret) ? { masterKeySecret: text(STACK_OUTPUT.masterKeySecret) } : {}),
    functionNames,
  };
}

/** Where saved outputs live: `$XDG_CONFIG_HOME/scvmfs/stacks`, by default `~/.config/scvmfs/stacks`. */
export function stacksDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'scvmfs', 'stacks');
}

export async function saveStackOutputs(outputs: StackOutputs, dir = stacksDir()): Promise<string> {
  checkStackName(outputs.stackName);
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${outputs.stackName}.json`);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(outputs, null, 2)}\n`);
  await rename(temp, path);
  return path;
}

export async function loadStackOutputs(stackName: string, dir = stacksDir()): Promise<StackOutputs> {
  checkStackName(stackName);
  const path = join(dir, `${stackName}.json`);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new RefusedError('unknown-stack', `no saved outputs for stack ${stackName} in ${dir}: npm run deploy saves them;`
      + ' on another machine give the outputs file once: --stack-outputs <cdk-outputs.json> (or scvmfs aws save-outputs)');
  }
  const saved = JSON.parse(text) as StackOutputs;
  if (saved.stackName !== stackName || typeof saved.functionNames !== 'object') {
    throw new RefusedError('bad-stack-outputs', `${path} is not the saved outputs of stack ${stackName}`);
  }
  return saved;
}

/**
 * The stack a command names: `outputsFile` (a cdk outputs file) is read and saved, so later commands need
 * only `stackName`; otherwise the saved outputs of `stackName` are loaded.
 */
export async function resolveStack(opts: { stackName?: string; outputsFile?: string; dir?: string }): Promise<StackOutputs> {
  if (opts.outputsFile) {
    const outputs = stackOutputsFromCdk(JSON.parse(await readFile(opts.outputsFile, 'utf8')), opts.stackName);
    await saveStackOutputs(outputs, opts.dir);
    return outputs;
  }
  if (!opts.stackName) throw new RefusedError('no-stack', 'name the deployed stack: --stack <name> (or --stack-outputs <cdk-outputs.json>)');
  return loadStackOutputs(opts.stackName, opts.dir);
}

/** The deployed function names `awsInvoker` calls; a function this stack lacks is named when it is called. */
export function deployedFunctionNames(outputs: StackOutputs): Record<FunctionName, string> {
  return outputs.functionNames as Record<FunctionName, string>;
}
