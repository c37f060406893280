// Lambda entry for the abort function (handler setting: dist/src/runtime/aws-entry/abort.handler).
import { handler as abort } from '../../functions/abort.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('abort', abort);
