// What `scvmfs cost` shows: a month's spend from the ledger priced under one table, and a month
// projected from the ledger's publish rate and a read side, under several tables side by side.
import { RefusedError } from '../errors.js';
import { billUsage, formatBillTotal, makeBill, secretsLine, storageLine, usageLines, type Bill } from '../cost/bill.js';
import type { PriceTable } from '../cost/prices.js';
import { HOURS_PER_MONTH, projectMonth, SECONDS_PER_MONTH, type Projection, type PublishSide, type ReadSide } from '../cost/projection.js';
import type { ReadObservation } from '../cost/access-log.js';
import { addUsage, emptyUsage, scaleUsage } from '../cost/usage.js';
import type { ObjectStore } from '../store/object-store.js';
import { appendLedgerRecord, monthOf, monthReport, readLedger, type AppendOptions, type LedgerAggregate, type LedgerInput, type LedgerRecord, type LedgerState } from './ledger.js';

export interface RecordedCost {
  record: LedgerRecord;
  /** The operation's bill (its usage, the ledger's own two requests included; no storage line). */
  bill: Bill;
  /** e.g. `this publish cost $0.0123 on aws-us-east-1 (prices of 2025-01-01)`. */
  line: string;
  /** The record is written but the ledger's upkeep failed: print it as a warning. */
  warning?: string;
}

/**
 * What a mutating command calls when it has finished: appends the operation's ledger record and
 * prices it. Throws only when the record could not be written (the operation itself is done then:
 * report the error as a warning, do not fail the command).
 */
export async function recordOperationCost(store: ObjectStore, input: LedgerInput, pricing: PriceTable, options: AppendOptions = {}): Promise<RecordedCost> {
  const appended = await appendLedgerRecord(store, input, options);
  const bill = billUsage(appended.record.usage, pricing);
  return { record: appended.record, bill, line: formatBillTotal(bill, input.operation), ...(appended.warning ? { warning: appended.warning } : {}) };
}

export interface MonthCostOptions {
  month?: string;
  by?: 'operation' | 'publisher';
  pricing: PriceTable;
  /** Secrets kept in the secrets service (billed per month, not per operation). */
  secrets?: number;
  now?: Date;
}

export interface MonthCost {
  month: string;
  pricing: { name: string; pricedAt: string; source: string };
  hoursElapsed: number;
  hoursInMonth: number;
  records: number;
  storage: { bytesNow: number; objectsNow: number; bytesAtStart: number; gbMonths: number };
  bill: Bill;
  by?: 'operation' | 'publisher';
  groups?: { name: string; records: number; bill: Bill }[];
}

/** Month-to-date spend (or a past month's) from the ledger: the operations' bills plus storage held. */
export function monthCostFromLedger(state: LedgerState, o: MonthCostOptions): MonthCost {
  const now = o.now ?? new Date();
  const month = o.month ?? monthOf(now);
  const r = monthReport(state, month, now);
  const lines = [...usageLines(r.total.usage, o.pricing), storageLine(r.gbMonths, o.pricing)];
  if (o.pricing.secrets && (o.secrets ?? 0) > 0) lines.push(secretsLine((o.secrets ?? 0) * r.hoursElapsed / r.hoursInMonth, o.pricing));
  const groups = o.by === undefined ? undefined : Object.entries(o.by === 'operation' ? r.byOperation : r.byPublisher)
    .map(([name, a]: [string, LedgerAggregate]) => ({ name, records: a.records, bill: makeBill(o.pricing, usageLines(a.usage, o.pricing)) }))
    .sort((a, b) => b.bill.total - a.bill.total || a.name.localeCompare(b.name));
  return {
    month,
    pricing: { name: o.pricing.name, pricedAt: o.pricing.pricedAt, source: o.pricing.source },
    hoursElapsed: r.hoursElapsed,
    hoursInMonth: r.hoursInMonth,
    records: r.total.records,
    storage: { bytesNow: r.storageNow.bytes, objectsNow: r.storageNow.objects, bytesAtStart: r.storageAtStart.bytes, gbMonths: r.gbMonths },
    bill: makeBill(o.pricing, lines),
    ...(o.by ? { by: o.by, groups } : {}),
  };
}

export async function monthCost(store: ObjectStore, o: MonthCostOptions): Promise<MonthCost> {
  return monthCostFromLedger(await readLedger(store), o);
}

/** Operations that publish a revision (the rate a projection scales by). */
const PUBLISHING = new Set(['publish', 'ingest']);

export interface PublishSideOptions {
  /** The month observed (default the current one); its elapsed part is scaled to a 730-hour month. */
  month?: string;
  now?: Date;
  /** Publishes a month to project instead of the observed rate (the observed mean per publish is kept). */
  publishesPerMonth?: number;
  secrets?: number;
}

/** The publish side of a projection from what the ledger saw in one month. */
export function publishSideFromLedger(state: LedgerState, o: PublishSideOptions = {}): { side: PublishSide; notes: string[] } {
  const now = o.now ?? new Date();
  const month = o.month ?? monthOf(now);
  const r = monthReport(state, month, now);
  if (r.hoursElapsed < 1) throw new RefusedError('no-ledger-period', `less than an hour of ${month} has passed: project from a previous month with --month`);
  const scale = HOURS_PER_MONTH / r.hoursElapsed;
  let publishing = emptyUsage();
  let others = emptyUsage();
  let publishes = 0;
  for (const [op, a] of Object.entries(r.byOperation)) {
    if (PUBLISHING.has(op)) { publishing = addUsage(publishing, a.usage); publishes += a.records; }
    else others = addUsage(others, a.usage);
  }
  const notes = [`publish side from the ledger's ${month}: ${r.total.records} operations in ${r.hoursElapsed.toFixed(1)} hours, scaled to ${HOURS_PER_MONTH} hours`];
  let publishScale = scale;
  if (o.publishesPerMonth !== undefined) {
    if (publishes === 0) throw new RefusedError('no-publishes', `the ledger has no publish in ${month} to take a mean from: drop --publishes or pick another --month`);
    publishScale = o.publishesPerMonth / publishes;
    notes.push(`${o.publishesPerMonth} publishes a month asked for, each like the mean of the ${publishes} observed`);
  }
  const delta = r.total.storage.bytesAdded - r.total.storage.bytesRemoved;
  return {
    side: {
      operationsPerMonth: addUsage(scaleUsage(publishing, publishScale), scaleUsage(others, scale)),
      publishesPerMonth: publishes * publishScale,
      storageBytes: r.storageNow.bytes,
      storageObjects: r.storageNow.objects,
      growthBytesPerMonth: Math.max(0, delta * (o.publishesPerMonth !== undefined ? publishScale : scale)),
      secrets: o.secrets ?? 0,
    },
    notes,
  };
}

/**
 * The read side from an access log. Requests and bytes are scaled from the log's period to a month;
 * the hit ratio is the log's own (CloudFront) unless given.
 */
export function readSideFromLog(obs: ReadObservation, o: { periodSeconds?: number; cacheHitRatio?: number; source: string }): ReadSide {
  const period = o.periodSeconds ?? obs.periodSeconds;
  if (period === undefined) throw new RefusedError('no-log-period', `${o.source} has no times (scvmfs serve logs): say how long it covers with --log-period, e.g. 7d`);
  const hitRatio = o.cacheHitRatio ?? (obs.hits !== undefined ? obs.hits / obs.requests : undefined);
  if (hitRatio === undefined) throw new RefusedError('no-hit-ratio', `${o.source} cannot tell cache hits: give --cache-hit-ratio`);
  const scale = SECONDS_PER_MONTH / period;
  return {
    from: 'log',
    description: `${obs.format} log ${o.source} (${obs.requests} requests over ${(period / 3600).toFixed(1)} hours)`,
    requestsPerMonth: obs.requests * scale,
    bytesPerMonth: obs.bytes * scale,
    cacheHitRatio: hitRatio,
  };
}

export interface CostProjection {
  publish: PublishSide;
  read: ReadSide;
  notes: string[];
  projections: (Projection & { pricing: { name: string; description: string; pricedAt: string; source: string } })[];
}

export function projectCosts(publish: PublishSide, read: ReadSide, tables: readonly PriceTable[], notes: string[] = []): CostProjection {
  return {
    publish,
    read,
    notes,
    projections: tables.map((t) => ({ pricing: { name: t.name, description: t.description, pricedAt: t.pricedAt, source: t.source }, ...projectMonth(publish, read, t) })),
  };
}

export async function projectFromStore(store: ObjectStore, o: PublishSideOptions & { read: ReadSide; tables: readonly PriceTable[] }): Promise<CostProjection> {
  const { side, notes } = publishSideFromLedger(await readLedger(store), o);
  return projectCosts(side, o.read, o.tables, notes);
}
