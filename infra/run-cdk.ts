// `npm run synth|deploy|destroy -- -c fqrn=repo.example.org [-c name=value…] [cdk options…] [--dry-run]`:
// builds the Lambda package for the chosen runtime and architecture (scripts/package-lambda.sh, which
// refuses an addon that runtime cannot load), then runs the project's own CDK CLI as infra/cdk-plan.ts
// decides. deploy saves the stack's outputs for `scvmfs … --stack <name>`. docs/aws.md walks through it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { planCdk, ROOT, type CdkPlan } from './cdk-plan.js';
import { runtimeNodeMajor } from './lambda-runtime.js';
import { saveStackOutputs, stackOutputsFromCdk } from '../src/runtime/stack-outputs.js';

function run(command: string, args: string[], env: Record<string, string | undefined>, dryRun: boolean): void {
  console.error(`+ ${[command, ...args].join(' ')}`);
  if (dryRun) return;
  const r = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', env: env as NodeJS.ProcessEnv });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

async function main(): Promise<void> {
  let plan: CdkPlan;
  try {
    plan = planCdk(process.argv[2] ?? '', process.argv.slice(3));
  } catch (e) {
    console.error(`npm run ${process.argv[2] ?? ''}: ${(e as Error).message}`);
    process.exit(2);
  }
  const { settings } = plan;
  run('bash', [join(ROOT, 'scripts', 'package-lambda.sh'), settings.codeDirectory], {
    ...process.env, SCVMFS_SKIP_TSC: '1',
    SCVMFS_LAMBDA_NODE: String(runtimeNodeMajor(settings.lambdaRuntime)), SCVMFS_LAMBDA_ARCH: settings.architecture,
  }, plan.dryRun);
  if (plan.outputsFile && !plan.dryRun) mkdirSync(dirname(plan.outputsFile), { recursive: true });
  run(process.execPath, [join(ROOT, 'node_modules', 'aws-cdk', 'bin', 'cdk'), plan.verb, ...plan.cdkArgs], plan.env, plan.dryRun);
  if (plan.verb === 'synth' && !plan.dryRun) {
    console.log(`template: ${join(plan.outputDir, `${settings.stackName}.template.json`)} (${settings.lambdaRuntime}, ${settings.architecture})`);
  }
  if (plan.verb === 'deploy') {
    console.error(`+ scvmfs aws save-outputs ${plan.outputsFile}`);
    if (!plan.dryRun) {
      if (!existsSync(plan.outputsFile!)) throw new Error(`cdk deploy wrote no outputs file ${plan.outputsFile}`);
      const outputs = stackOutputsFromCdk(JSON.parse(readFileSync(plan.outputsFile!, 'utf8')), settings.stackName);
      console.log(`saved the outputs of ${settings.stackName} in ${await saveStackOutputs(outputs)}: next, scvmfs aws put-keys --stack ${settings.stackName} --keys <dir>`);
    }
  }
  if (plan.verb === 'destroy' && !plan.dryRun) {
    console.log(`the bucket and the key secrets of ${settings.props.fqrn} are retained (docs/aws.md, "Tear down")`);
  }
}

await main();
