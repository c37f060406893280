// What every checkpointed chain of functions shares (commit, gc, check, replicate). A chain's state is one
// JSON object in the control area, advanced only by compare-and-swap on its ETag: a step killed anywhere,
// or delivered twice, repeats harmlessly, because only the delivery holding the current ETag may write
// the next state, and the other one learns it was superseded. A step hands over (returns `next`) before
// its sandbox's time or memory runs out, so no step depends on the limits being generous.
import { PreconditionFailedError, type ObjectStore } from '../store/object-store.js';
import type { FunctionContext } from './types.js';

/** Another delivery of this step advanced the chain first: this one must stop without writing. */
export class SupersededError extends Error {
  constructor(message = 'another delivery of this step advanced the chain') {
    super(message);
    this.name = 'SupersededError';
  }
}

export interface ChainState<S> {
  state: S;
  etag: string;
}

export async function readChainState<S>(store: ObjectStore, key: string): Promise<ChainState<S> | null> {
  const got = await store.get(key);
  if (!got) return null;
  let state: S;
  try {
    state = JSON.parse(got.body.toString('utf8')) as S;
  } catch (err) {
    throw new Error(`chain state ${key} is not JSON: ${(err as Error).message}`);
  }
  return { state, etag: got.etag };
}

/** Writes the next state: create-only when `etag` is null, else only over that ETag. */
export async function writeChainState<S>(store: ObjectStore, key: string, state: S, etag: string | null): Promise<string> {
  try {
    const r = await store.put(key, Buffer.from(JSON.stringify(state)), etag === null ? { ifNoneMatch: '*' } : { ifMatch: etag });
    return r.etag;
  } catch (err) {
    if (err instanceof PreconditionFailedError) throw new SupersededError();
    throw err;
  }
}

/** This sandbox's own memory: its heap and buffers (in a worker thread, RSS would be the whole host's). */
export function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

export interface BudgetShares {
  /** Fraction of the invocation's remaining time at the start that the work may use (the rest hands over). */
  time: number;
  /** Fraction of the configured memory the work may reach. */
  memory: number;
}

/** When a step must stop working and hand over: a share of its time and of its memory. */
export class SliceBudget {
  private readonly startedWith: number;

  constructor(private readonly context: FunctionContext, private readonly shares: BudgetShares = { time: 0.5, memory: 0.7 }) {
    this.startedWith = context.getRemainingTimeInMillis();
  }

  /** Milliseconds of work this step has had. */
  elapsed(): number {
    return this.startedWith - this.context.getRemainingTimeInMillis();
  }

  timeSpent(): boolean {
    return this.elapsed() > this.startedWith * this.shares.time;
  }

  memorySpent(): boolean {
    return memoryInUse() > this.context.memoryLimitInMB * 1024 * 1024 * this.shares.memory;
  }

  spent(): boolean {
    return this.timeSpent() || this.memorySpent();
  }
}
