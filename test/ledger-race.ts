// The ledger race shared by the directory and S3 tests: 8 writer processes × 5 records and a reader
// process reading all along, started together with raceProcesses.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { raceProcesses } from './helpers.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { readLedger, rollUpMonth, storageHeld, LEDGER_PREFIX, type LedgerState } from '../src/repo/ledger.js';

const LEDGER_JS = pathToFileURL(join(fileURLToPath(import.meta.url), '..', '..', 'src', 'repo', 'ledger.js')).href;
const OPEN_STORE_JS = pathToFileURL(join(fileURLToPath(import.meta.url), '..', '..', 'src', 'store', 'open-store.js')).href;

const records = (s: LedgerState) => s.months.reduce((n, m) => n + m.total.records, 0);
const bytesAdded = (s: LedgerState) => s.months.reduce((n, m) => n + m.total.storage.bytesAdded, 0);

export async function keysUnder(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let after: string | undefined;
  do {
    const page = await store.list(prefix, after ? { after } : {});
    out.push(...page.objects.map((o) => o.key));
    after = page.next;
  } while (after);
  return out;
}

/** 8 writers × 5 records, each adding 2^k bytes for its own k: the sum names exactly the records counted. */
const WRITER = `
import { appendLedgerRecord } from ${JSON.stringify(LEDGER_JS)};
import { openStore } from ${JSON.stringify(OPEN_STORE_JS)};
const [spec, worker] = process.argv.slice(2);
const store = openStore(spec);
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
  const warnings = [];
  for (let op = 0; op < 5; op++) {
    const k = Number(worker) * 5 + op;
    const r = await appendLedgerRecord(store, {
      operation: op % 2 ? 'publish' : 'gc', publisher: 'w' + worker, revision: k,
      usage: { requests: { put: 1 }, egressBytes: 0, ingressBytes: 0, functions: [], secretCalls: 0 },
      storage: { bytesAdded: 2 ** k, objectsAdded: 1 },
    }, { rollUpAbove: 3 });
    if (r.warning) warnings.push(r.warning);
  }
  console.log(JSON.stringify({ warnings }));
  process.exit(0);
});
`;

/** Reads the ledger over and over while the writers race: never a record twice, never one lost. */
const READER = `
import { readLedger } from ${JSON.stringify(LEDGER_JS)};
import { openStore } from ${JSON.stringify(OPEN_STORE_JS)};
const store = openStore(process.argv[2]);
const popcount = (n) => n.toString(2).split('').filter((c) => c === '1').length;
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
  let last = 0, reads = 0, bad = [];
  const until = Date.now() + 60000;
  while (last < 40 && Date.now() < until) {
    let state;
    try { state = await readLedger(store); } catch (err) { if (err.code === 'ledger-busy') continue; throw err; }
    reads++;
    const n = state.months.reduce((s, m) => s + m.total.records, 0);
    const bytes = state.months.reduce((s, m) => s + m.total.storage.bytesAdded, 0);
    if (n < last) bad.push('count went down from ' + last + ' to ' + n);
    if (popcount(bytes) !== n || n > 40) bad.push(n + ' records but bytes ' + bytes.toString(2));
    last = n;
  }
  console.log(JSON.stringify({ last, reads, bad }));
  process.exit(0);
});
`;

/** Races the writers and the reader on the store `spec` names (`store` is the same store, for checking). */
export async function raceLedger(spec: string, scriptDir: string, store: ObjectStore): Promise<{ warnings: string[]; reads: number }> {
  const writers = Array.from({ length: 8 }, (_, w) => [spec, String(w)]);
  const [readerOut, writerOut] = await Promise.all([
    raceProcesses(join(scriptDir, 'reader.mjs'), READER, [[spec]]),
    raceProcesses(join(scriptDir, 'writer.mjs'), WRITER, writers),
  ]);
  const reader = JSON.parse(readerOut![0]!) as { last: number; reads: number; bad: string[] };
  assert.deepEqual(reader.bad, []);
  assert.ok(reader.reads > 0);
  const state = await readLedger(store);
  assert.equal(records(state), 40);
  assert.equal(bytesAdded(state), 2 ** 40 - 1, 'every record counted exactly once');
  assert.equal(storageHeld(state).objects, 40);
  assert.equal(state.months.reduce((s, m) => s + (m.total.usage.requests.put ?? 0), 0), 40);
  // Roll-ups happened while they raced, and a final one leaves nothing open and the same totals.
  assert.ok(state.months.every((m) => m.openRecords < 40), 'some records were rolled up during the race');
  for (const m of state.months) await rollUpMonth(store, m.month);
  const after = await readLedger(store);
  assert.equal(bytesAdded(after), 2 ** 40 - 1);
  assert.equal(after.months.reduce((s, m) => s + m.openRecords, 0), 0);
  assert.deepEqual(await keysUnder(store, `${LEDGER_PREFIX}records/`), []);
  return { warnings: writerOut.flatMap((o) => (JSON.parse(o) as { warnings: string[] }).warnings), reads: reader.reads };
}

