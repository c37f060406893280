// scvmfs aws: what the owner does to a deployed stack (docs/aws.md): save its outputs, store the keys in
// its secrets, print a stock client's configuration.
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { lambdaSdk, secretsSdk } from '../../runtime/aws-sdk.js';
import { RefusedError } from '../../errors.js';
import { clientConfig, putKeys } from '../../runtime/aws-owner.js';
import { FUNCTION_NAMES } from '../../functions/types.js';
import {
  functionOutputName, resolveStack, saveStackOutputs, stackOutputsFromCdk, STACK_OUTPUT, type StackOutputs,
} from '../../runtime/stack-outputs.js';
import { stackOptions } from '../options.js';

/** Every output by its CloudFormation name, as `cdk deploy` prints them. */
function outputsByName(s: StackOutputs): Record<string, string> {
  const out: Record<string, string> = {
    [STACK_OUTPUT.repository]: s.fqrn, [STACK_OUTPUT.bucketName]: s.bucketName, [STACK_OUTPUT.storeUrl]: s.storeUrl,
    [STACK_OUTPUT.serverUrl]: s.serverUrl, [STACK_OUTPUT.region]: s.region, [STACK_OUTPUT.repositoryKeySecret]: s.repositoryKeySecret,
  };
  if (s.masterKeySecret) out[STACK_OUTPUT.masterKeySecret] = s.masterKeySecret;
  for (const fn of FUNCTION_NAMES) if (s.functionNames[fn]) out[functionOutputName(fn)] = s.functionNames[fn]!;
  return out;
}

export function register(program: Command): void {
  const aws = program.command('aws').description('work with a deployed AWS stack (docs/aws.md)');

  aws.command('save-outputs')
    .description('save a stack\'s outputs from `cdk deploy --outputs-file`, for later --stack <name>')
    .argument('<outputs-file>', 'the JSON that cdk deploy --outputs-file wrote')
    .option('--stack <name>', 'the stack, when the file holds several')
    .action(async (file: string, o: { stack?: string }) => {
      const outputs = stackOutputsFromCdk(JSON.parse(await readFile(file, 'utf8')), o.stack);
      const path = await saveStackOutputs(outputs);
      console.log(`saved the outputs of stack ${outputs.stackName} (${outputs.fqrn}) in ${path}`);
    });

  stackOptions(aws.command('outputs')
    .description('print the saved outputs of a stack (all as JSON, or one with --get)'))
    .option('--get <output>', 'one output by name, e.g. StoreUrl, ServerUrl, CommitFunctionName')
    .action(async (o: { stack?: string; stackOutputs?: string; get?: string }) => {
      const all = outputsByName(await resolveStack({ stackName: o.stack, outputsFile: o.stackOutputs }));
      if (o.get === undefined) return console.log(JSON.stringify(all, null, 2));
      if (!(o.get in all)) throw new RefusedError('unknown-output', `the stack has no output ${o.get}; it has ${Object.keys(all).join(', ')}`);
      console.log(all[o.get]);
    });

  stackOptions(aws.command('put-keys')
    .description('store the repository key, certificate and master public key (and --master-key) in the stack\'s secrets'))
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.key, <fqrn>.crt, <fqrn>.pub (and <fqrn>.masterkey)')
    .option('--master-key', 'also store the master key (only for a stack deployed with -c masterKeyInAccount=true)')
    .option('--dry-run', 'say what would be stored and which functions restarted, change nothing')
    .action(async (o: { stack?: string; stackOutputs?: string; keys: string; masterKey?: boolean; dryRun?: boolean }) => {
      const outputs = await resolveStack({ stackName: o.stack, outputsFile: o.stackOutputs });
      const clients = o.dryRun ? {} : {
        secrets: new (await secretsSdk()).SecretsManagerClient({ region: outputs.region }),
        lambda: new (await lambdaSdk()).LambdaClient({ region: outputs.region }),
      };
      const plan = await putKeys(outputs, o.keys, { masterKey: o.masterKey, dryRun: o.dryRun, ...clients });
      const verb = o.dryRun ? 'would store' : 'stored';
      for (const s of plan.secrets) console.log(`${verb} ${s.fields.join(', ')} of ${outputs.fqrn} in secret ${s.secretId}`);
      for (const r of plan.retire) console.log(`${o.dryRun ? 'would restart' : 'restarted'} ${r.fn} (${r.functionName}): its warm sandboxes held the previous keys`);
    });

  stackOptions(aws.command('client-config')
    .description('print the stock client\'s configuration for the repository behind the stack\'s CloudFront URL'))
    .option('--proxy <url>', 'CVMFS_HTTP_PROXY (a site Squid); default DIRECT')
    .action(async (o: { stack?: string; stackOutputs?: string; proxy?: string }) => {
      const outputs = await resolveStack({ stackName: o.stack, outputsFile: o.stackOutputs });
      const config = clientConfig(outputs, { proxy: o.proxy });
      process.stdout.write(`# ${config.path} (and the master public key as ${config.publicKeyPath})\n${config.text}`);
    });
}
