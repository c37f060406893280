// Lambda entry for the replicate function (handler setting: dist/src/runtime/aws-entry/replicate.handler).
import { handler as replicate } from '../../functions/replicate.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('replicate', replicate);
