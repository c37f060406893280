// A month projected from the publish side (what the ledger observed) and the read side (a client model
// or an access log), priced under one table or several side by side. docs/cost.md gives the formulas.
import { makeBill, secretsLine, storageLine, usageLines, type Bill, type BillLine } from './bill.js';
import { requestClassOf, type PriceTable } from './prices.js';
import { BYTES_PER_GB, type Usage } from './usage.js';

/** A billing month as AWS counts it: 730 hours. */
export const HOURS_PER_MONTH = 730;
export const SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600;

export interface PublishSide {
  /** Everything the ledger's operations use in a month (publishes, resigns, gc …). */
  operationsPerMonth: Usage;
  publishesPerMonth: number;
  /** Bytes and objects held when the month starts. */
  storageBytes: number;
  storageObjects: number;
  /** Net bytes added during the month (storage is billed at the month's average: start + growth/2). */
  growthBytesPerMonth: number;
  /** Secrets kept in the secrets service all month. */
  secrets: number;
}

export type ReadSide =
  | {
    from: 'model';
    /** Independent caches that reach the CDN: site proxies, or client machines without one. */
    clients: number;
    /** Fraction of the stored bytes (and objects) each of them fetches in a month. */
    coldFraction: number;
    /** Fraction of CDN requests (and bytes) answered from the CDN's cache. */
    cacheHitRatio: number;
    /** How often each client fetches the manifest (the catalog TTL). */
    ttlSeconds: number;
    /** Size of one manifest fetch. */
    manifestBytes: number;
  }
  | {
    from: 'log';
    description: string;
    requestsPerMonth: number;
    bytesPerMonth: number;
    cacheHitRatio: number;
  };

/** Requests and bytes at the edge (what clients ask for) and at the origin (what the cache misses). */
export interface ReadDemand {
  edgeRequests: number;
  edgeBytes: number;
  originRequests: number;
  originBytes: number;
  cacheHitRatio: number;
}

export function readDemand(read: ReadSide, pub: PublishSide): ReadDemand {
  let edgeRequests: number;
  let edgeBytes: number;
  if (read.from === 'model') {
    const polls = SECONDS_PER_MONTH / read.ttlSeconds;
    edgeRequests = read.clients * (read.coldFraction * pub.storageObjects + polls);
    edgeBytes = read.clients * (read.coldFraction * pub.storageBytes + polls * read.manifestBytes);
  } else {
    edgeRequests = read.requestsPerMonth;
    edgeBytes = read.bytesPerMonth;
  }
  const miss = 1 - read.cacheHitRatio;
  return { edgeRequests, edgeBytes, originRequests: miss * edgeRequests, originBytes: miss * edgeBytes, cacheHitRatio: read.cacheHitRatio };
}

export interface Projection {
  bill: Bill;
  /** Dollars by part: storage, publishing (operations + secrets), reads. */
  parts: { storage: number; publishing: number; reads: number };
  demand: ReadDemand;
  /** What the inputs mean, the same under every table. */
  assumptions: string[];
  /** What this table assumes or leaves out. */
  tableAssumptions: string[];
}

function line(item: string, quantity: number, unit: string, unitPrice: number, per: number): BillLine {
  return { item, quantity, unit, unitPrice, per, dollars: (quantity / per) * unitPrice };
}

export function projectMonth(pub: PublishSide, read: ReadSide, table: PriceTable): Projection {
  const demand = readDemand(read, pub);
  const storage = [storageLine((pub.storageBytes + pub.growthBytesPerMonth / 2) / BYTES_PER_GB, table)];
  const publishing = usageLines(pub.operationsPerMonth, table);
  if (table.secrets && pub.secrets > 0) publishing.push(secretsLine(pub.secrets, table));
  for (const l of publishing) l.item = `publishing: ${l.item}`;
  const [, getClass] = requestClassOf(table, 'get');
  const reads: BillLine[] = [];
  if (table.cdn) {
    reads.push(line(`reads: ${table.cdn.name} egress`, demand.edgeBytes / BYTES_PER_GB, 'GB', table.cdn.egressPerGB, 1));
    reads.push(line(`reads: ${table.cdn.name} requests`, demand.edgeRequests, 'requests', table.cdn.per10000Requests, 10000));
    reads.push(line(`reads: origin requests (cache misses, ${getClass.label})`, demand.originRequests, 'requests', getClass.per1000, 1000));
    reads.push(line('reads: origin to CDN transfer', demand.originBytes / BYTES_PER_GB, 'GB', table.cdn.originEgressPerGB, 1));
  } else {
    reads.push(line(`reads: store requests (${getClass.label})`, demand.edgeRequests, 'requests', getClass.per1000, 1000));
    reads.push(line('reads: store egress', demand.edgeBytes / BYTES_PER_GB, 'GB', table.storage.egressPerGB, 1));
  }
  const sum = (ls: BillLine[]) => ls.reduce((s, l) => s + l.dollars, 0);
  const assumptions = [
    `a month is ${HOURS_PER_MONTH} hours; GB = 2^30 bytes`,
    `storage: ${gb(pub.storageBytes)} GB and ${pub.storageObjects.toLocaleString('en-US')} objects at the start, growing ${gb(pub.growthBytesPerMonth)} GB in the month (billed at the average)`,
    `publishing: ${round(pub.publishesPerMonth)} publishes a month, with the other operations the ledger saw`,
    read.from === 'model'
      ? `reads: ${read.clients} caches each fetch ${read.coldFraction} of the stored bytes and objects and poll the manifest (${read.manifestBytes} B) every ${read.ttlSeconds} s; ${read.cacheHitRatio} of requests hit the CDN's cache`
      : `reads: ${read.description}, ${round(read.requestsPerMonth)} requests and ${gb(read.bytesPerMonth)} GB a month; ${read.cacheHitRatio} of requests hit the CDN's cache`,
  ];
  const tableAssumptions = [
    table.cdn ? `reads go through ${table.cdn.name}; cache misses are GETs at the store` : 'no CDN: every read reaches the store (site proxies in front are free to you)',
    ...(table.functions ? [] : ['functions run on your own machines (no function bill)']),
    ...(table.secrets ? [`${pub.secrets} secret(s) kept all month`] : []),
    ...table.notes,
  ];
  return {
    bill: makeBill(table, [...storage, ...publishing, ...reads]),
    parts: { storage: sum(storage), publishing: sum(publishing), reads: sum(reads) },
    demand,
    assumptions,
    tableAssumptions,
  };
}

function gb(bytes: number): string {
  return round(bytes / BYTES_PER_GB);
}

function round(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Number(n.toPrecision(3)));
}
