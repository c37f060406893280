// The CDK app's settings from context (`-c name=value`), read the same way by the app and by
// `npm run synth|deploy|destroy` (infra/run-cdk.ts), which must know the runtime and code directory
// before it builds the package. docs/aws.md lists every option.
import { resolve } from 'node:path';
import { DEFAULT_CODE_DIRECTORY, type ScvmfsStackProps } from './stack.js';
import { defaultLambdaRuntime, parseLambdaRuntime, runtimeNodeMajor, type LambdaRuntimeName } from './lambda-runtime.js';

export interface AppSettings {
  stackName: string;
  lambdaRuntime: LambdaRuntimeName;
  architecture: 'x86_64' | 'arm64';
  codeDirectory: string;
  props: Omit<ScvmfsStackProps, 'env'>;
}

export const CONTEXT_OPTIONS = [
  'fqrn', 'stackName', 'bucketName', 'lambdaRuntime', 'architecture', 'codeDirectory',
  'masterKeyInAccount', 'scheduleResign', 'resignEveryDays', 'commitMemoryMB',
  'gcEveryDays', 'gcKeepRevisions', 'gcKeepSinceDays',
] as const;

/** Options of earlier versions, refused by readAppSettings with what replaced them. */
export const RETIRED_OPTIONS = ['nodeVersion'] as const;

/** The stack name without `stackName`: `scvmfs-<fqrn with dashes>`. */
export function defaultStackName(fqrn: string): string {
  return `scvmfs-${fqrn.replace(/\./g, '-')}`;
}

export function readAppSettings(get: (name: string) => unknown): AppSettings {
  const flag = (name: string) => {
    const value = get(name);
    return value === true || value === 'true';
  };
  const number = (name: string) => {
    const value = get(name);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isFinite(n)) throw new Error(`context ${name} must be a number, got ${JSON.stringify(value)}`);
    return n;
  };
  const fqrn = get('fqrn');
  if (typeof fqrn !== 'string' || fqrn === '') {
    throw new Error('give the repository name: npm run synth -- -c fqrn=repo.example.org');
  }
  if (get('nodeVersion') !== undefined) {
    throw new Error(`context nodeVersion is now lambdaRuntime: -c lambdaRuntime=nodejs${get('nodeVersion')}.x`);
  }
  const architecture = get('architecture') ?? 'x86_64';
  if (architecture !== 'x86_64' && architecture !== 'arm64') {
    throw new Error(`context architecture must be x86_64 or arm64, got ${JSON.stringify(architecture)}`);
  }
  const lambdaRuntime = get('lambdaRuntime') === undefined ? defaultLambdaRuntime() : parseLambdaRuntime(get('lambdaRuntime'));
  const codeDirectory = typeof get('codeDirectory') === 'string' ? resolve(get('codeDirectory') as string) : DEFAULT_CODE_DIRECTORY;
  const commitMemory = number('commitMemoryMB');
  const stackName = (get('stackName') as string | undefined) ?? defaultStackName(fqrn);
  return {
    stackName, lambdaRuntime, architecture, codeDirectory,
    props: {
      fqrn,
      bucketName: get('bucketName') as string | undefined,
      architecture,
      nodeVersion: runtimeNodeMajor(lambdaRuntime),
      codeDirectory,
      masterKeyInAccount: flag('masterKeyInAccount'),
      scheduleResign: flag('scheduleResign'),
      resignEveryDays: number('resignEveryDays'),
      scheduleGc: number('gcEveryDays') === undefined ? undefined
        : { everyDays: number('gcEveryDays')!, keepRevisions: number('gcKeepRevisions'), keepSinceDays: number('gcKeepSinceDays') },
      functions: commitMemory === undefined ? undefined : { commit: { memoryMB: commitMemory } },
    },
  };
}
