// The cost ledger in the control area: one immutable record per operation, rolled up per month so it
// stays small, and storage totals derived from it (no LIST of the repository needed to price storage).
//
//   .scvmfs/ledger/records/YYYY-MM/<time>-<random>.json   one record, created with If-None-Match: *
//   .scvmfs/ledger/months/YYYY-MM.json                    month summary, replaced with If-Match only
//
// A record is one PUT: a crashed operation leaves the record or nothing. A roll-up reads the summary
// (etag e), lists the month's records, adds those the summary has not folded yet, writes the summary
// with If-Match e, and only then deletes the records it listed. The summary names the records it has
// folded that may still exist (`folded`), so a record is counted by the summary or on its own, never
// both, and a roll-up killed before its deletes is finished by the next one. Readers list the summaries
// before and after reading and start again if any changed, so they never see a record twice or not at all.
import { randomBytes } from 'node:crypto';
import { BusyError, RefusedError } from '../errors.js';
import { PreconditionFailedError, type ObjectInfo, type ObjectStore } from '../store/object-store.js';
import { addUsage, emptyUsage, FUNCTION_ARCHITECTURES, STORE_REQUEST_KINDS, type FunctionUsage, type Usage } from '../cost/usage.js';

export const LEDGER_PREFIX = '.scvmfs/ledger/';
const RECORDS = `${LEDGER_PREFIX}records/`;
const MONTHS = `${LEDGER_PREFIX}months/`;
/** Roll a month up once it holds more open records than this (and always once it is over). */
export const DEFAULT_ROLL_UP_ABOVE = 100;

export interface StorageChange {
  bytesAdded: number;
  bytesRemoved: number;
  objectsAdded: number;
  objectsRemoved: number;
}

export interface LedgerRecord {
  v: 1;
  id: string;
  /** When the record was written (ISO 8601, UTC); its month is the record's month. */
  time: string;
  /** publish, ingest, resign, rotate-key, gc, check, replicate, baseline, … */
  operation: string;
  /** The publisher's name, or 'owner' for the owner's keys. */
  publisher: string;
  /** The revision the operation produced or worked on; null when it has none. */
  revision: number | null;
  usage: Usage;
  storage: StorageChange;
}

export interface LedgerInput {
  operation: string;
  publisher?: string;
  revision?: number | null;
  usage: Usage;
  storage?: Partial<StorageChange>;
}

/** Sums over records. `deltaByteHours`: Σ (bytes added − removed) × hours from the month's start to the record. */
export interface LedgerAggregate {
  records: number;
  usage: Usage;
  storage: StorageChange;
  deltaByteHours: number;
}

export interface MonthSummary {
  v: 1;
  month: string;
  /** Ids of folded records that may still exist (their deletion can lag the summary). */
  folded: string[];
  total: LedgerAggregate;
  byOperation: Record<string, LedgerAggregate>;
  byPublisher: Record<string, LedgerAggregate>;
  updatedAt: string;
}

// --- months and keys ------------------------------------------------------------------------------

export function monthOf(date: Date): string {
  return date.toISOString().slice(0, 7);
}

export function parseMonth(month: string): Date {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 12) throw new RefusedError('bad-month', `'${month}' is not a month YYYY-MM`);
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
}

export function monthEnd(month: string): Date {
  const start = parseMonth(month);
  return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
}

export function hoursInMonth(month: string): number {
  return (monthEnd(month).getTime() - parseMonth(month).getTime()) / 3_600_000;
}

function hoursIntoMonth(month: string, time: Date): number {
  return (time.getTime() - parseMonth(month).getTime()) / 3_600_000;
}

function recordKey(month: string, id: string): string {
  return `${RECORDS}${month}/${id}.json`;
}

function parseRecordKey(key: string): { month: string; id: string } | undefined {
  const m = /^\.scvmfs\/ledger\/records\/(\d{4}-\d{2})\/([0-9TZ]+-[0-9a-f]+)\.json$/.exec(key);
  return m ? { month: m[1]!, id: m[2]! } : undefined;
}

function summaryKey(month: string): string {
  return `${MONTHS}${month}.json`;
}

// --- aggregates -----------------------------------------------------------------------------------

const NO_STORAGE: StorageChange = { bytesAdded: 0, bytesRemoved: 0, objectsAdded: 0, objectsRemoved: 0 };

export function emptyAggregate(): LedgerAggregate {
  return { records: 0, usage: emptyUsage(), storage: { ...NO_STORAGE }, deltaByteHours: 0 };
}

export function addAggregates(a: LedgerAggregate, b: LedgerAggregate): LedgerAggregate {
  return {
    records: a.records + b.records,
    usage: addUsage(a.usage, b.usage),
    storage: {
      bytesAdded: a.storage.bytesAdded + b.storage.bytesAdded,
      bytesRemoved: a.storage.bytesRemoved + b.storage.bytesRemoved,
      objectsAdded: a.storage.objectsAdded + b.storage.objectsAdded,
      objectsRemoved: a.storage.objectsRemoved + b.storage.objectsRemoved,
    },
    deltaByteHours: a.deltaByteHours + b.deltaByteHours,
  };
}

function aggregateOf(r: LedgerRecord): LedgerAggregate {
  const month = monthOf(new Date(r.time));
  const delta = r.storage.bytesAdded - r.storage.bytesRemoved;
  return { records: 1, usage: r.usage, storage: { ...r.storage }, deltaByteHours: delta * hoursIntoMonth(month, new Date(r.time)) };
}

interface MonthParts { total: LedgerAggregate; byOperation: Record<string, LedgerAggregate>; byPublisher: Record<string, LedgerAggregate> }

function emptyParts(): MonthParts {
  return { total: emptyAggregate(), byOperation: {}, byPublisher: {} };
}

function addRecord(parts: MonthParts, r: LedgerRecord): void {
  const a = aggregateOf(r);
  parts.total = addAggregates(parts.total, a);
  parts.byOperation[r.operation] = addAggregates(parts.byOperation[r.operation] ?? emptyAggregate(), a);
  parts.byPublisher[r.publisher] = addAggregates(parts.byPublisher[r.publisher] ?? emptyAggregate(), a);
}

function mergeParts(a: MonthParts, b: MonthParts): MonthParts {
  const merge = (x: Record<string, LedgerAggregate>, y: Record<string, LedgerAggregate>) => {
    const out = { ...x };
    for (const [k, v] of Object.entries(y)) out[k] = addAggregates(out[k] ?? emptyAggregate(), v);
    return out;
  };
  return { total: addAggregates(a.total, b.total), byOperation: merge(a.byOperation, b.byOperation), byPublisher: merge(a.byPublisher, b.byPublisher) };
}

// --- validation of what is read back ----------------------------------------------------------------

function bad(key: string, why: string): never {
  throw new RefusedError('bad-ledger', `ledger object ${key} is malformed: ${why}; move it out of ${LEDGER_PREFIX} to go on`, { key });
}

function count(v: unknown, key: string, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(key, `${what} is not a number ≥ 0`);
  return v;
}

function checkUsage(u: unknown, key: string): Usage {
  const o = u as Partial<Usage> | null;
  if (typeof o !== 'object' || o === null || typeof o.requests !== 'object' || o.requests === null || !Array.isArray(o.functions)) bad(key, 'usage is not an object with requests and functions');
  for (const [k, n] of Object.entries(o.requests)) {
    if (!STORE_REQUEST_KINDS.includes(k as never)) bad(key, `usage.requests has an unknown kind '${k}'`);
    count(n, key, `usage.requests.${k}`);
  }
  const functions: FunctionUsage[] = o.functions.map((f: Partial<FunctionUsage>) => {
    if (typeof f?.fn !== 'string' || !FUNCTION_ARCHITECTURES.includes(f.arch as never)) bad(key, 'a function entry lacks fn or arch');
    return { fn: f.fn, arch: f.arch!, memoryMb: count(f.memoryMb, key, 'memoryMb'), invocations: count(f.invocations, key, 'invocations'), billedMs: count(f.billedMs, key, 'billedMs') };
  });
  return { requests: { ...o.requests }, egressBytes: count(o.egressBytes, key, 'egressBytes'), ingressBytes: count(o.ingressBytes, key, 'ingressBytes'), functions, secretCalls: count(o.secretCalls, key, 'secretCalls') };
}

function checkStorage(s: unknown, key: string): StorageChange {
  const o = s as Partial<StorageChange> | null;
  if (typeof o !== 'object' || o === null) bad(key, 'storage is not an object');
  return { bytesAdded: count(o.bytesAdded, key, 'bytesAdded'), bytesRemoved: count(o.bytesRemoved, key, 'bytesRemoved'), objectsAdded: count(o.objectsAdded, key, 'objectsAdded'), objectsRemoved: count(o.objectsRemoved, key, 'objectsRemoved') };
}

function parseJson(body: Buffer, key: string): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch { /* reported below */ }
  bad(key, 'it is not a JSON object');
}

function checkRecord(body: Buffer, key: string): LedgerRecord {
  const o = parseJson(body, key);
  const where = parseRecordKey(key);
  if (o.v !== 1) bad(key, `version ${String(o.v)} is not 1`);
  if (typeof o.id !== 'string' || o.id !== where?.id) bad(key, 'its id does not match its name');
  if (typeof o.time !== 'string' || Number.isNaN(Date.parse(o.time)) || monthOf(new Date(o.time)) !== where.month) bad(key, 'its time is not in the month it is filed under');
  if (typeof o.operation !== 'string' || typeof o.publisher !== 'string') bad(key, 'operation or publisher is not a string');
  if (o.revision !== null && (typeof o.revision !== 'number' || !Number.isInteger(o.revision))) bad(key, 'revision is neither null nor a whole number');
  return { v: 1, id: o.id, time: o.time, operation: o.operation, publisher: o.publisher, revision: o.revision as number | null, usage: checkUsage(o.usage, key), storage: checkStorage(o.storage, key) };
}

function checkAggregate(a: unknown, key: string): LedgerAggregate {
  const o = a as Partial<LedgerAggregate> | null;
  if (typeof o !== 'object' || o === null || typeof o.deltaByteHours !== 'number') bad(key, 'an aggregate is malformed');
  return { records: count(o.records, key, 'records'), usage: checkUsage(o.usage, key), storage: checkStorage(o.storage, key), deltaByteHours: o.deltaByteHours };
}

function checkSummary(body: Buffer, key: string, month: string): MonthSummary {
  const o = parseJson(body, key);
  if (o.v !== 1 || o.month !== month) bad(key, `it is not the version 1 summary of ${month}`);
  if (!Array.isArray(o.folded) || o.folded.some((x) => typeof x !== 'string')) bad(key, 'folded is not a list of record ids');
  const byMap = (m: unknown, what: string) => {
    if (typeof m !== 'object' || m === null) bad(key, `${what} is not an object`);
    return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, checkAggregate(v, key)]));
  };
  return {
    v: 1, month, folded: o.folded as string[], total: checkAggregate(o.total, key),
    byOperation: byMap(o.byOperation, 'byOperation'), byPublisher: byMap(o.byPublisher, 'byPublisher'), updatedAt: String(o.updatedAt),
  };
}

// --- store helpers --------------------------------------------------------------------------------

async function listAll(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  let after: string | undefined;
  do {
    const page = await store.list(prefix, after === undefined ? {} : { after });
    out.push(...page.objects);
    after = page.next;
  } while (after !== undefined);
  return out;
}

/** fn over items, at most `width` at a time, results in order. */
async function mapBounded<T, R>(items: readonly T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

// --- writing --------------------------------------------------------------------------------------

export interface AppendOptions {
  now?: Date;
  /** Roll the current month up once it holds more open records than this. */
  rollUpAbove?: number;
}

export interface AppendResult {
  record: LedgerRecord;
  key: string;
  /** What the upkeep after the write did, e.g. 'rolled up 2026-11 (12 records)'. */
  upkeep?: string;
  /** The upkeep failed; the record is written all the same and the next operation tries again. */
  warning?: string;
}

/** What appending costs itself: the record's create-only PUT and the LIST of the upkeep that follows. */
const OWN_REQUESTS: Usage = { ...emptyUsage(), requests: { conditionalPut: 1, list: 1 } };

function storageChange(s: Partial<StorageChange> = {}): StorageChange {
  const out = { ...NO_STORAGE, ...s };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isInteger(v) || v < 0) throw new RefusedError('bad-ledger-input', `storage.${k} must be a whole number ≥ 0, got ${v}`);
  }
  return out;
}

export function newLedgerRecord(input: LedgerInput, now: Date = new Date()): LedgerRecord {
  const compact = now.toISOString().replace(/[-:.]/g, '');
  const id = `${compact}-${randomBytes(6).toString('hex')}`;
  return {
    v: 1,
    id,
    time: now.toISOString(),
    operation: input.operation,
    publisher: input.publisher ?? 'owner',
    revision: input.revision ?? null,
    usage: addUsage(input.usage, OWN_REQUESTS),
    storage: storageChange(input.storage),
  };
}

/**
 * Appends one record (one create-only PUT), then does a little upkeep: rolls up the oldest month that
 * is over and still has open records, or the current month once it holds more than `rollUpAbove`. Throws
 * only when the record could not be written; an upkeep failure comes back as `warning`.
 */
export async function appendLedgerRecord(store: ObjectStore, input: LedgerInput, options: AppendOptions = {}): Promise<AppendResult> {
  const now = options.now ?? new Date();
  const rollUpAbove = options.rollUpAbove ?? DEFAULT_ROLL_UP_ABOVE;
  // One LIST page (at most 1,000 keys on S3) must be able to show more than rollUpAbove records.
  if (!Number.isInteger(rollUpAbove) || rollUpAbove < 1 || rollUpAbove > 999) throw new RangeError(`rollUpAbove must be a whole number from 1 to 999, got ${rollUpAbove}`);
  let record = newLedgerRecord(input, now);
  let key = recordKey(monthOf(now), record.id);
  for (let attempt = 0; ; attempt++) {
    try {
      await store.put(key, Buffer.from(JSON.stringify(record)), { ifNoneMatch: '*', contentType: 'application/json' });
      break;
    } catch (err) {
      // 48 random bits in the same millisecond: only a retried write of our own could collide.
      if (!(err instanceof PreconditionFailedError) || attempt >= 2) throw err;
      record = newLedgerRecord(input, now);
      key = recordKey(monthOf(now), record.id);
    }
  }
  try {
    const upkeep = await ledgerUpkeep(store, monthOf(now), rollUpAbove);
    return { record, key, ...(upkeep ? { upkeep } : {}) };
  } catch (err) {
    return { record, key, warning: `the ledger record is written, but rolling up the ledger failed: ${(err as Error).message}` };
  }
}

/** One LIST of the open records; at most one roll-up. */
async function ledgerUpkeep(store: ObjectStore, current: string, rollUpAbove: number): Promise<string | undefined> {
  const page = await store.list(RECORDS, { limit: rollUpAbove + 1 });
  const months = page.objects.map((o) => parseRecordKey(o.key)?.month).filter((m): m is string => m !== undefined);
  const oldest = months[0];
  let month: string | undefined;
  if (oldest !== undefined && oldest < current) month = oldest;
  else if (months.filter((m) => m === current).length > rollUpAbove) month = current;
  if (month === undefined) return undefined;
  const done = await rollUpMonth(store, month);
  return `rolled up ${month} (${done.folded} records)`;
}

export interface RollUpResult {
  /** Records newly added to the summary. */
  folded: number;
  /** Record objects deleted (newly folded and left over from an earlier roll-up). */
  deleted: number;
}

/** Folds every open record of `month` into its summary (compare-and-swap), then deletes them. */
export async function rollUpMonth(store: ObjectStore, month: string, attempts = 8): Promise<RollUpResult> {
  parseMonth(month);
  const sKey = summaryKey(month);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const got = await store.get(sKey);
    const summary = got ? checkSummary(got.body, sKey, month) : undefined;
    const listed = (await listAll(store, `${RECORDS}${month}/`)).filter((o) => parseRecordKey(o.key));
    const folded = new Set(summary?.folded ?? []);
    const fresh = listed.filter((o) => !folded.has(parseRecordKey(o.key)!.id));
    const bodies = await mapBounded(fresh, 16, (o) => store.get(o.key));
    // A record gone between the LIST and the GET was folded and deleted by another roll-up.
    if (bodies.some((b) => b === null)) continue;
    const parts: MonthParts = summary ? { total: summary.total, byOperation: summary.byOperation, byPublisher: summary.byPublisher } : emptyParts();
    for (let i = 0; i < fresh.length; i++) addRecord(parts, checkRecord(bodies[i]!.body, fresh[i]!.key));
    const next: MonthSummary = { v: 1, month, folded: listed.map((o) => parseRecordKey(o.key)!.id), ...parts, updatedAt: new Date().toISOString() };
    try {
      await store.put(sKey, Buffer.from(JSON.stringify(next)), { ...(got ? { ifMatch: got.etag } : { ifNoneMatch: '*' }), contentType: 'application/json' });
    } catch (err) {
      if (err instanceof PreconditionFailedError) continue;
      throw err;
    }
    const keys = listed.map((o) => o.key);
    for (let i = 0; i < keys.length; i += 1000) await store.delete(keys.slice(i, i + 1000));
    return { folded: fresh.length, deleted: keys.length };
  }
  throw new BusyError('ledger-busy', `the ledger summary of ${month} kept changing during ${attempts} roll-up attempts; try again`);
}

// --- reading --------------------------------------------------------------------------------------

export interface MonthState extends MonthParts {
  month: string;
  /** Records not folded into the summary yet. */
  openRecords: number;
}

export interface LedgerState {
  /** By month, oldest first. */
  months: MonthState[];
}

/**
 * Every month's sums, each record counted exactly once: summaries plus the records they have not folded.
 * Consistent even while others append and roll up (the summaries are checked unchanged after the reads).
 */
export async function readLedger(store: ObjectStore, attempts = 10): Promise<LedgerState> {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const before = await listAll(store, MONTHS);
    const summaries = new Map<string, MonthSummary>();
    let changed = false;
    await mapBounded(before, 16, async (info) => {
      const month = /^\.scvmfs\/ledger\/months\/(\d{4}-\d{2})\.json$/.exec(info.key)?.[1];
      if (!month) return;
      const got = await store.get(info.key);
      if (!got || got.etag !== info.etag) { changed = true; return; }
      summaries.set(month, checkSummary(got.body, info.key, month));
    });
    if (changed) continue;
    const folded = new Map([...summaries].map(([m, s]) => [m, new Set(s.folded)]));
    const open = (await listAll(store, RECORDS)).flatMap((o) => {
      const where = parseRecordKey(o.key);
      return where && !folded.get(where.month)?.has(where.id) ? [{ key: o.key, month: where.month }] : [];
    });
    const bodies = await mapBounded(open, 16, (o) => store.get(o.key));
    if (bodies.some((b) => b === null)) continue;
    const after = await listAll(store, MONTHS);
    if (after.length !== before.length || after.some((o, i) => o.key !== before[i]!.key || o.etag !== before[i]!.etag)) continue;

    const months = new Map<string, MonthState>();
    const stateOf = (month: string) => {
      let s = months.get(month);
      if (!s) {
        const sum = summaries.get(month);
        s = { month, openRecords: 0, ...(sum ? { total: sum.total, byOperation: sum.byOperation, byPublisher: sum.byPublisher } : emptyParts()) };
        months.set(month, s);
      }
      return s;
    };
    for (const m of summaries.keys()) stateOf(m);
    for (let i = 0; i < open.length; i++) {
      const s = stateOf(open[i]!.month);
      const parts = emptyParts();
      addRecord(parts, checkRecord(bodies[i]!.body, open[i]!.key));
      Object.assign(s, mergeParts(s, parts));
      s.openRecords++;
    }
    return { months: [...months.values()].sort((a, b) => a.month.localeCompare(b.month)) };
  }
  throw new BusyError('ledger-busy', `the ledger kept changing during ${attempts} reads; try again`);
}

export interface StorageHeld {
  bytes: number;
  objects: number;
}

/** Storage held after every recorded operation up to and including `throughMonth` (default: all). */
export function storageHeld(state: LedgerState, throughMonth?: string): StorageHeld {
  let bytes = 0;
  let objects = 0;
  for (const m of state.months) {
    if (throughMonth !== undefined && m.month > throughMonth) break;
    bytes += m.total.storage.bytesAdded - m.total.storage.bytesRemoved;
    objects += m.total.storage.objectsAdded - m.total.storage.objectsRemoved;
  }
  return { bytes, objects };
}

export interface MonthReport {
  month: string;
  /** Hours of the month covered so far (all of them once it is over). */
  hoursElapsed: number;
  hoursInMonth: number;
  total: LedgerAggregate;
  byOperation: Record<string, LedgerAggregate>;
  byPublisher: Record<string, LedgerAggregate>;
  storageAtStart: StorageHeld;
  storageNow: StorageHeld;
  /** Bytes held integrated over the elapsed part of the month, in GB-months (what storage is billed on). */
  gbMonths: number;
}

/** The month's sums and the storage it was billed for, up to `now`. */
export function monthReport(state: LedgerState, month: string, now: Date = new Date()): MonthReport {
  const start = parseMonth(month);
  const hours = hoursInMonth(month);
  const elapsed = Math.min(hours, Math.max(0, (now.getTime() - start.getTime()) / 3_600_000));
  const prev = monthOf(new Date(start.getTime() - 1));
  const atStart = storageHeld(state, prev);
  const m = state.months.find((x) => x.month === month) ?? { month, openRecords: 0, ...emptyParts() };
  const delta = m.total.storage.bytesAdded - m.total.storage.bytesRemoved;
  // ∫ held dt = held₀·τ + Σ Δᵣ·(τ − tᵣ) over the month's records, all of which lie before now.
  const byteHours = Math.max(0, atStart.bytes * elapsed + delta * elapsed - m.total.deltaByteHours);
  return {
    month,
    hoursElapsed: elapsed,
    hoursInMonth: hours,
    total: m.total,
    byOperation: m.byOperation,
    byPublisher: m.byPublisher,
    storageAtStart: atStart,
    storageNow: storageHeld(state, month),
    gbMonths: byteHours / hours / 2 ** 30,
  };
}

/**
 * Records what the store holds now as a 'baseline' operation: one LIST of everything, the difference to
 * the ledger's own totals added or removed. For a repository that had objects before it had a ledger.
 */
export async function recordLedgerBaseline(store: ObjectStore, options: AppendOptions = {}): Promise<AppendResult & { held: StorageHeld }> {
  let bytes = 0;
  let objects = 0;
  let pages = 0;
  let after: string | undefined;
  do {
    const page = await store.list('', after === undefined ? {} : { after });
    pages++;
    for (const o of page.objects) {
      if (o.key.startsWith(RECORDS)) continue; // records come and go with roll-ups
      bytes += o.size;
      objects++;
    }
    after = page.next;
  } while (after !== undefined);
  const held = storageHeld(await readLedger(store));
  const result = await appendLedgerRecord(store, {
    operation: 'baseline',
    usage: { ...emptyUsage(), requests: { list: pages } },
    storage: {
      bytesAdded: Math.max(0, bytes - held.bytes), bytesRemoved: Math.max(0, held.bytes - bytes),
      objectsAdded: Math.max(0, objects - held.objects), objectsRemoved: Math.max(0, held.objects - objects),
    },
  }, options);
  return { ...result, held: { bytes, objects } };
}
