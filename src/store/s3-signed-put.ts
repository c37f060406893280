// The lean path for the one request per new data object: a conditional PUT signed here (AWS SigV4
// with node:crypto) and sent on a keep-alive agent, instead of through the SDK's per-request
// middleware, which took about a third of the main thread on small-file publishes. Everything else
// (reads, lists, deletes, multipart, mutable keys) stays on @aws-sdk/client-s3. Failures are shaped
// like the SDK's (name = S3 error code, $metadata.httpStatusCode) so that S3Store maps both the same.
import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest, type Agent, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface SignedPutTarget {
  /** e.g. http://127.0.0.1:7480 or https://bucket.s3.eu-west-1.amazonaws.com */
  origin: string;
  /** Path before the object key: '/<bucket>' for path style, '' for virtual-hosted. */
  basePath: string;
  region: string;
  agent: Agent;
  requestTimeoutMs: number;
  credentials: () => Promise<SigningCredentials>;
}

/** What a failed request looks like to S3Store's error mapping (the SDK's shape). */
export interface SignedPutError extends Error {
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** RFC 3986 encoding of each key segment, as SigV4 canonical URIs for S3 need (no double encoding). */
function encodePath(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export class SignedPutter {
  private readonly url: URL;
  private readonly send: typeof httpRequest;
  private signingDay = '';
  private signingKey: Buffer = Buffer.alloc(0);
  private signingSecret = '';
  private cached: SigningCredentials | null = null;

  constructor(private readonly target: SignedPutTarget) {
    this.url = new URL(target.origin);
    this.send = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
  }

  /** Credentials from the SDK's provider chain, asked again shortly before they expire. */
  private async credentials(): Promise<SigningCredentials> {
    const c = this.cached;
    if (c && (!c.expiration || c.expiration.getTime() - Date.now() > 5 * 60_000)) return c;
    this.cached = await this.target.credentials();
    return this.cached;
  }

  private keyFor(day: string, secret: string): Buffer {
    if (day !== this.signingDay || secret !== this.signingSecret) {
      const kDate = hmac(`AWS4${secret}`, day);
      this.signingKey = hmac(hmac(hmac(kDate, this.target.region), 's3'), 'aws4_request');
      this.signingDay = day;
      this.signingSecret = secret;
    }
    return this.signingKey;
  }

  /**
   * PUTs `body` under `objectKey` with these headers (lower-case names; all of them signed). Over
   * HTTPS the payload is UNSIGNED-PAYLOAD (TLS protects it, as the SDK does); over plain HTTP its
   * SHA-256 is signed. Resolves with the ETag header as sent.
   */
  async put(objectKey: string, body: Uint8Array, headers: Record<string, string>): Promise<string> {
    const creds = await this.credentials();
    const now = new Date();
    const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, '');
    const day = amzDate.slice(0, 8);
    const payloadHash = this.url.protocol === 'https:' ? 'UNSIGNED-PAYLOAD' : createHash('sha256').update(body).digest('hex');
    const path = `${this.target.basePath}/${encodePath(objectKey)}`;
    const all: Record<string, string> = {
      ...headers,
      host: this.url.host,
      'content-length': String(body.length),
      'x-amz-content-sha256': payloadHash,
      'x-amz-date': amzDate,
    };
    if (creds.sessionToken) all['x-amz-security-token'] = creds.sessionToken;
    const names = Object.keys(all).sort();
    const canonicalHeaders = names.map((n) => `${n}:${all[n]!.trim()}\n`).join('');
    const signedHeaders = names.join(';');
    const canonicalRequest = `PUT\n${path}\n\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const scope = `${day}/${this.target.region}/s3/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
    const signature = createHmac('sha256', this.keyFor(day, creds.secretAccessKey)).update(toSign).digest('hex');
    all.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;

    return new Promise<string>((resolve, reject) => {
      const req = this.send({
        protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port || undefined,
        method: 'PUT', path, headers: all, agent: this.target.agent,
      }, (res) => this.answer(res, resolve, reject));
      req.setTimeout(this.target.requestTimeoutMs, () => {
        const err: SignedPutError = new Error(`no answer within ${this.target.requestTimeoutMs} ms`);
        err.name = 'TimeoutError';
        req.destroy(err);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  private answer(res: IncomingMessage, resolve: (etag: string) => void, reject: (err: Error) => void): void {
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      res.resume();
      res.on('end', () => resolve(String(res.headers.etag ?? '')));
      res.on('error', reject);
      return;
    }
    const pieces: Buffer[] = [];
    res.on('data', (b: Buffer) => { if (pieces.length < 16) pieces.push(b); });
    res.on('error', reject);
    res.on('end', () => {
      const xml = Buffer.concat(pieces).toString('utf8');
      const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
      const message = /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];
      const err: SignedPutError = new Error(message || code || `HTTP ${status}`);
      err.name = code || (status === 412 ? 'PreconditionFailed' : 'UnknownError');
      err.$metadata = { httpStatusCode: status };
      reject(err);
    });
  }
}
