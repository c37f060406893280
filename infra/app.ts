// The CDK app: `cdk deploy -c fqrn=repo.example.org` (see docs/aws.md for every option).
import { App } from 'aws-cdk-lib';
import { ScvmfsStack } from './stack.js';

const app = new App();

function flag(name: string): boolean {
  const value = app.node.tryGetContext(name);
  return value === true || value === 'true';
}

function number(name: string): number | undefined {
  const value = app.node.tryGetContext(name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`context ${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

const fqrn = app.node.tryGetContext('fqrn');
if (typeof fqrn !== 'string' || fqrn === '') {
  throw new Error('give the repository name: cdk deploy -c fqrn=repo.example.org');
}
const commitMemory = number('commitMemoryMB');
const architecture = app.node.tryGetContext('architecture');
if (architecture !== undefined && architecture !== 'x86_64' && architecture !== 'arm64') {
  throw new Error(`context architecture must be x86_64 or arm64, got ${JSON.stringify(architecture)}`);
}

new ScvmfsStack(app, app.node.tryGetContext('stackName') ?? `scvmfs-${fqrn.replace(/\./g, '-')}`, {
  fqrn,
  bucketName: app.node.tryGetContext('bucketName'),
  architecture,
  nodeVersion: number('nodeVersion') as 20 | 22 | 24 | undefined,
  masterKeyInAccount: flag('masterKeyInAccount'),
  scheduleResign: flag('scheduleResign'),
  resignEveryDays: number('resignEveryDays'),
  functions: commitMemory === undefined ? undefined : { commit: { memoryMB: commitMemory } },
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
