// What a repository's owner does to a deployed stack after `npm run deploy` (docs/aws.md): store the keys
// in the stack's secrets, and give clients their configuration. The SDK clients are passed in so that
// tests record at the cloud edge.
import type { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { UpdateFunctionConfigurationCommand } from '@aws-sdk/client-lambda';
import { lambdaSdk, secretsSdk } from './aws-sdk.js';
import { RefusedError } from '../errors.js';
import { loadKeys } from '../repo/keys-dir.js';
import type { RepositoryKeys } from '../format/keys.js';
import type { FunctionName } from '../functions/types.js';
import { SECRET_FIELDS } from './aws.js';
import type { StackOutputs } from './stack-outputs.js';

export interface PutSecretClient {
  send(command: PutSecretValueCommand): Promise<unknown>;
}
export interface UpdateFunctionClient {
  send(command: UpdateFunctionConfigurationCommand): Promise<unknown>;
}

/**
 * Functions that cache the key secrets per warm sandbox (src/runtime/aws.ts): after new keys are stored
 * their configuration is touched, which makes Lambda start fresh sandboxes that read the new value.
 */
export const KEY_READERS: readonly FunctionName[] = ['commit', 'resign', 'gc'];

export interface PutKeysPlan {
  secrets: { secretId: string; fields: string[] }[];
  retire: { fn: FunctionName; functionName: string }[];
}

/** Secret JSON from key files: each field named by its key file suffix (the format aws.ts reads back). */
function secretJson(keys: Partial<RepositoryKeys>, fields: string[]): string {
  return JSON.stringify(Object.fromEntries(fields.map((f) => [f, keys[SECRET_FIELDS[f]!]!])));
}

/**
 * Stores the repository key, its certificate and the master public key (and, with `masterKey`, the master
 * key) from `keysDir` into the stack's secrets, then retires warm sandboxes that hold older keys. With
 * `dryRun`, only says what it would do. Everything is read and checked before anything is stored.
 */
export async function putKeys(outputs: StackOutputs, keysDir: string, opts: {
  masterKey?: boolean; dryRun?: boolean; secrets?: PutSecretClient; lambda?: UpdateFunctionClient; now?: Date;
}): Promise<PutKeysPlan> {
  if (opts.masterKey && !outputs.masterKeySecret) {
    throw new RefusedError('no-master-key-secret', `stack ${outputs.stackName} keeps no master key: deploy it with`
      + ' -c masterKeyInAccount=true to store one, or keep the master key off-line and re-sign with `scvmfs resign`');
  }
  const keys = await loadKeys(keysDir, outputs.fqrn, { need: opts.masterKey ? ['repository', 'anchor', 'master'] : ['repository', 'anchor'] });
  const writes: { secretId: string; fields: string[] }[] = [{ secretId: outputs.repositoryKeySecret, fields: ['key', 'crt', 'pub'] }];
  if (opts.masterKey) writes.push({ secretId: outputs.masterKeySecret!, fields: ['masterkey', 'pub'] });
  const retire = KEY_READERS.filter((fn) => outputs.functionNames[fn]).map((fn) => ({ fn, functionName: outputs.functionNames[fn]! }));
  const plan = { secrets: writes, retire };
  if (opts.dryRun) return plan;
  if (!opts.secrets || !opts.lambda) throw new Error('putKeys needs a Secrets Manager and a Lambda client');
  const { PutSecretValueCommand } = await secretsSdk();
  const { UpdateFunctionConfigurationCommand } = await lambdaSdk();
  for (const w of writes) {
    await opts.secrets.send(new PutSecretValueCommand({ SecretId: w.secretId, SecretString: secretJson(keys, w.fields) }));
  }
  const stamp = (opts.now ?? new Date()).toISOString();
  for (const r of retire) {
    await opts.lambda.send(new UpdateFunctionConfigurationCommand({
      FunctionName: r.functionName, Description: `scvmfs ${r.fn} for ${outputs.fqrn}; keys stored ${stamp}`,
    }));
  }
  return plan;
}

/**
 * The stock client's configuration for the repository behind the stack's CloudFront distribution:
 * `/etc/cvmfs/config.d/<fqrn>.conf`, with the master public key installed as `/etc/cvmfs/keys/<fqrn>.pub`.
 */
export function clientConfig(outputs: StackOutputs, opts: { proxy?: string } = {}): { path: string; text: string; publicKeyPath: string } {
  const publicKeyPath = `/etc/cvmfs/keys/${outputs.fqrn}.pub`;
  const lines = [
    `# ${outputs.fqrn}, served by CloudFront from stack ${outputs.stackName}`,
    `CVMFS_SERVER_URL=${outputs.serverUrl}`,
    `CVMFS_PUBLIC_KEY=${publicKeyPath}`,
    // The client insists on a proxy setting; DIRECT reaches CloudFront without a site Squid.
    `CVMFS_HTTP_PROXY=${opts.proxy ?? 'DIRECT'}`,
  ];
  return { path: `/etc/cvmfs/config.d/${outputs.fqrn}.conf`, text: `${lines.join('\n')}\n`, publicKeyPath };
}
