// Leases on repository sub-paths (design §5 step 1): the signed request a publisher sends, and the lease
// table the lease function keeps. Pure: the table is changed here, stored by repo/leases.ts.
import { ScvmfsError } from '../errors.js';
import { randomBytes, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';
import { assertPublisherName, pathsOverlap, pathWithin, scopePath } from './publisher-policy.js';
import { signDocument, type SignedDocument } from './signed-document.js';

export const LEASE_REQUEST_TYPE = 'scvmfs-lease-request';
export const LEASE_TABLE_FORMAT = 'scvmfs-leases-1';
/** The longest lease one request or renewal may ask for (the gateway's default max_lease_time is 2 h). */
export const MAX_LEASE_SECONDS = 7200;
/** A signed request is accepted this long after (or, for clock skew, before) its issuedAt. */
export const REQUEST_MAX_AGE_SECONDS = 300;

/** What a publisher signs to ask for a lease. keyId of the envelope = publisher. */
export interface LeaseRequest {
  fqrn: string;
  publisher: string;
  /** Sub-path, canonical with '/' for the whole repository. */
  path: string;
  ttlSeconds: number;
  /** Unique per request: a re-delivered request (same id) gets the same lease back. */
  requestId: string;
  /** ISO time of signing; stale requests are refused so a copied request cannot be replayed later. */
  issuedAt: string;
}

export interface LeaseRecord {
  leaseId: string;
  publisher: string;
  path: string;
  /** The holder's secret for renew, release and commit. The table lives in the private control part. */
  token: string;
  requestId: string;
  ttlSeconds: number;
  acquiredAt: string;
  expiresAt: string;
}

/** A request id already used, remembered until a copy of its request would be refused as stale anyway. */
export interface UsedRequest {
  publisher: string;
  requestId: string;
  leaseId: string;
  forgetAt: string;
}

export interface LeaseTable {
  format: typeof LEASE_TABLE_FORMAT;
  /** Increases with every write, so each write's bytes (and ETag) differ. */
  serial: number;
  leases: LeaseRecord[];
  usedRequests: UsedRequest[];
}

export type LeaseErrorCode =
  | 'bad-request' | 'not-found' | 'expired' | 'wrong-token' | 'wrong-publisher' | 'path-outside' | 'request-used' | 'stale-request';

export class LeaseError extends ScvmfsError {
  declare readonly code: LeaseErrorCode;
  constructor(code: LeaseErrorCode, message: string) {
    super(code === 'stale-request' || code === 'request-used' ? 'busy' : 'refused', code, message);
    this.name = 'LeaseError';
  }
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{8,128}$/;

export function emptyLeaseTable(): LeaseTable {
  return { format: LEASE_TABLE_FORMAT, serial: 0, leases: [], usedRequests: [] };
}

function checkTtl(ttl: unknown): number {
  if (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_LEASE_SECONDS) {
    throw new LeaseError('bad-request', `ttlSeconds must be a whole number from 1 to ${MAX_LEASE_SECONDS}, got ${JSON.stringify(ttl)}`);
  }
  return ttl as number;
}

export function validateLeaseRequest(body: unknown): LeaseRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new LeaseError('bad-request', 'lease request must be a JSON object');
  const r = body as Record<string, unknown>;
  if (typeof r.fqrn !== 'string' || r.fqrn === '') throw new LeaseError('bad-request', 'lease request has no fqrn');
  try {
    assertPublisherName(r.publisher);
  } catch (e) {
    throw new LeaseError('bad-request', `lease request: ${(e as Error).message}`);
  }
  let path: string;
  try {
    path = scopePath(r.path as string);
  } catch (e) {
    throw new LeaseError('bad-request', `lease request path: ${(e as Error).message}`);
  }
  if (path !== r.path) throw new LeaseError('bad-request', `lease request path ${JSON.stringify(r.path)} is not canonical (expected ${JSON.stringify(path)})`);
  const ttlSeconds = checkTtl(r.ttlSeconds);
  if (typeof r.requestId !== 'string' || !REQUEST_ID_RE.test(r.requestId)) {
    throw new LeaseError('bad-request', 'lease request needs a requestId of 8–128 letters, digits, . _ : -');
  }
  if (typeof r.issuedAt !== 'string' || Number.isNaN(Date.parse(r.issuedAt))) throw new LeaseError('bad-request', 'lease request has no valid issuedAt time');
  return { fqrn: r.fqrn, publisher: r.publisher, path, ttlSeconds, requestId: r.requestId, issuedAt: r.issuedAt };
}

/** Signs a lease request with a publisher key (what the writer sends to the lease function). */
export function signLeaseRequest(
  key: { name: string; privateKeyPem: string | KeyObject },
  o: { fqrn: string; path: string; ttlSeconds: number; requestId?: string; now?: Date },
): SignedDocument<LeaseRequest> {
  const body: LeaseRequest = {
    fqrn: o.fqrn, publisher: key.name, path: scopePath(o.path), ttlSeconds: checkTtl(o.ttlSeconds),
    requestId: o.requestId ?? randomUUID(), issuedAt: (o.now ?? new Date()).toISOString(),
  };
  return signDocument(LEASE_REQUEST_TYPE, validateLeaseRequest(body), key.privateKeyPem, key.name);
}

export function checkRequestFreshness(request: LeaseRequest, now: Date): void {
  const ageSeconds = (now.getTime() - Date.parse(request.issuedAt)) / 1000;
  if (Math.abs(ageSeconds) > REQUEST_MAX_AGE_SECONDS) {
    throw new LeaseError('stale-request', `lease request ${request.requestId} was signed at ${request.issuedAt}, ` +
      `${Math.round(Math.abs(ageSeconds))} s ${ageSeconds > 0 ? 'ago' : 'in the future'}; requests are accepted for ` +
      `${REQUEST_MAX_AGE_SECONDS} s (check the clock, sign a new request)`);
  }
}

export function parseLeaseTable(bytes: Uint8Array): LeaseTable {
  let t: LeaseTable;
  try {
    t = JSON.parse(Buffer.from(bytes).toString('utf8')) as LeaseTable;
  } catch (e) {
    throw new Error(`lease table is not JSON: ${(e as Error).message}`);
  }
  if (t?.format !== LEASE_TABLE_FORMAT || !Array.isArray(t.leases) || !Array.isArray(t.usedRequests) || !Number.isSafeInteger(t.serial)) {
    throw new Error(`lease table is not a ${LEASE_TABLE_FORMAT} document`);
  }
  return t;
}

export function serializeLeaseTable(table: LeaseTable): Buffer {
  return Buffer.from(JSON.stringify(table, null, 1) + '\n', 'utf8');
}

export function secondsRemaining(lease: LeaseRecord, now: Date): number {
  return Math.max(0, Math.ceil((Date.parse(lease.expiresAt) - now.getTime()) / 1000));
}

export function isLive(lease: LeaseRecord, now: Date): boolean {
  return Date.parse(lease.expiresAt) > now.getTime();
}

/** Drops expired leases and forgotten request ids; returns the table and the leases it dropped. */
export function pruneLeaseTable(table: LeaseTable, now: Date): { table: LeaseTable; expired: LeaseRecord[] } {
  const expired = table.leases.filter((l) => !isLive(l, now));
  return {
    table: {
      ...table,
      leases: table.leases.filter((l) => isLive(l, now)),
      usedRequests: table.usedRequests.filter((u) => Date.parse(u.forgetAt) > now.getTime()),
    },
    expired,
  };
}

/** The public view of a lease: everything but the token. */
export type LeaseInfo = Omit<LeaseRecord, 'token'> & { secondsRemaining: number };

export function leaseInfo(lease: LeaseRecord, now: Date): LeaseInfo {
  const { token: _token, ...rest } = lease;
  return { ...rest, secondsRemaining: secondsRemaining(lease, now) };
}

export type AcquireDecision =
  | { kind: 'acquired'; table: LeaseTable; lease: LeaseRecord; tookOver: LeaseRecord[] }
  | { kind: 'repeated'; lease: LeaseRecord }
  | { kind: 'busy'; holder: LeaseRecord; message: string };

/**
 * Decides an acquire against the current table: the same request again gets its lease back; a live
 * lease on the same path, an ancestor or a descendant refuses it (path_busy); expired leases are dropped.
 */
export function decideAcquire(current: LeaseTable, request: LeaseRequest, now: Date): AcquireDecision {
  const used = current.usedRequests.find((u) => u.publisher === request.publisher && u.requestId === request.requestId);
  if (used) {
    const lease = current.leases.find((l) => l.leaseId === used.leaseId);
    if (lease && isLive(lease, now)) {
      if (lease.path !== request.path) {
        throw new LeaseError('request-used', `request id ${request.requestId} was already used for a lease on ${lease.path}`);
      }
      return { kind: 'repeated', lease };
    }
    throw new LeaseError('request-used', `lease request ${request.requestId} was already used for lease ${used.leaseId}, ` +
      'which has since been released or has expired; sign a new request');
  }
  const { table, expired } = pruneLeaseTable(current, now);
  const holder = table.leases.find((l) => pathsOverlap(l.path, request.path));
  if (holder) {
    const remaining = secondsRemaining(holder, now);
    return {
      kind: 'busy', holder,
      message: `path ${request.path} is busy: publisher '${holder.publisher}' holds lease ${holder.leaseId} on ${holder.path} ` +
        `for another ${remaining} s`,
    };
  }
  const lease: LeaseRecord = {
    leaseId: randomUUID(), publisher: request.publisher, path: request.path,
    token: randomBytes(32).toString('base64url'), requestId: request.requestId, ttlSeconds: request.ttlSeconds,
    acquiredAt: now.toISOString(), expiresAt: new Date(now.getTime() + request.ttlSeconds * 1000).toISOString(),
  };
  const forgetAt = new Date(Math.max(Date.parse(request.issuedAt), now.getTime()) + 2 * REQUEST_MAX_AGE_SECONDS * 1000).toISOString();
  return {
    kind: 'acquired', lease,
    tookOver: expired.filter((l) => pathsOverlap(l.path, request.path)),
    table: {
      ...table, serial: table.serial + 1, leases: [...table.leases, lease],
      usedRequests: [...table.usedRequests, { publisher: request.publisher, requestId: request.requestId, leaseId: lease.leaseId, forgetAt }],
    },
  };
}

function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The lease `leaseId` if `token` is its token, live or not (an abort may still clean up after a lease
 * that ran out); a LeaseError 'not-found' or 'wrong-token' otherwise.
 */
export function findLeaseByToken(table: LeaseTable, leaseId: string, token: string): LeaseRecord {
  if (typeof leaseId !== 'string' || typeof token !== 'string') throw new LeaseError('bad-request', 'leaseId and token must be strings');
  const lease = table.leases.find((l) => l.leaseId === leaseId);
  if (!lease) throw new LeaseError('not-found', `lease ${leaseId} does not exist (never granted, released, or expired and taken over)`);
  if (!tokensEqual(lease.token, token)) throw new LeaseError('wrong-token', `wrong token for lease ${leaseId}`);
  return lease;
}

/**
 * The live lease `leaseId` if `token` is its token, `path` (when given) lies within its path and
 * `publisher` (when given) is its holder; otherwise a LeaseError saying which of those failed.
 */
export function findHeldLease(table: LeaseTable, leaseId: string, token: string, path: string | undefined, now: Date, publisher?: string): LeaseRecord {
  const lease = findLeaseByToken(table, leaseId, token);
  if (!isLive(lease, now)) {
    const ago = Math.round((now.getTime() - Date.parse(lease.expiresAt)) / 1000);
    throw new LeaseError('expired', `lease ${leaseId} on ${lease.path} expired ${ago} s ago (at ${lease.expiresAt})`);
  }
  if (publisher !== undefined && lease.publisher !== publisher) {
    throw new LeaseError('wrong-publisher', `lease ${leaseId} is held by publisher '${lease.publisher}', not by '${publisher}'; ` +
      'a changeset commits only under a lease its own signer acquired');
  }
  if (path !== undefined) {
    let within: boolean;
    try {
      within = pathWithin(path, lease.path);
    } catch (e) {
      throw new LeaseError('path-outside', `invalid path ${JSON.stringify(path)}: ${(e as Error).message}`);
    }
    if (!within) throw new LeaseError('path-outside', `path ${path} lies outside lease ${leaseId} on ${lease.path}`);
  }
  return lease;
}

export function decideRenew(table: LeaseTable, leaseId: string, token: string, ttlSeconds: number | undefined, now: Date): { table: LeaseTable; lease: LeaseRecord } {
  const held = findHeldLease(table, leaseId, token, undefined, now);
  const ttl = ttlSeconds === undefined ? held.ttlSeconds : checkTtl(ttlSeconds);
  const lease = { ...held, ttlSeconds: ttl, expiresAt: new Date(now.getTime() + ttl * 1000).toISOString() };
  const pruned = pruneLeaseTable(table, now).table;
  return { lease, table: { ...pruned, serial: table.serial + 1, leases: pruned.leases.map((l) => (l.leaseId === leaseId ? lease : l)) } };
}

/** Null when there is nothing to release (already released, or expired): releasing twice is fine. */
export function decideRelease(table: LeaseTable, leaseId: string, token: string, now: Date): LeaseTable | null {
  if (typeof leaseId !== 'string' || typeof token !== 'string') throw new LeaseError('bad-request', 'leaseId and token must be strings');
  const lease = table.leases.find((l) => l.leaseId === leaseId);
  if (!lease) return null;
  if (!tokensEqual(lease.token, token)) throw new LeaseError('wrong-token', `wrong token for lease ${leaseId}`);
  const pruned = pruneLeaseTable(table, now).table;
  return { ...pruned, serial: table.serial + 1, leases: pruned.leases.filter((l) => l.leaseId !== leaseId) };
}

/**
 * The owner drops a lease without its token: by lease id, or by the exact path it holds. Null when no
 * lease (live or expired) matches, so releasing twice is fine.
 */
export function decideOwnerRelease(table: LeaseTable, leaseIdOrPath: string, now: Date): { table: LeaseTable; lease: LeaseRecord } | null {
  if (typeof leaseIdOrPath !== 'string' || leaseIdOrPath === '') throw new LeaseError('bad-request', 'name a lease id or the path it holds');
  const byPath = leaseIdOrPath.startsWith('/');
  const lease = table.leases.find((l) => (byPath ? l.path === scopePath(leaseIdOrPath) : l.leaseId === leaseIdOrPath));
  if (!lease) return null;
  const pruned = pruneLeaseTable(table, now).table;
  return { lease, table: { ...pruned, serial: table.serial + 1, leases: pruned.leases.filter((l) => l.leaseId !== lease.leaseId) } };
}
