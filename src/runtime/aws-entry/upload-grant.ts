// Lambda entry for the upload-grant function (handler setting: dist/src/runtime/aws-entry/upload-grant.handler).
import { handler as uploadGrant } from '../../functions/upload-grant.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('upload-grant', uploadGrant);
