// The Lambda runtime the functions run on, chosen once for the package step and the stack: the native
// SQLite addon in the package is built for one Node major, and the runtime must be that major.

export const LAMBDA_RUNTIMES = ['nodejs20.x', 'nodejs22.x', 'nodejs24.x'] as const;
export type LambdaRuntimeName = (typeof LAMBDA_RUNTIMES)[number];

/** `nodejs22.x` → 22. */
export function runtimeNodeMajor(runtime: LambdaRuntimeName): 20 | 22 | 24 {
  return Number(/^nodejs(\d+)\.x$/.exec(runtime)![1]) as 20 | 22 | 24;
}

export function parseLambdaRuntime(value: unknown): LambdaRuntimeName {
  if (typeof value === 'string' && (LAMBDA_RUNTIMES as readonly string[]).includes(value)) return value as LambdaRuntimeName;
  throw new Error(`lambdaRuntime must be one of ${LAMBDA_RUNTIMES.join(', ')}, got ${JSON.stringify(value)}`);
}

/**
 * Without `lambdaRuntime`, the runtime of the Node major running the build: `npm ci` built the addon in
 * node_modules with that Node, so it is the one runtime the package can load on without a rebuild.
 */
export function defaultLambdaRuntime(nodeVersion = process.versions.node): LambdaRuntimeName {
  const major = nodeVersion.split('.')[0];
  const runtime = `nodejs${major}.x`;
  if ((LAMBDA_RUNTIMES as readonly string[]).includes(runtime)) return runtime as LambdaRuntimeName;
  throw new Error(`this is Node ${nodeVersion}, and Lambda has no ${runtime}: give -c lambdaRuntime=${LAMBDA_RUNTIMES.join('|')}`
    + ' and build the package under that Node major');
}
