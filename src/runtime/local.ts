// The local runtime: runs the serverless steps in sandboxes limited like cloud functions (wall-clock
// timeout, memory), reuses warm sandboxes, follows `next` events, and can re-deliver events and kill
// invocations on purpose, so tests meet the failures the cloud produces. See docs/runtime.md.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FUNCTION_NAMES, type FunctionName, type FunctionResult } from '../functions/types.js';
import { FunctionError } from './errors.js';
import { ProcessSandbox } from './process-sandbox.js';
import type { KillPoint, Sandbox } from './sandbox.js';
import { addToReport, summarize, type InvocationRecord, type RuntimeReport } from './stats.js';
import { WorkerSandbox } from './worker-sandbox.js';

export { FunctionError, KilledError, type FailureKind } from './errors.js';
export type { KillPoint } from './sandbox.js';
export { killAtPlan, killPlansFrom, type KillPlan } from './kill-plans.js';
export type { FunctionStats, InvocationRecord, RuntimeReport } from './stats.js';

export interface Limits {
  timeoutMs: number;
  memoryMb: number;
}

/** Lambda's defaults. */
export const DEFAULT_LIMITS: Limits = { timeoutMs: 3_000, memoryMb: 128 };

/** Lambda's quotas: 6 MB request and response for a synchronous call, 256 KB for an asynchronous event. */
export interface PayloadLimits {
  eventBytes: number;
  resultBytes: number;
  /** A `next` event: the runtime invokes it asynchronously, as a step of a chain does on Lambda. */
  asyncEventBytes: number;
}
export const DEFAULT_PAYLOAD_LIMITS: PayloadLimits = { eventBytes: 6 * 1024 * 1024, resultBytes: 6 * 1024 * 1024, asyncEventBytes: 256 * 1024 };

export interface LocalRuntimeOptions {
  /** 'worker' (default): a worker thread per sandbox, heap limited. 'strict': a child process, total memory limited. */
  mode?: 'worker' | 'strict';
  /** The sandbox's whole environment (SCVMFS_STORE, SCVMFS_FQRN, SCVMFS_KEYS, …); nothing else is inherited. */
  env?: Record<string, string>;
  /** Limits for every function; DEFAULT_LIMITS where absent. */
  limits?: Partial<Limits>;
  /** Per-function limits, over `limits`. */
  functionLimits?: Partial<Record<FunctionName, Partial<Limits>>>;
  /** Absolute module path per function, instead of dist/src/functions/<fn>.js (toy handlers in tests). */
  modules?: Partial<Record<FunctionName, string>>;
  /** Idle sandboxes kept warm per function and memory size (default 2). */
  warmSandboxes?: number;
  /** Start a new sandbox for every invocation, so state left in module scope shows up as a bug. */
  forceColdStart?: boolean;
  /**
   * Deliver every event twice, as at-least-once delivery may: 'sequential' (the second after the first
   * ends) or 'concurrent'. The caller gets the first successful answer; both are counted.
   */
  deliverTwice?: false | 'sequential' | 'concurrent';
  /**
   * Fault injection: asked before every delivery with the function's delivery index in this runtime
   * (from 0, counting re-deliveries and retries); a KillPoint destroys the sandbox there and the
   * invocation fails with KilledError (runChain then retries it).
   */
  killAt?: (fn: FunctionName, invocationIndex: number) => KillPoint | undefined;
  payloadLimits?: Partial<PayloadLimits>;
  /** Called after every delivery (logging, custom assertions). */
  onInvocation?: (record: InvocationRecord) => void;
}

export interface RunChainOptions {
  /** A chain longer than this fails with ChainError (default 100). */
  maxSteps?: number;
  /** Failed deliveries of a step are retried this many times, like Lambda's async retries (default 2). */
  retries?: number;
  /** Which failures are retried (default: all, as Lambda does for async invocations). */
  retryOn?: (error: FunctionError) => boolean;
}

export interface ChainOutcome {
  /** The `result` of the step that returned no `next`. */
  result: unknown;
  /** The functions of the completed steps, in order. */
  path: FunctionName[];
  /** Every delivery of this chain: re-deliveries, kills and retries included. */
  records: InvocationRecord[];
  report: RuntimeReport;
}

/** A chain that could not finish; `records`/`report` say what ran before it stopped. */
export class ChainError extends Error {
  constructor(message: string, readonly records: InvocationRecord[], readonly report: RuntimeReport, override readonly cause?: FunctionError) {
    super(message);
    this.name = 'ChainError';
  }
}

type Delivery = { result: FunctionResult; error?: undefined } | { result?: undefined; error: FunctionError };

const MB = 1024 * 1024;

export class LocalRuntime {
  private readonly idle = new Map<string, Sandbox[]>();
  private readonly live = new Set<Sandbox>();
  /** Sandboxes being destroyed in the background, so that an answer never waits for a teardown. */
  private readonly closing = new Set<Promise<void>>();
  private readonly deliveries = new Map<FunctionName, number>();
  private readonly totals: RuntimeReport = {};
  private readonly payload: PayloadLimits;
  private closed = false;

  constructor(private readonly options: LocalRuntimeOptions = {}) {
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (typeof v !== 'string') throw new TypeError(`env.${k} must be a string, got ${typeof v}`);
    }
    for (const fn of Object.keys(options.modules ?? {})) checkName(fn);
    this.payload = { ...DEFAULT_PAYLOAD_LIMITS, ...options.payloadLimits };
  }

  /** One synchronous invocation (twice with deliverTwice); rejects with FunctionError. */
  async invoke(fn: FunctionName, event: unknown, limits: Partial<Limits> = {}): Promise<FunctionResult> {
    const d = await this.deliver(fn, event, this.eventJson(fn, event, this.payload.eventBytes), limits, []);
    if (d.error) throw d.error;
    return d.result;
  }

  /** Invoke `fn`, then each `next` event in turn, until a step answers without `next`. */
  async runChain(fn: FunctionName, event: unknown, options: RunChainOptions = {}): Promise<ChainOutcome> {
    const maxSteps = options.maxSteps ?? 100;
    const retries = options.retries ?? 2;
    const retryOn = options.retryOn ?? (() => true);
    const records: InvocationRecord[] = [];
    const path: FunctionName[] = [];
    let step = { fn, json: this.eventJson(fn, event, this.payload.eventBytes), event };
    for (;;) {
      if (path.length >= maxSteps) {
        throw new ChainError(`chain from ${fn} did not finish within ${maxSteps} steps (next: ${step.fn})`, records, summarize(records));
      }
      let d: Delivery | undefined;
      let attempts = 0;
      while (attempts <= retries) {
        attempts++;
        d = await this.deliver(step.fn, step.event, step.json, {}, records);
        if (!d.error || !retryOn(d.error)) break;
      }
      if (d!.error) {
        throw new ChainError(`chain step ${path.length + 1} (${step.fn}) failed after ${attempts} attempt(s): ${d!.error.message}`,
          records, summarize(records), d!.error);
      }
      path.push(step.fn);
      const next = d!.result!.next;
      if (!next) return { result: d!.result!.result, path, records, report: summarize(records) };
      let json: string;
      try {
        json = this.eventJson(next.fn, next.event, this.payload.asyncEventBytes);
      } catch (err) {
        throw new ChainError(`chain step ${path.length} (${step.fn}) returned a bad next event: ${(err as Error).message}`, records, summarize(records));
      }
      step = { fn: next.fn, json, event: next.event };
    }
  }

  /** Totals over every delivery since the runtime was made. */
  report(): RuntimeReport {
    return structuredClone(this.totals);
  }

  /** Destroy every sandbox, busy or idle; pending invocations fail. The runtime cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.live];
    this.live.clear();
    this.idle.clear();
    await Promise.all([...all.map((s) => s.close()), ...this.closing]);
  }

  private limitsOf(fn: FunctionName, override: Partial<Limits>): Limits {
    const l = { ...DEFAULT_LIMITS, ...this.options.limits, ...this.options.functionLimits?.[fn], ...override };
    if (!Number.isInteger(l.memoryMb) || l.memoryMb < 128 || l.memoryMb > 10_240) {
      throw new RangeError(`memoryMb for ${fn} must be an integer from 128 to 10240 (Lambda's range), got ${l.memoryMb}`);
    }
    if (!Number.isFinite(l.timeoutMs) || l.timeoutMs <= 0 || l.timeoutMs > 900_000) {
      throw new RangeError(`timeoutMs for ${fn} must be above 0 and at most 900000 (15 minutes), got ${l.timeoutMs}`);
    }
    return l;
  }

  private eventJson(fn: FunctionName, event: unknown, maxBytes: number): string {
    checkName(fn);
    const json = event === undefined ? '{}' : JSON.stringify(event);
    if (json === undefined) throw new TypeError(`the event for ${fn} is not JSON-serializable`);
    const bytes = Buffer.byteLength(json);
    if (bytes > maxBytes) throw new RangeError(`the event for ${fn} is ${bytes} bytes of JSON, above the ${maxBytes}-byte limit`);
    return json;
  }

  /** One event, delivered once or twice; the first success wins. */
  private async deliver(fn: FunctionName, event: unknown, json: string, override: Partial<Limits>, sink: InvocationRecord[]): Promise<Delivery> {
    if (this.closed) throw new Error('LocalRuntime is closed');
    const limits = this.limitsOf(fn, override);
    const once = () => this.deliverOnce(fn, json, limits, sink);
    let answers: Delivery[];
    switch (this.options.deliverTwice) {
      case 'sequential': answers = [await once(), await once()]; break;
      case 'concurrent': answers = await Promise.all([once(), once()]); break;
      default: answers = [await once()];
    }
    return answers.find((a) => !a.error) ?? answers[0]!;
  }

  private async deliverOnce(fn: FunctionName, json: string, limits: Limits, sink: InvocationRecord[]): Promise<Delivery> {
    const index = this.deliveries.get(fn) ?? 0;
    this.deliveries.set(fn, index + 1);
    const kill = this.options.killAt?.(fn, index);
    const requestId = randomUUID();
    const record: InvocationRecord = { fn, index, requestId, outcome: 'ok', cold: false, initMs: 0, durationMs: 0, memoryMb: limits.memoryMb, peakMemoryMb: 0, checkpoints: [] };
    let delivery: Delivery;
    let sandbox: Sandbox | undefined;
    try {
      const got = await this.acquire(fn, limits.memoryMb);
      sandbox = got.sandbox;
      record.cold = got.cold;
      record.initMs = got.cold ? sandbox.initMs : 0;
      const end = await sandbox.invoke({ requestId, event: json, timeoutMs: limits.timeoutMs, kill });
      record.durationMs = end.durationMs;
      record.peakMemoryMb = end.peakMemoryBytes / MB;
      record.checkpoints = end.checkpoints;
      if (end.requests) record.requests = end.requests;
      delivery = end.error ? { error: end.error } : this.parseAnswer(fn, end.payload!);
    } catch (err) {
      if (!(err instanceof FunctionError)) throw err;
      record.cold = true;
      delivery = { error: err };
    } finally {
      if (sandbox) this.release(sandbox);
    }
    if (delivery.error) {
      record.outcome = delivery.error.kind;
      record.error = delivery.error.message;
      if (delivery.error.kind === 'out-of-memory') record.peakMemoryMb = Math.max(record.peakMemoryMb, limits.memoryMb);
    }
    sink.push(record);
    addToReport(this.totals, record);
    this.options.onInvocation?.(record);
    return delivery;
  }

  private parseAnswer(fn: FunctionName, payload: string): Delivery {
    const bytes = Buffer.byteLength(payload);
    if (bytes > this.payload.resultBytes) {
      return { error: new FunctionError('error', fn, 'Function.ResponseSizeTooLarge', `the response is ${bytes} bytes, above the ${this.payload.resultBytes}-byte limit`) };
    }
    const answer = JSON.parse(payload) as unknown;
    if (answer === null) return { result: {} };
    const bad = (why: string): Delivery => ({ error: new FunctionError('error', fn, 'Runtime.InvalidResult', `the handler's answer ${why}`) });
    if (typeof answer !== 'object' || Array.isArray(answer)) return bad('is not an object { result?, next? }');
    const next = (answer as FunctionResult).next;
    if (next !== undefined && (typeof next !== 'object' || next === null || !(FUNCTION_NAMES as readonly string[]).includes(next.fn))) {
      return bad(`names no known function in next (${JSON.stringify(next)?.slice(0, 100)})`);
    }
    return { result: answer as FunctionResult };
  }

  private async acquire(fn: FunctionName, memoryMb: number): Promise<{ sandbox: Sandbox; cold: boolean }> {
    const pool = this.idle.get(poolKey(fn, memoryMb));
    for (let s = pool?.pop(); s; s = pool?.pop()) {
      if (!s.dead) return { sandbox: s, cold: false };
      this.live.delete(s);
    }
    const modulePath = this.modulePath(fn);
    const env = { ...this.options.env, AWS_LAMBDA_FUNCTION_NAME: fn, AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memoryMb) };
    const sandbox = this.options.mode === 'strict'
      ? new ProcessSandbox(fn, memoryMb, modulePath, env)
      : new WorkerSandbox(fn, memoryMb, modulePath, env);
    this.live.add(sandbox);
    try {
      await sandbox.ready();
    } catch (err) {
      this.live.delete(sandbox);
      await sandbox.close();
      throw err;
    }
    return { sandbox, cold: true };
  }

  private release(s: Sandbox): void {
    const key = poolKey(s.fn, s.memoryMb);
    const pool = this.idle.get(key) ?? [];
    if (s.dead || this.closed || this.options.forceColdStart || pool.length >= (this.options.warmSandboxes ?? 2)) {
      this.live.delete(s);
      const closing: Promise<void> = s.close().finally(() => this.closing.delete(closing));
      this.closing.add(closing);
      return;
    }
    pool.push(s);
    this.idle.set(key, pool);
  }

  private modulePath(fn: FunctionName): string {
    const path = this.options.modules?.[fn] ?? fileURLToPath(new URL(`../functions/${fn}.js`, import.meta.url));
    if (!existsSync(path)) {
      throw new FunctionError('init', fn, 'Runtime.ImportModuleError', `Runtime.ImportModuleError: no handler module at ${path}`);
    }
    return path;
  }
}

function poolKey(fn: FunctionName, memoryMb: number): string {
  return `${fn}/${memoryMb}`;
}

function checkName(fn: string): asserts fn is FunctionName {
  if (!(FUNCTION_NAMES as readonly string[]).includes(fn)) {
    throw new TypeError(`unknown function '${fn}'; known: ${FUNCTION_NAMES.join(', ')}`);
  }
}
