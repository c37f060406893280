// The S3 server the tests use: `npm test` starts a local Ceph radosgw and exports its address and keys.
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { S3Store, type S3StoreOptions } from '../src/store/s3-store.js';

export interface S3TestConfig {
  endpoint: string;
  region: string;
}

/** The S3 server from the environment; fails clearly when the tests were not started by `npm test`. */
export function s3Config(): S3TestConfig {
  const endpoint = process.env.S3_ENDPOINT;
  const missing = ['S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'].filter((v) => !process.env[v]);
  if (!endpoint || missing.length > 0) {
    throw new Error(`S3 tests need ${missing.join(', ')}: run them with 'npm test' (starts a local radosgw), ` +
      `or 'eval "$(npm run -s s3:start)"' first`);
  }
  return { endpoint, region: process.env.AWS_REGION || 'us-east-1' };
}

export interface TestBucket {
  bucket: string;
  config: S3TestConfig;
  /** A store on this bucket under `prefix`; closed after the test file. */
  store(prefix?: string, options?: Partial<S3StoreOptions>): S3Store;
  /** An s3:// URL for openStore. */
  url(prefix?: string): string;
  /** Where anonymous HTTP clients read `prefix` (path-style). */
  publicUrl(prefix?: string): string;
}

/** A new, empty bucket for one test file. */
export async function freshBucket(label: string): Promise<TestBucket> {
  const config = s3Config();
  const bucket = `t-${label.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 30)}-${randomBytes(4).toString('hex')}`;
  const stores: S3Store[] = [];
  after(() => { for (const s of stores) s.close(); });
  const make = (prefix = '', options: Partial<S3StoreOptions> = {}) => {
    const s = new S3Store({ bucket, prefix, endpoint: config.endpoint, region: config.region, ...options });
    stores.push(s);
    return s;
  };
  await make().createBucket();
  return {
    bucket,
    config,
    store: make,
    url: (prefix = '') => `s3://${bucket}${prefix ? `/${prefix}` : ''}?endpoint=${encodeURIComponent(config.endpoint)}`,
    publicUrl: (prefix = '') => `${config.endpoint}/${bucket}${prefix ? `/${prefix}` : ''}`,
  };
}
