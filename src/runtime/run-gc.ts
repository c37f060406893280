// Runs a garbage collection chain to its end: in sandboxes of the local runtime (with a cloud
// function's limits), or inline in this process (no sandbox; one step after another).
import { randomUUID } from 'node:crypto';
import { handleGcEvent, newGcId, type GcConfig, type GcOptions, type GcResult } from '../functions/gc.js';
import type { FunctionContext } from '../functions/types.js';
import { meterSum, type MeterSnapshot } from '../store/metered-store.js';
import { LocalRuntime, type Limits } from './local.js';
import { functionUsageOfRecords } from './invokers.js';
import type { FunctionUsage } from '../cost/usage.js';
import type { RuntimeReport } from './local.js';

export interface GcRun {
  result: GcResult;
  steps: number;
  /** Store requests the gc made (every step's own). */
  requests: MeterSnapshot;
  report?: RuntimeReport;
  /** Invocations and billed time of the gc function (sandboxed runs only). */
  functions: FunctionUsage[];
}

/** The chain in sandboxes: `env` configures the function as on Lambda (SCVMFS_STORE, _FQRN, _KEYS). */
export async function runGcLocal(env: Record<string, string>, options: GcOptions, limits: Partial<Limits>, gcId = newGcId()): Promise<GcRun> {
  const runtime = new LocalRuntime({ env, limits });
  try {
    const out = await runtime.runChain('gc', { gcId, options }, { maxSteps: 1_000_000, retryOn: (e) => e.handlerError?.kind !== 'refused' && e.handlerError?.kind !== 'busy' });
    const report = runtime.report();
    return { result: out.result as GcResult, steps: out.path.length, requests: meterSum(Object.values(report).map((s) => s!.requests)), report, functions: functionUsageOfRecords(out.records) };
  } finally {
    await runtime.close();
  }
}

/** The chain in this process, each step with `stepMs` to work in. */
export async function runGcInline(config: GcConfig, options: GcOptions, o: { gcId?: string; stepMs?: number; memoryMb?: number; onStep?: (n: number, phase: string) => void } = {}): Promise<GcRun> {
  const gcId = o.gcId ?? newGcId();
  let event: { gcId: string; options?: GcOptions } = { gcId, options };
  for (let steps = 1; ; steps++) {
    const started = Date.now();
    const stepMs = o.stepMs ?? 60_000;
    const context: FunctionContext = {
      awsRequestId: randomUUID(), functionName: 'gc', memoryLimitInMB: o.memoryMb ?? 1024,
      getRemainingTimeInMillis: () => stepMs - (Date.now() - started),
    };
    const answer = await handleGcEvent(event, config, context);
    o.onStep?.(steps, answer.result ? 'done' : 'next');
    if (answer.result) return { result: answer.result, steps, requests: meterSum([]), functions: [] };
    event = answer.next!.event;
  }
}
