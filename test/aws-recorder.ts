// The AWS APIs the CLI calls (Lambda, Secrets Manager), answered on 127.0.0.1 and recorded: the real
// CLI and SDK run unchanged with AWS_ENDPOINT_URL_LAMBDA / _SECRETS_MANAGER pointing here. The only fake is
// the cloud itself.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedCall {
  service: 'lambda' | 'secretsmanager';
  /** Lambda: Invoke or UpdateFunctionConfiguration; Secrets Manager: its X-Amz-Target operation. */
  operation: string;
  functionName?: string;
  invocationType?: string;
  body: any;
}

export interface AwsRecorder {
  calls: RecordedCall[];
  env: Record<string, string>;
  close(): Promise<void>;
}

/** Every Lambda invocation is answered with this refusal, as the deployed adapter would throw it. */
export const RECORDED_REFUSAL = { name: 'RefusedError', kind: 'refused', code: 'recorded-lambda', message: 'answered by the test\'s recorded Lambda' };

function bodyOf(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (d) => { text += d; });
    req.on('end', () => resolve(text));
  });
}

export async function startAwsRecorder(): Promise<AwsRecorder> {
  const calls: RecordedCall[] = [];
  const server: Server = createServer(async (req, res) => {
    const text = await bodyOf(req);
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));
    };
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string' && target.startsWith('secretsmanager.')) {
      const body = JSON.parse(text);
      calls.push({ service: 'secretsmanager', operation: target.slice('secretsmanager.'.length), body });
      return json(200, { ARN: `arn:aws:secretsmanager:us-east-1:123456789012:secret:${body.SecretId}-AbCdEf`, Name: body.SecretId, VersionId: 'v1' });
    }
    const m = /^\/2015-03-31\/functions\/([^/]+)\/(invocations|configuration)$/.exec(req.url ?? '');
    if (m) {
      const functionName = decodeURIComponent(m[1]!);
      if (m[2] === 'configuration') {
        calls.push({ service: 'lambda', operation: 'UpdateFunctionConfiguration', functionName, body: JSON.parse(text) });
        return json(200, { FunctionName: functionName });
      }
      const invocationType = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
      calls.push({ service: 'lambda', operation: 'Invoke', functionName, invocationType, body: text === '' ? null : JSON.parse(text) });
      return json(200, { errorType: 'RefusedError', errorMessage: JSON.stringify(RECORDED_REFUSAL) }, { 'x-amz-function-error': 'Unhandled' });
    }
    json(400, { message: `the recorder does not know ${req.method} ${req.url}` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    calls,
    env: {
      AWS_ENDPOINT_URL_LAMBDA: url, AWS_ENDPOINT_URL_SECRETS_MANAGER: url,
      AWS_ACCESS_KEY_ID: 'AKIDRECORDED', AWS_SECRET_ACCESS_KEY: 'recorded', AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The environment of a CLI run against the recorder, with no other AWS settings leaking in. */
export function recordedEnv(recorder: AwsRecorder, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|S3_ENDPOINT)/.test(k)) env[k] = v;
  return { ...env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', ...recorder.env, ...extra };
}
