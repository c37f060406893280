// What an operation consumed, in the units providers bill: store requests by kind, bytes in and out,
// function invocations with their billed milliseconds. Dollars come later (bill.ts), so a ledger of usage
// can be priced again under another table.

/** Every store request kind we meter; a price table assigns each to exactly one of its request classes. */
export const STORE_REQUEST_KINDS = ['get', 'head', 'put', 'conditionalPut', 'copy', 'post', 'list', 'delete'] as const;
export type StoreRequestKind = typeof STORE_REQUEST_KINDS[number];
export type RequestCounts = Partial<Record<StoreRequestKind, number>>;

export const FUNCTION_ARCHITECTURES = ['x86_64', 'arm64'] as const;
export type FunctionArchitecture = typeof FUNCTION_ARCHITECTURES[number];

/** One function at one size: Lambda bills per invocation and per GB-second of billed duration. */
export interface FunctionUsage {
  fn: string;
  arch: FunctionArchitecture;
  /** Configured memory (what Lambda bills), not the peak used. */
  memoryMb: number;
  invocations: number;
  /** Sum over invocations of the duration rounded up to the next millisecond. */
  billedMs: number;
}

export interface Usage {
  requests: RequestCounts;
  /** Bytes read out of the store by a client outside the provider's network (billed as egress). */
  egressBytes: number;
  /** Bytes written into the store (free everywhere; shown for scale). */
  ingressBytes: number;
  functions: FunctionUsage[];
  /** Secrets Manager API calls (GetSecretValue). */
  secretCalls: number;
}

/** Billing's GB: 2^30 bytes (what AWS means for storage, transfer and Lambda memory). */
export const BYTES_PER_GB = 2 ** 30;

export function emptyUsage(): Usage {
  return { requests: {}, egressBytes: 0, ingressBytes: 0, functions: [], secretCalls: 0 };
}

/** Lambda rounds every invocation up to the next millisecond (at least 1 ms). */
export function billedDurationMs(durationMs: number): number {
  if (!Number.isFinite(durationMs) || durationMs < 0) throw new RangeError(`a duration must be a finite number ≥ 0, got ${durationMs}`);
  return Math.max(1, Math.ceil(durationMs));
}

/** The usage of `durationsMs.length` invocations of one function, each rounded up on its own. */
export function functionUsage(fn: string, durationsMs: readonly number[], memoryMb: number, arch: FunctionArchitecture = 'x86_64'): FunctionUsage {
  let billedMs = 0;
  for (const d of durationsMs) billedMs += billedDurationMs(d);
  return { fn, arch, memoryMb, invocations: durationsMs.length, billedMs };
}

/** Per-function usage from a runtime's invocation records (each with its own duration), in name order. */
export function functionUsageFromInvocations(records: readonly { fn: string; durationMs: number }[], memoryMb: number, arch: FunctionArchitecture = 'x86_64'): FunctionUsage[] {
  const byFn = new Map<string, number[]>();
  for (const r of records) {
    const list = byFn.get(r.fn) ?? [];
    list.push(r.durationMs);
    byFn.set(r.fn, list);
  }
  return [...byFn].sort(([a], [b]) => a.localeCompare(b)).map(([fn, durations]) => functionUsage(fn, durations, memoryMb, arch));
}

export function gbSeconds(f: FunctionUsage): number {
  return (f.billedMs / 1000) * (f.memoryMb / 1024);
}

/** The fields of a metered store's snapshot (src/store/metered-store.ts) that cost money. */
export interface MeterCounts {
  get: number;
  head: number;
  put: number;
  conditionalPut: number;
  list: number;
  delete: number;
  copy?: number;
  post?: number;
  /** Bytes read from the store. */
  bytesIn: number;
  /** Bytes written to the store. */
  bytesOut: number;
  /** Content-addressed objects created, and their bytes (what storage grows by). */
  objectsCreated?: number;
  bytesCreated?: number;
}

/**
 * Usage from a store meter. `readsLeaveProvider`: the reader sits outside the provider's network (a
 * publisher on a laptop: its reads are egress); false for functions running beside the bucket.
 */
export function usageFromMeter(m: MeterCounts, readsLeaveProvider = true): Usage {
  const requests: RequestCounts = {};
  for (const kind of STORE_REQUEST_KINDS) {
    const n = m[kind] ?? 0;
    if (n > 0) requests[kind] = n;
  }
  return { requests, egressBytes: readsLeaveProvider ? m.bytesIn : 0, ingressBytes: m.bytesOut, functions: [], secretCalls: 0 };
}

function functionKey(f: FunctionUsage): string {
  return `${f.fn}\0${f.arch}\0${f.memoryMb}`;
}

/** a + b, functions merged by name, architecture and memory. Neither argument changes. */
export function addUsage(a: Usage, b: Usage): Usage {
  const requests: RequestCounts = { ...a.requests };
  for (const [kind, n] of Object.entries(b.requests) as [StoreRequestKind, number][]) requests[kind] = (requests[kind] ?? 0) + n;
  const fns = new Map<string, FunctionUsage>();
  for (const f of [...a.functions, ...b.functions]) {
    const k = functionKey(f);
    const have = fns.get(k);
    fns.set(k, have ? { ...have, invocations: have.invocations + f.invocations, billedMs: have.billedMs + f.billedMs } : { ...f });
  }
  return {
    requests,
    egressBytes: a.egressBytes + b.egressBytes,
    ingressBytes: a.ingressBytes + b.ingressBytes,
    functions: [...fns.values()].sort((x, y) => functionKey(x).localeCompare(functionKey(y))),
    secretCalls: a.secretCalls + b.secretCalls,
  };
}

/** Every count multiplied by `factor` (for extrapolating an observed period to a month). */
export function scaleUsage(u: Usage, factor: number): Usage {
  const requests: RequestCounts = {};
  for (const [kind, n] of Object.entries(u.requests) as [StoreRequestKind, number][]) requests[kind] = n * factor;
  return {
    requests,
    egressBytes: u.egressBytes * factor,
    ingressBytes: u.ingressBytes * factor,
    functions: u.functions.map((f) => ({ ...f, invocations: f.invocations * factor, billedMs: f.billedMs * factor })),
    secretCalls: u.secretCalls * factor,
  };
}

/** The meters of one operation: the writer's, and those of the functions it called. */
export interface OperationMeters {
  /** The store requests of the process the command runs in. */
  writer: MeterCounts;
  /** The writer sits outside the provider's network (default true): what it reads is egress. */
  writerOutside?: boolean;
  /** The store requests of every function invocation, summed (functions run beside the bucket: no egress). */
  functionRequests?: MeterCounts;
  /** Invocations and billed time per function. */
  functions?: readonly FunctionUsage[];
  /** Requests the writer made to the store without its store client (PUTs to presigned upload URLs). */
  otherRequests?: RequestCounts;
  /** Secrets Manager calls the functions made. */
  secretCalls?: number;
}

/** Everything an operation caused, as one Usage. */
export function operationUsage(m: OperationMeters): Usage {
  let u = usageFromMeter(m.writer, m.writerOutside ?? true);
  if (m.functionRequests) u = addUsage(u, usageFromMeter(m.functionRequests, false));
  return addUsage(u, { ...emptyUsage(), requests: { ...m.otherRequests }, functions: [...(m.functions ?? [])], secretCalls: m.secretCalls ?? 0 });
}
