// Lambda entry for the lease function (handler setting: dist/src/runtime/aws-entry/lease.handler).
import { handler as lease } from '../../functions/lease.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('lease', lease);
