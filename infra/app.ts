// The CDK app, run by `npm run synth|deploy|destroy -- -c fqrn=repo.example.org` (infra/run-cdk.ts builds
// the Lambda package first); docs/aws.md lists every option.
import { App } from 'aws-cdk-lib';
import { readAppSettings } from './app-context.js';
import { ScvmfsStack } from './stack.js';

const app = new App();
const settings = readAppSettings((name) => app.node.tryGetContext(name));
new ScvmfsStack(app, settings.stackName, {
  ...settings.props,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
