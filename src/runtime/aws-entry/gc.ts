// Lambda entry for the gc function (handler setting: dist/src/runtime/aws-entry/gc.handler): a chain
// that continues itself step by step, started by hand or by the stack's schedule.
import { handler as gc } from '../../functions/gc.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('gc', gc);
