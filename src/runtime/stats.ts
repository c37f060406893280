// What each invocation cost and how it ended, and the per-function sums a chain or a runtime reports.
import type { FunctionName } from '../functions/types.js';
import { meterSum, type MeterSnapshot } from '../store/metered-store.js';
import type { FailureKind } from './errors.js';

export interface InvocationRecord {
  fn: FunctionName;
  /** Per-function count of deliveries in this runtime, from 0; the index `killAt` is asked about. */
  index: number;
  requestId: string;
  outcome: 'ok' | FailureKind;
  /** The sandbox was started for this invocation. */
  cold: boolean;
  /** Spawn to module loaded, for a cold start. */
  initMs: number;
  /** Handler time, from the invoke message to the answer (or the kill). */
  durationMs: number;
  /** The configured memory the invocation ran with (what Lambda bills GB-s by). */
  memoryMb: number;
  /** Heap+external in worker mode, peak RSS in strict mode (0 when not measurable). */
  peakMemoryMb: number;
  checkpoints: string[];
  /** The error message, for a failure. */
  error?: string;
  /** Store requests the handler made (absent when the sandbox was destroyed before it answered). */
  requests?: MeterSnapshot;
}

export interface FunctionStats {
  invocations: number;
  failures: number;
  errors: number;
  timeouts: number;
  outOfMemory: number;
  killed: number;
  crashed: number;
  initFailures: number;
  coldStarts: number;
  totalDurationMs: number;
  maxDurationMs: number;
  peakMemoryMb: number;
  /** Store requests of every invocation that reported them. */
  requests: MeterSnapshot;
}

export type RuntimeReport = Partial<Record<FunctionName, FunctionStats>>;

const FAILURE_FIELD: Record<FailureKind, keyof FunctionStats> = {
  error: 'errors', timeout: 'timeouts', 'out-of-memory': 'outOfMemory', killed: 'killed', crashed: 'crashed', init: 'initFailures',
};

export function addToReport(report: RuntimeReport, r: InvocationRecord): void {
  const s = report[r.fn] ??= {
    invocations: 0, failures: 0, errors: 0, timeouts: 0, outOfMemory: 0, killed: 0, crashed: 0, initFailures: 0,
    coldStarts: 0, totalDurationMs: 0, maxDurationMs: 0, peakMemoryMb: 0, requests: meterSum([]),
  };
  s.invocations++;
  if (r.outcome !== 'ok') {
    s.failures++;
    s[FAILURE_FIELD[r.outcome]]++;
  }
  if (r.cold) s.coldStarts++;
  s.totalDurationMs += r.durationMs;
  s.maxDurationMs = Math.max(s.maxDurationMs, r.durationMs);
  s.peakMemoryMb = Math.max(s.peakMemoryMb, r.peakMemoryMb);
  if (r.requests) s.requests = meterSum([s.requests, r.requests]);
}

export function summarize(records: readonly InvocationRecord[]): RuntimeReport {
  const report: RuntimeReport = {};
  for (const r of records) addToReport(report, r);
  return report;
}
