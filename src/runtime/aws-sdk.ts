// The Lambda and Secrets Manager SDKs are loaded on first use: together they add about a second to
// the start-up of every command, and only commands that talk to a deployed stack need them.
type LambdaSdk = typeof import('@aws-sdk/client-lambda');
type SecretsSdk = typeof import('@aws-sdk/client-secrets-manager');

let lambda: Promise<LambdaSdk> | undefined;
let secrets: Promise<SecretsSdk> | undefined;

export function lambdaSdk(): Promise<LambdaSdk> {
  return (lambda ??= import('@aws-sdk/client-lambda'));
}

export function secretsSdk(): Promise<SecretsSdk> {
  return (secrets ??= import('@aws-sdk/client-secrets-manager'));
}
