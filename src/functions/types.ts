// The contract every serverless step implements, shaped like an AWS Lambda handler so that the same
// module runs under the local runner (runtime/local) and on Lambda (runtime/aws) unchanged.
//
// Configuration reaches a handler through environment variables, never through module state, because a
// warm sandbox may serve many invocations and a cold one none before it:
//   SCVMFS_STORE       the store URL (directory, file://, s3://bucket/prefix?endpoint=…)
//   SCVMFS_FQRN        the repository name
//   SCVMFS_KEYS        a keys directory holding <fqrn>.key/.crt/.pub (local runtime), or
//   SCVMFS_KEY_SECRET  the name of a secret holding them (aws runtime)

/** What a handler may ask of the sandbox it runs in (a subset of Lambda's context object). */
export interface FunctionContext {
  readonly awsRequestId: string;
  readonly functionName: string;
  readonly memoryLimitInMB: number;
  /** Milliseconds left before the runtime kills this invocation. */
  getRemainingTimeInMillis(): number;
}

/** A handler's answer: a result for the caller, and optionally the event of the next step in the chain. */
export interface FunctionResult<R = unknown> {
  result?: R;
  /** The runtime invokes `fn` with `event` asynchronously (the caller does not wait for it on Lambda). */
  next?: { fn: FunctionName; event: unknown };
}

export type Handler<E = any, R = unknown> = (event: E, context: FunctionContext) => Promise<FunctionResult<R>>;

/** Every function the runtimes know; module `src/functions/<name>.ts` exports `handler`. */
export const FUNCTION_NAMES = ['lease', 'upload-grant', 'commit', 'abort', 'resign', 'gc', 'check', 'replicate'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];
