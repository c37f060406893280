// The writer's view of the functions (publish/FunctionInvoker) over each runtime: the local runner, or
// deployed Lambda functions called through the AWS API.
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { FunctionInvoker } from '../publish/publish-changeset.js';
import { badObjectsKey } from '../repo/object-verification.js';
import { txnKeys } from '../format/changeset.js';
import type { ObjectStore } from '../store/object-store.js';
import type { FunctionName } from '../functions/types.js';
import { LocalRuntime, type LocalRuntimeOptions, type RuntimeReport } from './local.js';

export interface LocalInvoker extends FunctionInvoker {
  report(): RuntimeReport;
  close(): Promise<void>;
}

/** Functions in local sandboxes with the limits a cloud function would have. */
export function localInvoker(options: LocalRuntimeOptions & { env: Record<string, string> }): LocalInvoker {
  const runtime = new LocalRuntime(options);
  return {
    invoke: async (fn, event) => (await runtime.invoke(fn as FunctionName, event)).result,
    runChain: async (fn, event) => (await runtime.runChain(fn as FunctionName, event, { maxSteps: 100_000 })).result,
    report: () => runtime.report(),
    close: () => runtime.close(),
  };
}

export interface AwsInvokerOptions {
  /** Deployed function names, e.g. from the stack outputs: { lease: 'scvmfs-lease', … }. */
  functionNames: Record<FunctionName, string>;
  /** The chain runs asynchronously on Lambda; the writer watches its checkpoint in the store. */
  store: ObjectStore;
  client?: Pick<LambdaClient, 'send'>;
  pollMs?: number;
  timeoutMs?: number;
}

/** Deployed Lambda functions: direct calls answer synchronously, the commit chain is started and watched. */
export function awsInvoker(options: AwsInvokerOptions): FunctionInvoker {
  const client = options.client ?? new LambdaClient({});
  const call = async (fn: string, event: unknown, type: 'RequestResponse' | 'Event') => {
    const name = options.functionNames[fn as FunctionName];
    if (!name) throw new Error(`no deployed function for '${fn}'`);
    const out = await client.send(new InvokeCommand({ FunctionName: name, InvocationType: type, Payload: Buffer.from(JSON.stringify(event)) }));
    const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : 'null';
    if (out.FunctionError) throw new Error(`function ${name} failed: ${text}`);
    return text === '' ? null : JSON.parse(text);
  };
  return {
    invoke: (fn, event) => call(fn, event, 'RequestResponse'),
    async runChain(fn, event) {
      const txnId = (event as { txnId?: string }).txnId;
      if (fn !== 'commit' || !txnId) throw new Error('only the commit chain runs asynchronously on Lambda');
      await call(fn, event, 'Event');
      const deadline = Date.now() + (options.timeoutMs ?? 15 * 60_000);
      for (;;) {
        const got = await options.store.get(txnKeys(txnId).state);
        if (got) {
          const state = JSON.parse(got.body.toString('utf8')) as { status: string; revision: number | null; slices: number; rebases: number };
          if (state.status === 'committed' || state.status === 'aborted') {
            return { status: state.status, revision: state.revision ?? undefined, slices: state.slices, rebases: state.rebases };
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
