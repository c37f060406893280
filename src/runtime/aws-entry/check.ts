// Lambda entry for the check function (handler setting: dist/src/runtime/aws-entry/check.handler). The
// chain's state and findings are at .scvmfs/check/<id>/ in the store, where `scvmfs check` reads them.
import { handler as check } from '../../functions/check.js';
import { lambdaHandler } from '../aws.js';

export const handler = lambdaHandler('check', check);
