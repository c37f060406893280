// Turns a --store argument into a store. The embedded default is a local directory; `s3://` gives an S3
// bucket (with retries around it). Wrappers are stacked here and nowhere else.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectStore } from './object-store.js';
import { FsStore } from './fs-store.js';
import { S3Store, validateBucketName, validatePrefix, type S3StoreOptions } from './s3-store.js';
import { RetryingStore } from './retrying-store.js';
import { MeteredStore } from './metered-store.js';
import { RecordingStore } from './recording-store.js';

const S3_SYNTAX = 's3://<bucket>[/<prefix>][?endpoint=<url>&region=<region>&path-style=true|false&acl=none]';
const S3_PARAMS = new Set(['endpoint', 'region', 'path-style', 'acl']);

/** Parses `s3://bucket/prefix?endpoint=…&region=…&path-style=…&acl=none`; defaults from S3_ENDPOINT, AWS_REGION. */
export function parseS3Url(spec: string, env: NodeJS.ProcessEnv = process.env): S3StoreOptions {
  const bad = (why: string) => new Error(`invalid S3 store '${spec}': ${why}; expected ${S3_SYNTAX}`);
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 's3:') throw bad('the scheme is not s3');
  if (url.username || url.password) throw bad('credentials do not belong in the URL (use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)');
  if (url.port) throw bad('a port belongs in ?endpoint=');
  if (url.hash) throw bad('it has a #fragment');
  const bucket = url.hostname;
  if (!bucket) throw bad('no bucket');
  try {
    validateBucketName(bucket);
  } catch (err) {
    throw bad((err as Error).message);
  }
  let prefix: string;
  try {
    prefix = decodeURIComponent(url.pathname.replace(/^\//, '').replace(/\/$/, ''));
    validatePrefix(prefix);
  } catch (err) {
    throw bad((err as Error).message);
  }
  for (const name of url.searchParams.keys()) {
    if (!S3_PARAMS.has(name)) throw bad(`unknown parameter '${name}'`);
  }
  const endpoint = url.searchParams.get('endpoint') ?? (env.S3_ENDPOINT || undefined);
  if (endpoint !== undefined) {
    let parsed: URL | undefined;
    try { parsed = new URL(endpoint); } catch { /* reported below */ }
    if (!parsed || !/^https?:$/.test(parsed.protocol)) throw bad(`endpoint '${endpoint}' is not an http(s) URL`);
  }
  const pathStyle = url.searchParams.get('path-style');
  if (pathStyle !== null && pathStyle !== 'true' && pathStyle !== 'false') throw bad(`path-style must be true or false, not '${pathStyle}'`);
  const acl = url.searchParams.get('acl');
  if (acl !== null && acl !== 'none') throw bad(`acl can only be 'none' (no per-object ACLs; publish by bucket policy), not '${acl}'`);
  const region = url.searchParams.get('region') || env.AWS_REGION || 'us-east-1';
  return {
    bucket,
    prefix,
    endpoint,
    region,
    forcePathStyle: pathStyle !== null ? pathStyle === 'true' : endpoint !== undefined,
    objectAcls: acl !== 'none',
  };
}

function isS3(spec: string): boolean {
  return /^s3:\/\//i.test(spec);
}

/** The backend a spec names, without wrappers. */
function openBackend(spec: string): ObjectStore {
  if (spec === '') throw new Error('empty --store');
  if (isS3(spec)) return new S3Store(parseS3Url(spec));
  if (spec.startsWith('file://')) return new FsStore(fileURLToPath(spec));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new Error(`unsupported store '${spec}': give a directory path, a file:// URL or an s3:// URL`);
  }
  return new FsStore(resolve(spec));
}

/** Remote backends get retries; a local directory does not need them. */
function withRetries(backend: ObjectStore, inner: ObjectStore): ObjectStore {
  return backend instanceof S3Store ? new RetryingStore(inner) : inner;
}

export function openStore(spec: string): ObjectStore {
  const backend = openBackend(spec);
  return withRetries(backend, backend);
}

/** A store whose meter counts the requests the backend really receives (retries included). */
export function openMeteredStore(spec: string): { store: ObjectStore; meter: MeteredStore } {
  const backend = openBackend(spec);
  const meter = new MeteredStore(backend);
  return { store: withRetries(backend, meter), meter };
}

/** Creates the bucket an s3:// store lives in (an existing bucket of ours is fine). */
export async function createBucketFor(spec: string): Promise<void> {
  if (!isS3(spec)) throw new Error(`--create-bucket needs an s3:// store, not '${spec}'`);
  const store = new S3Store(parseS3Url(spec));
  try {
    await new RetryingStore(store).retryOperation('create bucket', store.bucket, () => store.createBucket());
  } finally {
    store.close();
  }
}

const sharedBackends = new Map<string, ObjectStore>();

export interface FunctionStoreOptions {
  /** Append every request to this file as a JSON line, attributed to `who` (RecordingStore). */
  recordTo?: string;
  who?: string;
}

/**
 * The store of one function invocation. The backend is one per spec for the whole process: functions in
 * a warm sandbox reuse its client and keep-alive connections instead of opening (and leaking) new ones on
 * every invocation, which is safe because a backend holds no repository state, only the means to reach
 * it. Over it: a RecordingStore when asked (tests), then a meter of this invocation's own, inside
 * retries as openMeteredStore has it, so the meter counts what the provider bills for this invocation.
 */
export function openInvocationStore(spec: string, options: FunctionStoreOptions = {}): { store: ObjectStore; meter: MeteredStore } {
  let backend = sharedBackends.get(spec);
  if (!backend) {
    backend = openBackend(spec);
    sharedBackends.set(spec, backend);
  }
  const observed = options.recordTo ? new RecordingStore(backend, options.who ?? 'unknown', options.recordTo) : backend;
  const meter = new MeteredStore(observed);
  return { store: withRetries(backend, meter), meter };
}
