// Price tables: list prices of one provider on one date, in a JSON shape a user can copy and edit
// (`scvmfs cost pricing aws-us-east-1 > mine.json`, then `--pricing mine.json`). docs/cost.md names the
// source of each number. Nothing here is fetched: prices are what they were on `pricedAt`.
import { RefusedError } from '../errors.js';
import { FUNCTION_ARCHITECTURES, STORE_REQUEST_KINDS, type FunctionArchitecture, type StoreRequestKind } from './usage.js';

export interface RequestClass {
  /** The provider's name for it, e.g. 'PUT, COPY, POST, LIST' or 'Class A'. */
  label: string;
  /** Dollars per 1,000 requests. */
  per1000: number;
  /** Our store request kinds billed in this class. */
  kinds: StoreRequestKind[];
}

export interface PriceTable {
  /** Short name used on the command line and in bills, e.g. 'aws-us-east-1'. */
  name: string;
  description: string;
  /** The date these prices were list prices (YYYY-MM-DD). */
  pricedAt: string;
  /** Where they come from (pages, or "entered by the owner"). */
  source: string;
  currency: 'USD';
  storage: {
    /** Every store request kind in exactly one class. */
    requestClasses: Record<string, RequestClass>;
    /** Dollars per GB (2^30 bytes) stored for a month. */
    gbMonth: number;
    /** Dollars per GB read out of the store straight to the internet (no CDN). */
    egressPerGB: number;
  };
  /** A CDN in front of the store; null when clients (or their proxies) read the store directly. */
  cdn: {
    name: string;
    /** Dollars per GB delivered to clients. */
    egressPerGB: number;
    /** Dollars per 10,000 requests. */
    per10000Requests: number;
    /** Dollars per GB from the store to the CDN (free from S3 to CloudFront). */
    originEgressPerGB: number;
  } | null;
  /** The function runtime; null when functions run on the owner's machines (no bill). */
  functions: {
    name: string;
    /** Dollars per million invocations. */
    perMillionInvocations: number;
    /** Dollars per GB-second of billed duration × configured memory, by architecture. */
    gbSecond: Record<FunctionArchitecture, number>;
  } | null;
  /** Where keys are kept; null when they are files. */
  secrets: {
    name: string;
    perSecretMonth: number;
    per10000Calls: number;
  } | null;
  /** What the table leaves out (free tiers, volume tiers), printed with projections. */
  notes: string[];
}

const WRITE_KINDS: StoreRequestKind[] = ['put', 'conditionalPut', 'copy', 'post', 'list'];
const READ_KINDS: StoreRequestKind[] = ['get', 'head'];

export const AWS_US_EAST_1: PriceTable = {
  name: 'aws-us-east-1',
  description: 'AWS us-east-1: S3 Standard, CloudFront (North America/Europe, HTTP), Lambda, Secrets Manager',
  pricedAt: '2025-01-01',
  source: 'list prices on https://aws.amazon.com/s3/pricing/, https://aws.amazon.com/cloudfront/pricing/, ' +
    'https://aws.amazon.com/lambda/pricing/, https://aws.amazon.com/secrets-manager/pricing/ (first volume tier)',
  currency: 'USD',
  storage: {
    requestClasses: {
      'put-copy-post-list': { label: 'PUT, COPY, POST, LIST', per1000: 0.005, kinds: WRITE_KINDS },
      'get-head': { label: 'GET, HEAD and other reads', per1000: 0.0004, kinds: READ_KINDS },
      delete: { label: 'DELETE (free)', per1000: 0, kinds: ['delete'] },
    },
    gbMonth: 0.023,
    egressPerGB: 0.09,
  },
  cdn: { name: 'CloudFront', egressPerGB: 0.085, per10000Requests: 0.0075, originEgressPerGB: 0 },
  functions: { name: 'Lambda', perMillionInvocations: 0.2, gbSecond: { x86_64: 0.0000166667, arm64: 0.0000133334 } },
  secrets: { name: 'Secrets Manager', perSecretMonth: 0.4, per10000Calls: 0.05 },
  notes: [
    'first volume tier only: S3 storage is $0.022/GB-month above 50 TB and $0.021 above 500 TB; CloudFront egress gets cheaper above 10 TB/month',
    'free tiers left out: CloudFront 1 TB and 10 million requests a month, Lambda 1 million requests and 400,000 GB-s a month, the first 100 GB of internet egress a month',
    'CloudFront HTTPS requests cost $0.0100 per 10,000 instead of $0.0075 (HTTP)',
  ],
};

export const CLOUDFLARE_R2: PriceTable = {
  name: 'cloudflare-r2',
  description: 'Cloudflare R2 Standard, read through Cloudflare\'s cache (public bucket on a custom domain)',
  pricedAt: '2025-01-01',
  source: 'list prices on https://developers.cloudflare.com/r2/pricing/',
  currency: 'USD',
  storage: {
    requestClasses: {
      'class-a': { label: 'Class A (writes, LIST)', per1000: 0.0045, kinds: WRITE_KINDS },
      'class-b': { label: 'Class B (GET, HEAD)', per1000: 0.00036, kinds: READ_KINDS },
      delete: { label: 'DeleteObject (free)', per1000: 0, kinds: ['delete'] },
    },
    gbMonth: 0.015,
    egressPerGB: 0,
  },
  cdn: { name: 'Cloudflare cache', egressPerGB: 0, per10000Requests: 0, originEgressPerGB: 0 },
  functions: null,
  secrets: null,
  notes: [
    'free tier left out: 10 GB-month, 1 million Class A and 10 million Class B requests a month',
    'publish functions assumed to run on the owner\'s machine (--runtime local); write a price file with a functions block to price Lambda beside R2',
  ],
};

export const SELF_HOSTED: PriceTable = {
  name: 'self-hosted',
  description: 'your own object store (e.g. Ceph RGW) behind your own web servers and proxies',
  pricedAt: '2025-01-01',
  source: 'entered by the owner: requests and traffic cost nothing extra; set storage.gbMonth to what a GB-month of your disks costs you',
  currency: 'USD',
  storage: {
    requestClasses: {
      all: { label: 'all requests (no charge)', per1000: 0, kinds: [...STORE_REQUEST_KINDS] },
    },
    gbMonth: 0,
    egressPerGB: 0,
  },
  cdn: null,
  functions: null,
  secrets: null,
  notes: ['storage at $0/GB-month until you enter your own price (scvmfs cost pricing self-hosted > mine.json, edit storage.gbMonth, pass --pricing mine.json)'],
};

export const BUILTIN_PRICE_TABLES: readonly PriceTable[] = [AWS_US_EAST_1, CLOUDFLARE_R2, SELF_HOSTED];

/** A built-in table by name, or undefined. */
export function builtinPriceTable(name: string): PriceTable | undefined {
  return BUILTIN_PRICE_TABLES.find((t) => t.name === name);
}

/** The class a request kind is billed in (tables are validated, so there is exactly one). */
export function requestClassOf(table: PriceTable, kind: StoreRequestKind): [string, RequestClass] {
  for (const entry of Object.entries(table.storage.requestClasses)) {
    if (entry[1].kinds.includes(kind)) return entry;
  }
  throw new RefusedError('bad-pricing', `price table ${table.name} bills no class for '${kind}' requests`);
}

// --- strict validation of a user's table --------------------------------------------------------------

type Obj = Record<string, unknown>;

class Checker {
  constructor(private readonly origin: string) {}

  fail(path: string, why: string): never {
    throw new RefusedError('bad-pricing', `price file ${this.origin}: ${path} ${why}`, { path });
  }

  object(v: unknown, path: string, fields: readonly string[]): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `must be an object, got ${show(v)}`);
    const o = v as Obj;
    for (const k of Object.keys(o)) if (!fields.includes(k)) this.fail(`${path}.${k}`, `is not a known field (known: ${fields.join(', ')})`);
    for (const k of fields) if (!(k in o)) this.fail(`${path}.${k}`, 'is missing');
    return o;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string' || v.trim() === '') this.fail(path, `must be a non-empty string, got ${show(v)}`);
    return v;
  }

  price(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) this.fail(path, `must be a number of dollars ≥ 0, got ${show(v)}`);
    return v;
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

const TOP = ['name', 'description', 'pricedAt', 'source', 'currency', 'storage', 'cdn', 'functions', 'secrets', 'notes'] as const;

/**
 * A price table from parsed JSON, checked strictly: every field present, no unknown field, prices finite
 * and ≥ 0, every store request kind in exactly one class. Throws RefusedError 'bad-pricing' naming the field.
 */
export function validatePriceTable(json: unknown, origin: string): PriceTable {
  const c = new Checker(origin);
  const o = c.object(json, 'the table', TOP);
  const name = c.string(o.name, 'name');
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) c.fail('name', `must be lowercase letters, digits, '.', '_' or '-' (at most 64), got ${show(name)}`);
  const pricedAt = c.string(o.pricedAt, 'pricedAt');
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(pricedAt);
  if (!d || new Date(`${pricedAt}T00:00:00Z`).toISOString().slice(0, 10) !== pricedAt) c.fail('pricedAt', `must be a date YYYY-MM-DD, got ${show(pricedAt)}`);
  if (o.currency !== 'USD') c.fail('currency', `must be "USD", got ${show(o.currency)}`);

  const s = c.object(o.storage, 'storage', ['requestClasses', 'gbMonth', 'egressPerGB']);
  const classes = c.object(s.requestClasses, 'storage.requestClasses', Object.keys((s.requestClasses ?? {}) as Obj));
  const requestClasses: Record<string, RequestClass> = {};
  const seen = new Map<string, string>();
  for (const [id, raw] of Object.entries(classes)) {
    const p = `storage.requestClasses.${id}`;
    const rc = c.object(raw, p, ['label', 'per1000', 'kinds']);
    if (!Array.isArray(rc.kinds)) c.fail(`${p}.kinds`, `must be a list of request kinds, got ${show(rc.kinds)}`);
    const kinds: StoreRequestKind[] = [];
    for (const k of rc.kinds as unknown[]) {
      if (!STORE_REQUEST_KINDS.includes(k as StoreRequestKind)) c.fail(`${p}.kinds`, `has ${show(k)}, not one of ${STORE_REQUEST_KINDS.join(', ')}`);
      const other = seen.get(k as string);
      if (other !== undefined) c.fail(`${p}.kinds`, `has '${String(k)}', which class ${other} bills already`);
      seen.set(k as string, id);
      kinds.push(k as StoreRequestKind);
    }
    requestClasses[id] = { label: c.string(rc.label, `${p}.label`), per1000: c.price(rc.per1000, `${p}.per1000`), kinds };
  }
  const unbilled = STORE_REQUEST_KINDS.filter((k) => !seen.has(k));
  if (unbilled.length > 0) c.fail('storage.requestClasses', `bills no class for ${unbilled.join(', ')} (every kind needs one; use per1000 0 for free ones)`);

  let cdn: PriceTable['cdn'] = null;
  if (o.cdn !== null) {
    const x = c.object(o.cdn, 'cdn', ['name', 'egressPerGB', 'per10000Requests', 'originEgressPerGB']);
    cdn = { name: c.string(x.name, 'cdn.name'), egressPerGB: c.price(x.egressPerGB, 'cdn.egressPerGB'), per10000Requests: c.price(x.per10000Requests, 'cdn.per10000Requests'), originEgressPerGB: c.price(x.originEgressPerGB, 'cdn.originEgressPerGB') };
  }
  let functions: PriceTable['functions'] = null;
  if (o.functions !== null) {
    const x = c.object(o.functions, 'functions', ['name', 'perMillionInvocations', 'gbSecond']);
    const g = c.object(x.gbSecond, 'functions.gbSecond', FUNCTION_ARCHITECTURES);
    functions = {
      name: c.string(x.name, 'functions.name'),
      perMillionInvocations: c.price(x.perMillionInvocations, 'functions.perMillionInvocations'),
      gbSecond: { x86_64: c.price(g.x86_64, 'functions.gbSecond.x86_64'), arm64: c.price(g.arm64, 'functions.gbSecond.arm64') },
    };
  }
  let secrets: PriceTable['secrets'] = null;
  if (o.secrets !== null) {
    const x = c.object(o.secrets, 'secrets', ['name', 'perSecretMonth', 'per10000Calls']);
    secrets = { name: c.string(x.name, 'secrets.name'), perSecretMonth: c.price(x.perSecretMonth, 'secrets.perSecretMonth'), per10000Calls: c.price(x.per10000Calls, 'secrets.per10000Calls') };
  }
  if (!Array.isArray(o.notes)) c.fail('notes', `must be a list of strings, got ${show(o.notes)}`);
  const notes = (o.notes as unknown[]).map((n, i) => c.string(n, `notes[${i}]`));

  return {
    name,
    description: c.string(o.description, 'description'),
    pricedAt,
    source: c.string(o.source, 'source'),
    currency: 'USD',
    storage: { requestClasses, gbMonth: c.price(s.gbMonth, 'storage.gbMonth'), egressPerGB: c.price(s.egressPerGB, 'storage.egressPerGB') },
    cdn,
    functions,
    secrets,
    notes,
  };
}

/** A price table from the text of a price file. */
export function parsePriceTable(text: string, origin: string): PriceTable {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RefusedError('bad-pricing', `price file ${origin} is not JSON: ${(err as Error).message}`);
  }
  return validatePriceTable(json, origin);
}
