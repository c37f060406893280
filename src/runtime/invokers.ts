// The writer's view of the functions (publish/FunctionInvoker) over each runtime: the local runner, or
// deployed Lambda functions called through the AWS API.
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { lambdaSdk } from './aws-sdk.js';
import { errorFromJSON, isErrorJSON } from '../errors.js';
import type { FunctionInvoker } from '../publish/publish-changeset.js';
import { badObjectsKey } from '../repo/object-verification.js';
import { txnKeys } from '../format/changeset.js';
import type { ObjectStore } from '../store/object-store.js';
import { meterSum, type MeterSnapshot } from '../store/metered-store.js';
import type { FunctionName } from '../functions/types.js';
import { ChainError, FunctionError, LocalRuntime, type InvocationRecord, type LocalRuntimeOptions, type RuntimeReport } from './local.js';
import { functionUsageFromInvocations, type FunctionUsage } from '../cost/usage.js';
import { addBilling, commitOutcomeKey, type ChainOutcome, type InvocationBilling } from './aws.js';

export interface LocalInvoker extends FunctionInvoker {
  report(): RuntimeReport;
  /** Invocations and billed time per function and memory size: each delivery's measured duration rounded up to 1 ms. */
  functionUsage(): FunctionUsage[];
  close(): Promise<void>;
}

/** Billed usage of invocation records, grouped by function and configured memory. */
export function functionUsageOfRecords(records: readonly InvocationRecord[]): FunctionUsage[] {
  const byMemory = new Map<number, InvocationRecord[]>();
  for (const r of records) byMemory.set(r.memoryMb, [...(byMemory.get(r.memoryMb) ?? []), r]);
  return [...byMemory].flatMap(([memoryMb, rs]) => functionUsageFromInvocations(rs, memoryMb));
}

/** A handler's refusal, as the error it threw: the writer sees its kind and code, as on Lambda. */
function handlerErrorOf(err: unknown): ReturnType<typeof errorFromJSON> | undefined {
  const cause = err instanceof ChainError ? err.cause : err;
  return cause instanceof FunctionError && cause.handlerError ? errorFromJSON(cause.handlerError) : undefined;
}

/** Refusals say the input is wrong: a retry of the step would be refused again. */
function retryable(error: FunctionError): boolean {
  const kind = error.handlerError?.kind;
  return kind !== 'refused' && kind !== 'usage';
}

/** Functions in local sandboxes with the limits a cloud function would have. */
export function localInvoker(options: LocalRuntimeOptions & { env: Record<string, string> }): LocalInvoker {
  const records: InvocationRecord[] = [];
  const runtime = new LocalRuntime({ ...options, onInvocation: (r) => { records.push(r); options.onInvocation?.(r); } });
  const rethrow = (err: unknown): never => { throw handlerErrorOf(err) ?? err; };
  return {
    invoke: async (fn, event) => (await runtime.invoke(fn as FunctionName, event).catch(rethrow)).result,
    runChain: async (fn, event) => (await runtime.runChain(fn as FunctionName, event, { maxSteps: 100_000, retryOn: retryable }).catch(rethrow)).result,
    requests: () => meterSum(Object.values(runtime.report()).map((s) => s!.requests)),
    report: () => runtime.report(),
    functionUsage: () => functionUsageOfRecords(records),
    close: () => runtime.close(),
  };
}

export interface AwsInvokerOptions {
  /** Deployed function names, e.g. from the stack outputs: { lease: 'scvmfs-lease', … }. */
  functionNames: Record<FunctionName, string>;
  /** The chain runs asynchronously on Lambda; the writer watches its outcome and checkpoint in the store. */
  store: ObjectStore;
  client?: Pick<LambdaClient, 'send'>;
  /** Region of the Lambda client made here when `client` is not given. */
  region?: string;
  pollMs?: number;
  timeoutMs?: number;
  /**
   * How long to wait for the chain's outcome record once its checkpoint says it is done (the record is
   * written just after); a deployment that writes none is then read from the checkpoint. Default 5 s.
   */
  outcomeGraceMs?: number;
}

interface CommitCheckpoint {
  status: string;
  revision: number | null;
  slices: number;
  rebases: number;
  grafts?: number;
}

/** Lambda's own figures from the REPORT line of a log tail: billed milliseconds and configured memory. */
export function billedFromLogTail(logResult: string | undefined): { billedMs: number; memoryMb: number } | undefined {
  if (!logResult) return undefined;
  const text = Buffer.from(logResult, 'base64').toString('utf8');
  const m = /REPORT RequestId:.*?Billed Duration: (\d+) ms\s+Memory Size: (\d+) MB/.exec(text);
  return m ? { billedMs: Number(m[1]), memoryMb: Number(m[2]) } : undefined;
}

export interface AwsInvoker extends FunctionInvoker {
  /**
   * Invocations and billed time per function: for synchronous calls Lambda's own billed duration from the
   * log tail's REPORT line, else (and for the asynchronous commit chain) the adapter's measured time.
   */
  functionUsage(): FunctionUsage[];
  /** Secrets Manager calls the functions made. */
  secretCalls(): number;
}

/** Deployed Lambda functions: direct calls answer synchronously, the commit chain is started and watched. */
export function awsInvoker(options: AwsInvokerOptions): AwsInvoker {
  let client: Promise<Pick<LambdaClient, 'send'>> | undefined;
  const lambda = () => (client ??= options.client ? Promise.resolve(options.client)
    : lambdaSdk().then((sdk) => new sdk.LambdaClient({ region: options.region })));
  let spent = meterSum([]);
  let billed: InvocationBilling = { functions: [], secretCalls: 0 };
  const count = (requests: unknown) => {
    if (typeof requests === 'object' && requests !== null) spent = meterSum([spent, requests as MeterSnapshot]);
  };
  const bill = (b: unknown) => {
    if (typeof b === 'object' && b !== null && Array.isArray((b as InvocationBilling).functions)) billed = addBilling(billed, b as InvocationBilling);
  };
  const call = async (fn: string, event: unknown, type: 'RequestResponse' | 'Event') => {
    const name = options.functionNames[fn as FunctionName];
    if (!name) throw new Error(`no deployed function for '${fn}'`);
    const { InvokeCommand } = await lambdaSdk();
    const out = await (await lambda()).send(new InvokeCommand({
      FunctionName: name, InvocationType: type, Payload: Buffer.from(JSON.stringify(event)),
      ...(type === 'RequestResponse' ? { LogType: 'Tail' as const } : {}),
    }));
    const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : 'null';
    const report = billedFromLogTail((out as { LogResult?: string }).LogResult);
    const measured = (a: unknown) => (typeof a === 'object' && a !== null && 'billing' in a ? (a as { billing?: InvocationBilling }).billing : undefined);
    let answer: unknown;
    try {
      answer = text === '' ? null : JSON.parse(text) as unknown;
    } catch {
      answer = undefined;
    }
    if (type === 'RequestResponse') {
      const m = measured(answer);
      bill(report
        ? { functions: [{ fn, arch: m?.functions[0]?.arch ?? 'x86_64', memoryMb: report.memoryMb, invocations: 1, billedMs: report.billedMs }], secretCalls: m?.secretCalls ?? 0 }
        : m);
    }
    if (out.FunctionError) throw lambdaError(name, text);
    if (answer === undefined) answer = JSON.parse(text) as unknown; // not JSON: throws as it always did
    // The adapter answers { result, requests } (runtime/aws.ts); a bare value is a result on its own.
    if (typeof answer === 'object' && answer !== null && 'result' in answer && 'requests' in answer) {
      count(answer.requests);
      return answer.result;
    }
    return answer;
  };
  return {
    invoke: (fn, event) => call(fn, event, 'RequestResponse'),
    requests: () => ({ ...spent }),
    functionUsage: () => billed.functions.map((f) => ({ ...f })),
    secretCalls: () => billed.secretCalls,
    async runChain(fn, event) {
      const txnId = (event as { txnId?: string }).txnId;
      if (fn !== 'commit' || !txnId) throw new Error('only the commit chain runs asynchronously on Lambda');
      await call(fn, event, 'Event');
      const deadline = Date.now() + (options.timeoutMs ?? 15 * 60_000);
      let finishedAt: number | undefined;
      for (;;) {
        // The chain's own record of how it ended: a result, or a refusal with its code, at once.
        const recorded = await options.store.get(commitOutcomeKey(txnId));
        if (recorded) {
          const outcome = JSON.parse(recorded.body.toString('utf8')) as ChainOutcome;
          count(outcome.requests);
          bill(outcome.billing);
          if (outcome.status === 'refused') throw isErrorJSON(outcome.error) ? errorFromJSON(outcome.error) : new Error(`commit chain of ${txnId} was refused`);
          return outcome.result;
        }
        // A deployment older than the outcome record: the checkpoint still says when the chain is done.
        const got = await options.store.get(txnKeys(txnId).state);
        if (got) {
          const state = JSON.parse(got.body.toString('utf8')) as CommitCheckpoint;
          if (state.status === 'committed' || state.status === 'aborted') {
            finishedAt ??= Date.now();
            if (Date.now() - finishedAt >= (options.outcomeGraceMs ?? 5000)) {
              return { status: state.status, revision: state.revision ?? undefined, slices: state.slices, rebases: state.rebases, grafts: state.grafts ?? 0 };
            }
          }
        }
        // A commit that found objects not matching their names stops the chain and leaves their list.
        if (await options.store.head(badObjectsKey(txnKeys(txnId).prefix))) {
          throw new Error(`the commit of ${txnId} removed objects whose bytes did not match their names; see ${badObjectsKey(txnKeys(txnId).prefix)}`);
        }
        if (Date.now() > deadline) throw new Error(`commit chain of ${txnId} did not finish in time; its checkpoint is ${txnKeys(txnId).state}`);
        await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
      }
    },
  };
}

/** Lambda's error payload is {errorType, errorMessage, trace}; our refusals put their ErrorJSON in the message. */
function lambdaError(name: string, text: string): Error {
  let message: unknown;
  try {
    message = (JSON.parse(text) as { errorMessage?: unknown } | null)?.errorMessage;
  } catch { /* not JSON: reported as it is */ }
  if (typeof message === 'string') {
    try {
      const inner = JSON.parse(message) as unknown;
      if (isErrorJSON(inner)) return errorFromJSON(inner);
    } catch { /* a plain message */ }
  }
  return new Error(`function ${name} failed: ${text}`);
}
