// The runtime's side of one sandbox: one invocation at a time, a wall-clock timer that destroys the
// sandbox, kill injection, and the mapping of the sandbox's death to a Lambda-shaped error. Subclasses
// supply the container (worker thread or child process) and how memory is limited and measured.
import { performance } from 'node:perf_hooks';
import type { FunctionName } from '../functions/types.js';
import { FunctionError, KilledError, timeoutError } from './errors.js';
import type { FromSandbox, MemoryReport, ToSandbox } from './protocol.js';

/**
 * Where fault injection kills an invocation: milliseconds after the handler is invoked; the handler's
 * n-th checkpoint (from 0) or first checkpoint of that name (src/functions/checkpoint.ts); or
 * 'before-answer': the handler ran to the end but its answer is lost, as when a sandbox dies on the way out.
 */
export type KillPoint = number | { checkpoint: number | string } | 'before-answer';

export interface InvocationPlan {
  requestId: string;
  /** JSON text of the event. */
  event: string;
  timeoutMs: number;
  kill?: KillPoint;
}

/** An invocation's end; never a rejection, so failures carry their measurements too. */
export interface SandboxOutcome {
  /** JSON text of the handler's answer, when it returned one. */
  payload?: string;
  error?: FunctionError;
  durationMs: number;
  peakMemoryBytes: number;
  /** Checkpoint names the handler passed, in order. */
  checkpoints: string[];
}

/** Lambda gives a sandbox's init phase (module load) 10 s, apart from the function's own timeout. */
export const INIT_TIMEOUT_MS = 10_000;

interface Pending {
  id: number;
  plan: InvocationPlan;
  started: number;
  checkpoints: string[];
  timers: NodeJS.Timeout[];
  resolve: (o: SandboxOutcome) => void;
}

let nextInvocationId = 1;

export abstract class Sandbox {
  /** Set once the container is gone or being destroyed; a dead sandbox is never reused. */
  dead = false;
  /** Milliseconds from spawn to the module loaded (the cold-start cost). */
  initMs = 0;
  private pending: Pending | undefined;
  private readyWaiter: { resolve: () => void; reject: (e: FunctionError) => void } | undefined;

  constructor(readonly fn: FunctionName, readonly memoryMb: number) {}

  protected abstract post(m: ToSandbox): void;
  /** Kill the container now; idempotent. */
  protected abstract destroy(): void;
  /** Keep the caller's event loop alive only while an invocation runs, so idle warm sandboxes don't. */
  protected abstract hold(busy: boolean): void;
  protected abstract beginMeasure(): void;
  /** Peak memory of the invocation that just ended; `reported` is what the sandbox said, if it answered. */
  protected abstract endMeasure(reported: MemoryReport | undefined): number;
  /** Destroy the container and wait until it is gone. */
  abstract close(): Promise<void>;

  /** Resolves when the handler module is loaded; rejects (and destroys the sandbox) if it cannot be. */
  ready(): Promise<void> {
    const started = performance.now();
    this.hold(true);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiter = undefined;
        this.dead = true;
        this.destroy();
        reject(new FunctionError('init', this.fn, 'Runtime.InitTimeout', `the handler module did not load within ${INIT_TIMEOUT_MS / 1000} s`));
      }, INIT_TIMEOUT_MS);
      this.readyWaiter = {
        resolve: () => { clearTimeout(timer); this.initMs = performance.now() - started; this.hold(false); resolve(); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  invoke(plan: InvocationPlan): Promise<SandboxOutcome> {
    if (this.dead || this.pending) throw new Error(`internal: sandbox for ${this.fn} is ${this.dead ? 'dead' : 'busy'}`);
    return new Promise<SandboxOutcome>((resolve) => {
      const id = nextInvocationId++;
      const started = performance.now();
      const p: Pending = { id, plan, started, checkpoints: [], timers: [], resolve };
      this.pending = p;
      this.hold(true);
      this.beginMeasure();
      p.timers.push(setTimeout(() => this.abort(timeoutError(this.fn, plan.timeoutMs)), plan.timeoutMs));
      if (typeof plan.kill === 'number') {
        const at = plan.kill;
        p.timers.push(setTimeout(() => this.abort(new KilledError(this.fn, `killed by fault injection ${at} ms into request ${plan.requestId}`)), at));
      }
      this.post({
        type: 'invoke', id, requestId: plan.requestId, event: plan.event,
        deadline: Date.now() + plan.timeoutMs,
        pauseAtCheckpoints: typeof plan.kill === 'object',
      });
    });
  }

  protected onMessage(m: FromSandbox): void {
    switch (m.type) {
      case 'ready':
        this.readyWaiter?.resolve();
        this.readyWaiter = undefined;
        return;
      case 'init-error':
        this.failInit(new FunctionError('init', this.fn, m.errorType, `${m.errorType}: ${m.errorMessage}`));
        return;
      case 'checkpoint':
        this.onCheckpoint(m.id, m.name);
        return;
      case 'result':
      case 'error':
        if (this.pending?.id !== m.id) return;
        if (this.pending.plan.kill === 'before-answer') {
          this.abort(new KilledError(this.fn, `killed by fault injection after the handler of request ${this.pending.plan.requestId} finished, before its answer`));
          return;
        }
        if (m.type === 'result') {
          this.finish({ payload: m.payload }, m.memory);
        } else {
          this.finish({ error: new FunctionError('error', this.fn, m.errorType, `${m.errorType}: ${m.errorMessage}`, m.stack, m.error) }, m.memory);
        }
        return;
    }
  }

  /** The container is gone; `error` says why, for an invocation or an init that was still waiting. */
  protected died(error: FunctionError): void {
    this.dead = true;
    if (this.readyWaiter) this.failInit(error);
    if (this.pending) this.finish({ error }, undefined);
  }

  private failInit(error: FunctionError): void {
    const waiter = this.readyWaiter;
    this.readyWaiter = undefined;
    this.dead = true;
    this.destroy();
    waiter?.reject(error);
  }

  private onCheckpoint(id: number, name: string): void {
    const p = this.pending;
    if (!p || p.id !== id) return;
    const index = p.checkpoints.length;
    p.checkpoints.push(name);
    const kill = p.plan.kill;
    if (typeof kill !== 'object') return;
    if (kill.checkpoint === index || kill.checkpoint === name) {
      this.abort(new KilledError(this.fn, `killed by fault injection at checkpoint #${index} '${name}' of request ${p.plan.requestId}`));
    } else {
      this.post({ type: 'continue', id });
    }
  }

  /** Stop the invocation from outside: the sandbox cannot be trusted to stop by itself, so it is destroyed. */
  private abort(error: FunctionError): void {
    if (!this.pending) return;
    this.dead = true;
    this.finish({ error }, undefined);
    this.destroy();
  }

  private finish(end: { payload?: string; error?: FunctionError }, reported: MemoryReport | undefined): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    for (const t of p.timers) clearTimeout(t);
    const peakMemoryBytes = this.endMeasure(reported);
    if (!this.dead) this.hold(false);
    p.resolve({ ...end, durationMs: performance.now() - p.started, peakMemoryBytes, checkpoints: p.checkpoints });
  }
}
