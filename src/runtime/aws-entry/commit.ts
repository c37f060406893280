// Lambda entry for the commit function (handler setting: dist/src/runtime/aws-entry/commit.handler).
// The chain records how it ended beside its checkpoint, where the writer watches.
import { handler as commit, type CommitEvent } from '../../functions/commit.js';
import { commitOutcomeKey, lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('commit', commit, { chainOutcomeKey: (event: CommitEvent) => commitOutcomeKey(event.txnId) });
