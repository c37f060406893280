// Runs the check chain (functions/check) to its end: in local sandboxes with a function's limits, or
// inline in this process, and reads its report from the control area. Over an http(s) URL there is no
// control area (and no listing): the chain runs inline with its state in a local directory store, the
// same code path as `--state-dir` for a store.
import type { FunctionUsage } from '../cost/usage.js';
import { functionUsageOfRecords } from './invokers.js';
import type { InvocationRecord } from './stats.js';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { RefusedError } from '../errors.js';
import { HttpSource } from '../client/sources.js';
import { VerifyFailedError, type VerifyReport } from '../client/verify.js';
import { handleCheckEvent, readCheckReport, readCheckState, type CheckConfig, type CheckEvent, type CheckState, type CheckTotals } from '../functions/check.js';
import type { FunctionContext } from '../functions/types.js';
import { dropCheck } from '../repo/check-parts.js';
import { FsStore } from '../store/fs-store.js';
import { MeteredStore, meterSum, type MeterSnapshot } from '../store/metered-store.js';
import { openStore } from '../store/open-store.js';
import type { ObjectStore } from '../store/object-store.js';
import { ChainError, FunctionError, LocalRuntime, type LocalRuntimeOptions } from './local.js';

export interface CheckRunOptions {
  fqrn: string;
  publicKeys: string[];
  allRevisions?: boolean;
  full?: boolean;
  /** Go on from the state a killed check left (same options); otherwise a check starts afresh. */
  resume?: boolean;
  allowExpiredWhitelist?: boolean;
  /** 'local' (default for stores): sandboxed functions with their limits; 'inline': this process. */
  runtime?: 'local' | 'inline';
  /** Keep the state in this directory (a directory store) instead of the store's control area. */
  stateDir?: string;
  memoryMb?: number;
  timeoutMs?: number;
  sliceCatalogs?: number;
  slicePages?: number;
  pageKeys?: number;
  /** Local runtime options for tests (killAt, deliverTwice, …). */
  local?: Partial<LocalRuntimeOptions>;
  onProgress?: (p: CheckProgress) => void;
}

export interface CheckProgress extends CheckTotals {
  phase: CheckState['phase'];
  seconds: number;
  requests: number;
}

export interface CheckReport extends VerifyReport {
  id: string;
  runtime: 'local' | 'inline';
  listed: number;
  slices: number;
  roots: number;
  seconds: number;
  /** Store requests of the whole chain (the repository's store and the state's). */
  requests: MeterSnapshot;
  /** Invocations and billed time of the check function (none inline). */
  functions: FunctionUsage[];
  /** The largest memory one invocation reached (local runtime); null inline. */
  peakMemoryMb: number | null;
}

/** The default home of a check's state: one id per kind of check, so `--resume` finds it. */
export function checkId(o: Pick<CheckRunOptions, 'allRevisions' | 'full'>): string {
  return `${o.allRevisions ? 'all' : 'head'}${o.full ? '-full' : ''}`;
}

const isUrl = (location: string) => /^https?:\/\//i.test(location);
const requestCount = (m: MeterSnapshot) => m.get + m.head + m.put + m.conditionalPut + m.list + m.delete;

export async function runCheck(location: string, o: CheckRunOptions): Promise<CheckReport> {
  const url = isUrl(location);
  if (url && !o.stateDir) throw new RefusedError('check-needs-state-dir', `an http(s) repository has no control area for the check's state: give --state-dir <dir>`);
  const runtime = url ? 'inline' : o.runtime ?? 'local';
  const storeSpec = url ? location : /^(s3|file):\/\//i.test(location) ? location : resolve(location);
  const controlMeter = new MeteredStore(o.stateDir ? new FsStore(resolve(o.stateDir)) : openStore(storeSpec));
  const control: ObjectStore = controlMeter;
  const id = checkId(o);
  const event: CheckEvent = {
    id, publicKeys: o.publicKeys, allRevisions: o.allRevisions, full: o.full, allowExpiredWhitelist: o.allowExpiredWhitelist,
    sliceCatalogs: o.sliceCatalogs, slicePages: o.slicePages, pageKeys: o.pageKeys,
  };
  if (o.resume) {
    if (!(await readCheckState(control, id))) {
      throw new RefusedError('no-check-to-resume', `no check '${id}' to resume in ${control.description}: run it without --resume (with the same --all-revisions/--full) to start one`);
    }
  } else {
    await dropCheck(control, id);
  }
  const started = Date.now();
  const memoryMb = o.memoryMb ?? 128;
  const timeoutMs = o.timeoutMs ?? 60_000;
  let peakMemoryMb: number | null = null;
  const invocations: InvocationRecord[] = [];
  let requests: () => MeterSnapshot;
  const progress = async (spent: MeterSnapshot) => {
    const s = o.onProgress && await readCheckState(control, id).catch(() => null);
    if (s) o.onProgress!({ ...s.totals, phase: s.phase, seconds: (Date.now() - started) / 1000, requests: requestCount(spent) });
  };

  if (runtime === 'inline') {
    const sourceMeter = url ? undefined : new MeteredStore(openStore(storeSpec));
    const http = url ? new HttpSource(location, { revalidate: true }) : undefined;
    const config: CheckConfig = { fqrn: o.fqrn, source: sourceMeter ?? http!, control };
    requests = () => meterSum([controlMeter.snapshot(), sourceMeter?.snapshot() ?? { ...zero(), get: http!.requests }]);
    for (let step = 0; ; step++) {
      const t0 = Date.now();
      const context: FunctionContext = {
        awsRequestId: randomUUID(), functionName: 'check', memoryLimitInMB: memoryMb,
        getRemainingTimeInMillis: () => timeoutMs - (Date.now() - t0),
      };
      const answer = await handleCheckEvent(event, config, context);
      await progress(requests());
      if (!answer.next) break;
    }
  } else {
    let spent = zero();
    const rt = new LocalRuntime({
      ...o.local,
      env: {
        SCVMFS_STORE: storeSpec, SCVMFS_FQRN: o.fqrn,
        ...(o.stateDir ? { SCVMFS_CHECK_STATE: resolve(o.stateDir) } : {}),
        ...storeEnv(),
        ...o.local?.env,
      },
      limits: { memoryMb, timeoutMs },
      onInvocation: (r) => {
        peakMemoryMb = Math.max(peakMemoryMb ?? 0, r.peakMemoryMb);
        invocations.push(r);
        if (r.requests) spent = meterSum([spent, r.requests]);
        void progress(meterSum([spent, controlMeter.snapshot()]));
        o.local?.onInvocation?.(r);
      },
    });
    requests = () => meterSum([spent, controlMeter.snapshot()]);
    try {
      await rt.runChain('check', event, { maxSteps: 1_000_000, retryOn: (e: FunctionError) => e.handlerError?.kind !== 'refused' && e.handlerError?.kind !== 'usage' });
    } catch (err) {
      if (err instanceof ChainError) throw new Error(`the check chain stopped: ${err.message}; run again with --resume to go on from its state`);
      throw err;
    } finally {
      await rt.close();
    }
  }

  const got = await readCheckReport(control, id);
  if (!got || got.state.phase !== 'done') throw new Error(`check '${id}' did not finish; run again with --resume`);
  const { state, problems } = got;
  const report: CheckReport = {
    id, runtime, fqrn: state.fqrn, location: state.location, revision: state.revision, tags: state.tags, warnings: state.warnings,
    problems, truncated: false, catalogs: state.totals.catalogs, entries: state.totals.entries, objects: state.totals.objects,
    bytes: state.totals.bytes, listed: state.totals.listed, slices: state.totals.slices, roots: state.roots,
    seconds: (Date.now() - started) / 1000, requests: requests(), peakMemoryMb, functions: functionUsageOfRecords(invocations),
  };
  if (problems.length > 0) throw new CheckFailedError(report);
  return report;
}

/** Store credentials and endpoints the sandboxes need, as a cloud function would get them. */
function storeEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (/^AWS_/.test(k) || k === 'S3_ENDPOINT' || k === 'SCVMFS_SCRATCH')) out[k] = v;
  }
  return out;
}

function zero(): MeterSnapshot {
  return meterSum([]);
}

/** The check found problems; `report` lists every one with its paths. */
export class CheckFailedError extends VerifyFailedError {
  constructor(override readonly report: CheckReport) {
    super(report, 'check-failed');
    this.name = 'CheckFailedError';
  }
}
