// A minimal runtime for tests: runs the function handlers in this process (lease, abort, upload-grant,
// and the commit chain with a wall-time budget per step), so faults can be injected between steps.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ObjectStore } from '../src/store/object-store.js';
import type { FunctionInvoker } from '../src/publish/publish-changeset.js';
import { handleCommitEvent, type CommitConfig, type CommitEvent } from '../src/functions/commit.js';
import { handleLeaseEvent } from '../src/functions/lease.js';
import { handleAbortEvent } from '../src/functions/abort.js';
import { handleUploadGrant } from '../src/functions/upload-grant.js';
import type { FunctionContext } from '../src/functions/types.js';

function context(fn: string, remainingMs: () => number): FunctionContext {
  return { awsRequestId: randomUUID(), functionName: fn, memoryLimitInMB: 128, getRemainingTimeInMillis: remainingMs };
}

export interface InvokerOptions {
  /** Commit steps see this store (e.g. one that dies at a chosen write). */
  commitStore?: () => ObjectStore;
  /** Milliseconds a commit step may run (small values force many slices). */
  commitBudgetMs?: number;
  deliverTwice?: boolean;
  /** Called when a step dies; the event is delivered again, as an asynchronous invocation is retried. */
  maxRetries?: number;
  /** Runs after every delivery, finished or dead (e.g. to check the repository between steps). */
  afterStep?: () => Promise<void>;
}

/** Runs the handlers in this process, with a wall-time budget per step, as a minimal runtime. */
export function invoker(config: CommitConfig, o: InvokerOptions = {}): FunctionInvoker & { steps: number; deaths: number } {
  const self = {
    steps: 0,
    deaths: 0,
    async invoke(fn: string, event: unknown): Promise<unknown> {
      if (fn === 'lease') return handleLeaseEvent(event as never, { store: config.store, fqrn: config.fqrn, masterPublicKeyPem: config.keys.masterPublicKeyPem }, new Date());
      if (fn === 'abort') return handleAbortEvent(event as never, config.store);
      if (fn === 'upload-grant') return handleUploadGrant(event as never, config.store);
      throw new Error(`no function ${fn}`);
    },
    async runChain(fn: string, event: unknown): Promise<unknown> {
      assert.equal(fn, 'commit');
      let current = event as CommitEvent;
      for (let guard = 0; guard < 10_000; guard++) {
        let answer;
        for (let attempt = 0; ; attempt++) {
          const budget = o.commitBudgetMs ?? 60_000;
          const start = Date.now();
          const step = () => handleCommitEvent(current, { ...config, store: o.commitStore?.() ?? config.store },
            context('commit', () => budget - (Date.now() - start)));
          self.steps++;
          try {
            answer = await step();
            await o.afterStep?.();
            if (o.deliverTwice) {
              self.steps++;
              await step();
              await o.afterStep?.();
            }
            break;
          } catch (err) {
            if (!(err instanceof StepDied) || attempt >= (o.maxRetries ?? 0)) throw err;
            self.deaths++;
            await o.afterStep?.();
          }
        }
        if (!answer.next) return answer.result;
        current = answer.next.event;
      }
      throw new Error('chain did not end');
    },
  };
  return self;
}

export class StepDied extends Error {}

