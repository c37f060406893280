// Lambda entry for the resign function (handler setting: dist/src/runtime/aws-entry/resign.handler).
import { handler as resign } from '../../functions/resign.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('resign', resign);
