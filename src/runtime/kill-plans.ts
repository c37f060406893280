// Systematic fault injection: from one recorded run, every place that run could have been killed, so a
// test can kill every function at every checkpoint (and just before every answer) and check the retry.
import type { FunctionName } from '../functions/types.js';
import type { KillPoint } from './sandbox.js';
import type { InvocationRecord } from './stats.js';

export interface KillPlan {
  fn: FunctionName;
  /** The delivery index of `fn` to kill (InvocationRecord.index). */
  index: number;
  at: KillPoint;
}

/**
 * Each checkpoint of each successful delivery, by position, then 'before-answer'. Indices stay valid in
 * a rerun as long as the run is deterministic up to the kill (deliveries after it shift, which is fine).
 */
export function killPlansFrom(records: readonly InvocationRecord[]): KillPlan[] {
  const plans: KillPlan[] = [];
  for (const r of records) {
    if (r.outcome !== 'ok') continue;
    r.checkpoints.forEach((_, i) => plans.push({ fn: r.fn, index: r.index, at: { checkpoint: i } }));
    plans.push({ fn: r.fn, index: r.index, at: 'before-answer' });
  }
  return plans;
}

/** A `killAt` option that carries out one plan. */
export function killAtPlan(plan: KillPlan): (fn: FunctionName, invocationIndex: number) => KillPoint | undefined {
  return (fn, i) => (fn === plan.fn && i === plan.index ? plan.at : undefined);
}
