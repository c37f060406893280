// Lambda entry for the commit function (handler setting: dist/src/runtime/aws-entry/commit.handler).
import { handler as commit } from '../../functions/commit.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('commit', commit);
