// Lambda entry for the commit function (handler setting: dist/src/runtime/aws-entry/commit.handler).
// The chain records how it ended beside its checkpoint, where the writer watches; a delivery that lost
// to its twin ('superseded') leaves the chain to the winner.
import { handler as commit, type CommitEvent, type CommitResultBody } from '../../functions/commit.js';
import { commitOutcomeKey, lambdaHandler, type AwsRuntimeOptions } from '../aws.js';

/** The commit function on Lambda; tests pass their own clients. */
export function commitEntry(options: AwsRuntimeOptions = {}) {
  return lambdaHandler('commit', commit, {
    ...options,
    chainOutcome: {
      key: (event: CommitEvent) => commitOutcomeKey(event.txnId),
      ends: (result) => (result as CommitResultBody | null)?.status !== 'superseded',
    },
  });
}

export const handler = commitEntry();
