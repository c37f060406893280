// What `npm run synth|deploy|destroy -- <args>` runs (infra/run-cdk.ts), decided from its arguments
// alone: the app's settings, the cdk CLI's arguments and environment. synth needs no account and no
// network: no version check, notices, telemetry, lookups or credentials.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTEXT_OPTIONS, readAppSettings, RETIRED_OPTIONS, type AppSettings } from './app-context.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERBS = ['synth', 'deploy', 'destroy'] as const;
type Verb = (typeof VERBS)[number];

export interface CdkPlan {
  verb: Verb;
  settings: AppSettings;
  /** The CDK context, with the runtime made explicit so that the app and the package agree. */
  context: Record<string, string>;
  /** Arguments for the cdk CLI after the verb. */
  cdkArgs: string[];
  env: Record<string, string | undefined>;
  /** deploy: where cdk writes the outputs that are then saved. */
  outputsFile?: string;
  /** synth: the cloud assembly directory. */
  outputDir: string;
  dryRun: boolean;
}

const SYNTH_ONLY_ENV = {
  // No account: the template is environment-agnostic, and the CLI asks no credentials provider (nor
  // the EC2 metadata service) for one.
  AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined, AWS_DEFAULT_PROFILE: undefined, CDK_DEFAULT_ACCOUNT: undefined,
  AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true',
  CDK_DISABLE_CLI_TELEMETRY: 'true',
};

/** Reads the command line; throws a message for the user on a bad one. */
export function planCdk(verb: string, args: string[], env: NodeJS.ProcessEnv = process.env): CdkPlan {
  if (!(VERBS as readonly string[]).includes(verb)) throw new Error(`usage: run-cdk ${VERBS.join('|')} -- -c fqrn=<repository> …`);
  const context: Record<string, string> = {};
  const passThrough: string[] = [];
  let dryRun = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let pair: string | undefined;
    if (arg === '-c' || arg === '--context') {
      pair = args[++i];
      if (pair === undefined) throw new Error(`${arg} needs name=value`);
    } else if (arg.startsWith('--context=')) {
      pair = arg.slice('--context='.length);
    } else if (arg === '--dry-run') {
      dryRun = true;
      continue;
    } else {
      passThrough.push(arg);
      continue;
    }
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`context must be name=value, got ${JSON.stringify(pair)}`);
    const name = pair.slice(0, eq);
    // CDK's own feature flags start with '@'; anything else must be an option of this app (a typo would
    // otherwise be ignored silently).
    if (!name.startsWith('@') && ![...CONTEXT_OPTIONS, ...RETIRED_OPTIONS].includes(name as never)) {
      throw new Error(`unknown context option ${name}: the options are ${CONTEXT_OPTIONS.join(', ')} (docs/aws.md)`);
    }
    context[name] = pair.slice(eq + 1);
  }
  const settings = readAppSettings((name) => context[name]);
  context.lambdaRuntime = settings.lambdaRuntime;
  const outputIndex = passThrough.findIndex((a) => a === '--output' || a === '-o');
  const outputDir = outputIndex >= 0 ? passThrough[outputIndex + 1]! : join(ROOT, 'build', 'cdk.out');
  const cdkArgs = ['--no-notices', ...Object.entries(context).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  let outputsFile: string | undefined;
  if (verb === 'synth') cdkArgs.push('--no-lookups', '--quiet');
  if (verb === 'deploy') {
    const given = passThrough.findIndex((a) => a === '--outputs-file' || a === '-O');
    outputsFile = given >= 0 ? passThrough[given + 1] : join(ROOT, 'build', 'stacks', `${settings.stackName}.outputs.json`);
    if (given < 0) cdkArgs.push('--outputs-file', outputsFile!);
  }
  if (verb !== 'synth') cdkArgs.push(settings.stackName);
  cdkArgs.push(...passThrough);
  return {
    verb: verb as Verb, settings, context, cdkArgs, outputsFile, outputDir, dryRun,
    env: { ...env, CDK_DISABLE_VERSION_CHECK: '1', ...(verb === 'synth' ? SYNTH_ONLY_ENV : {}) },
  };
}

