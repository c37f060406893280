// The cost ledger: concurrent writers in separate processes never lose or double a record, a failure at
// any request leaves the record or nothing with totals that agree, storage totals equal bytes added minus
// removed across roll-ups, and the ledger stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { keysUnder, raceLedger } from './ledger-race.js';
import { FsStore } from '../src/store/fs-store.js';
import { FaultStore } from '../src/store/fault-store.js';
import type { ByteRange, ListPage, ObjectStore, PutOptions, ReadRange } from '../src/store/object-store.js';
import { MeteredStore } from '../src/store/metered-store.js';
import { generateRepositoryKeys } from '../src/format/keys.js';
import { initRepository } from '../src/repo/repository.js';
import { publishDirectory } from '../src/publish/publish-directory.js';
import { recordOperationCost } from '../src/repo/cost-report.js';
import { addUsage, emptyUsage, functionUsageFromInvocations, usageFromMeter } from '../src/cost/usage.js';
import { AWS_US_EAST_1 } from '../src/cost/prices.js';
import {
  appendLedgerRecord, monthReport, readLedger, recordLedgerBaseline, rollUpMonth, storageHeld, LEDGER_PREFIX, type LedgerState,
} from '../src/repo/ledger.js';

const records = (s: LedgerState) => s.months.reduce((n, m) => n + m.total.records, 0);
const bytesAdded = (s: LedgerState) => s.months.reduce((n, m) => n + m.total.storage.bytesAdded, 0);


test('8 writer processes × 5 operations on one directory store give 40 records, none lost or doubled, read consistently meanwhile', async () => {
  const dir = tempDir('ledger-race');
  const storeDir = join(dir, 'store');
  await raceLedger(storeDir, dir, new FsStore(storeDir));
});

// --- failures at every request ----------------------------------------------------------------------

type Setup = (store: ObjectStore) => Promise<void>;
const op = (k: number, month: string, day = 10) => ({
  input: { operation: 'publish', usage: emptyUsage(), storage: { bytesAdded: 2 ** k, bytesRemoved: 0, objectsAdded: 1, objectsRemoved: 0 } },
  now: new Date(`${month}-${String(day).padStart(2, '0')}T12:00:${String(k).padStart(2, '0')}Z`),
});

const SCENARIOS: { name: string; setup: Setup; before: number; next: ReturnType<typeof op> }[] = [
  {
    name: 'the fourth record of a month starts its first roll-up',
    setup: async (s) => { for (let k = 0; k < 3; k++) await appendLedgerRecord(s, op(k, '2026-10').input, { now: op(k, '2026-10').now, rollUpAbove: 3 }); },
    before: 3,
    next: op(3, '2026-10'),
  },
  {
    name: 'the first record of a new month closes the last (a summary exists: compare-and-swap)',
    setup: async (s) => {
      for (let k = 0; k < 6; k++) await appendLedgerRecord(s, op(k, '2026-10').input, { now: op(k, '2026-10').now, rollUpAbove: 3 });
    },
    before: 6,
    next: op(6, '2026-11'),
  },
];

for (const sc of SCENARIOS) {
  test(`a failure at every request of an append leaves the record or nothing, totals agreeing: ${sc.name}`, async () => {
    const dir = tempDir('ledger-kill');
    const clean = new FsStore(join(dir, 'clean'));
    await sc.setup(clean);
    const counter = new FaultStore(clean, {});
    const done = await appendLedgerRecord(counter, sc.next.input, { now: sc.next.now, rollUpAbove: 3 });
    assert.match(done.upkeep ?? '', /^rolled up 2026-10/, 'the scenario does roll up');
    const requests = counter.requests;
    assert.ok(requests >= 8, `the append and its roll-up take ${requests} requests`);
    const expectedBits = (n: number) => 2 ** n - 1;

    for (let n = 1; n <= requests; n++) {
      const store = new FsStore(join(dir, `fail-${n}`));
      await sc.setup(store);
      const faulty = new FaultStore(store, { failNth: [n] });
      let written: boolean;
      try {
        const r = await appendLedgerRecord(faulty, sc.next.input, { now: sc.next.now, rollUpAbove: 3 });
        written = true;
        assert.ok(r.warning !== undefined || n > requests, `request ${n} failed, so the upkeep warns`);
      } catch {
        written = false;
      }
      assert.equal(written, n !== 1, `only a failure of the record's own PUT (request 1) loses the record (request ${n})`);
      const state = await readLedger(store);
      const count = sc.before + (written ? 1 : 0);
      assert.equal(records(state), count, `request ${n}: records`);
      assert.equal(bytesAdded(state), expectedBits(count), `request ${n}: every present record counted once`);
      assert.equal(storageHeld(state).objects, count, `request ${n}: objects held`);
      // The next operation finishes whatever roll-up was cut short; still nothing lost or doubled.
      const later = op(7, '2026-11', 20);
      await appendLedgerRecord(store, later.input, { now: later.now, rollUpAbove: 3 });
      const healed = await readLedger(store);
      assert.equal(records(healed), count + 1, `request ${n}: after the next append`);
      assert.equal(bytesAdded(healed), expectedBits(count) + 2 ** 7, `request ${n}: after the next append`);
      assert.equal(healed.months.find((m) => m.month === '2026-10')?.openRecords, 0, `request ${n}: October closed`);
    }
  });
}

// --- storage totals ---------------------------------------------------------------------------------

test('storage held equals bytes added minus removed after every step, with no drift across roll-ups', async () => {
  const store = new FsStore(join(tempDir('ledger-drift'), 'store'));
  let seed = 12345;
  const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  let held = 0;
  let objects = 0;
  // Level changes in time order, for integrating storage by hand.
  const changes: { t: number; delta: number }[] = [];
  const start = Date.parse('2026-08-01T00:00:00Z');
  const end = Date.parse('2026-12-01T00:00:00Z');
  const steps = 240;
  for (let i = 0; i < steps; i++) {
    const t = start + Math.floor(((end - start) * (i + 0.5)) / steps);
    const added = rand(3) === 0 ? 0 : rand(50_000_000) + 1;
    const removed = rand(4) === 0 ? Math.min(held + added, rand(80_000_000)) : 0;
    const objAdded = added > 0 ? rand(100) + 1 : 0;
    const objRemoved = Math.min(objects + objAdded, removed > 0 ? rand(60) : 0);
    held += added - removed;
    objects += objAdded - objRemoved;
    changes.push({ t, delta: added - removed });
    await appendLedgerRecord(store, { operation: 'publish', usage: emptyUsage(), storage: { bytesAdded: added, bytesRemoved: removed, objectsAdded: objAdded, objectsRemoved: objRemoved } }, { now: new Date(t), rollUpAbove: 5 });
    if (i % 40 === 39) {
      const s = await readLedger(store);
      assert.deepEqual(storageHeld(s), { bytes: held, objects }, `after ${i + 1} operations`);
    }
  }
  const state = await readLedger(store);
  assert.equal(records(state), steps);
  assert.deepEqual(storageHeld(state), { bytes: held, objects });
  assert.ok(state.months.filter((m) => m.month < '2026-11').every((m) => m.openRecords === 0), 'past months are closed');
  // Every month rolled up once more: the same exact totals.
  for (const m of state.months) await rollUpMonth(store, m.month);
  const again = await readLedger(store);
  assert.deepEqual(storageHeld(again), { bytes: held, objects });
  for (const m of again.months) assert.deepEqual(m.total.storage, state.months.find((x) => x.month === m.month)!.total.storage);

  // GB-months of a closed month: the level integrated over the month, worked out from the changes.
  for (const month of ['2026-09', '2026-10']) {
    const ms = Date.parse(`${month}-01T00:00:00Z`);
    const me = Date.parse(month === '2026-09' ? '2026-10-01T00:00:00Z' : '2026-11-01T00:00:00Z');
    let level = changes.filter((c) => c.t < ms).reduce((s, c) => s + c.delta, 0);
    let byteMs = 0;
    let from = ms;
    for (const c of changes.filter((x) => x.t >= ms && x.t < me)) {
      byteMs += level * (c.t - from);
      level += c.delta;
      from = c.t;
    }
    byteMs += level * (me - from);
    const expected = byteMs / (me - ms) / 2 ** 30;
    const got = monthReport(again, month, new Date('2027-01-01T00:00:00Z')).gbMonths;
    assert.ok(Math.abs(got - expected) < 1e-9 * expected, `${month}: ${got} GB-months, by hand ${expected}`);
  }
});

test('the ledger stays bounded: a month holds at most a roll-up\'s worth of open records, and is emptied when it ends', async () => {
  const store = new FsStore(join(tempDir('ledger-bound'), 'store'));
  for (let i = 0; i < 60; i++) {
    await appendLedgerRecord(store, { operation: 'publish', usage: emptyUsage(), storage: { bytesAdded: 1 } }, { now: new Date(Date.parse('2026-10-01T00:00:00Z') + i * 3_600_000), rollUpAbove: 10 });
    assert.ok((await keysUnder(store, `${LEDGER_PREFIX}records/`)).length <= 11);
  }
  await appendLedgerRecord(store, { operation: 'gc', usage: emptyUsage() }, { now: new Date('2026-11-02T00:00:00Z'), rollUpAbove: 10 });
  assert.deepEqual((await keysUnder(store, `${LEDGER_PREFIX}records/2026-10/`)), []);
  const state = await readLedger(store);
  assert.equal(state.months.find((m) => m.month === '2026-10')?.total.records, 60);
  assert.deepEqual(storageHeld(state), { bytes: 60, objects: 0 });
});

test('a malformed ledger object is refused by name, not counted', async () => {
  const store = new FsStore(join(tempDir('ledger-bad'), 'store'));
  const r = await appendLedgerRecord(store, { operation: 'publish', usage: emptyUsage(), storage: { bytesAdded: 5 } });
  await store.put(r.key, Buffer.from(JSON.stringify({ ...r.record, storage: { ...r.record.storage, bytesAdded: -5 } })));
  await assert.rejects(readLedger(store), { code: 'bad-ledger', message: new RegExp(`${r.key.replace(/\./g, '\\.')} is malformed: bytesAdded`) });
  await store.put(r.key, Buffer.from('not json'));
  await assert.rejects(readLedger(store), { code: 'bad-ledger' });
  await assert.rejects(appendLedgerRecord(store, { operation: 'x', usage: emptyUsage(), storage: { bytesAdded: 1.5 } }), { code: 'bad-ledger-input' });
});


/** Runs `hook` once, just before the first LIST under `prefix`: another process's move, made at the worst time. */
class InterleavingStore implements ObjectStore {
  readonly description = 'interleaving';
  private fired = false;
  constructor(private readonly inner: ObjectStore, private readonly prefix: string, private readonly hook: () => Promise<void>) {}
  get(key: string, range?: ByteRange) { return this.inner.get(key, range); }
  getStream(key: string, range?: ReadRange) { return this.inner.getStream(key, range); }
  head(key: string) { return this.inner.head(key); }
  put(key: string, body: Uint8Array, options?: PutOptions) { return this.inner.put(key, body, options); }
  delete(keys: string[]) { return this.inner.delete(keys); }
  async list(prefix: string, options?: { after?: string; limit?: number }): Promise<ListPage> {
    if (!this.fired && prefix === this.prefix) {
      this.fired = true;
      await this.hook();
    }
    return this.inner.list(prefix, options);
  }
}

test('a reader overtaken by a roll-up between the summary and the records reads again instead of missing them', async () => {
  const store = new FsStore(join(tempDir('ledger-reader'), 'store'));
  for (let k = 0; k < 4; k++) await appendLedgerRecord(store, op(k, '2026-10').input, { now: op(k, '2026-10').now, rollUpAbove: 2 });
  for (let k = 4; k < 7; k++) await appendLedgerRecord(store, op(k, '2026-10').input, { now: op(k, '2026-10').now, rollUpAbove: 100 });
  const open = (await readLedger(store)).months[0]!.openRecords;
  assert.ok(open >= 3, `records left open: ${open}`);
  // The reader has read the summary; now a roll-up folds the open records and deletes them.
  const reader = new InterleavingStore(store, `${LEDGER_PREFIX}records/`, async () => { await rollUpMonth(store, '2026-10'); });
  const state = await readLedger(reader);
  assert.equal(records(state), 7);
  assert.equal(bytesAdded(state), 2 ** 7 - 1);
});

test('what the ledger costs: an append is one create-only PUT and one LIST; a roll-up of n records about n + 5 requests', async () => {
  const store = new FsStore(join(tempDir('ledger-requests'), 'store'));
  const counted = new FaultStore(store, {});
  for (let k = 0; k < 3; k++) await appendLedgerRecord(counted, op(k, '2026-10').input, { now: op(k, '2026-10').now, rollUpAbove: 3 });
  assert.equal(counted.requests, 6);
  const before = counted.requests;
  await appendLedgerRecord(counted, op(3, '2026-10').input, { now: op(3, '2026-10').now, rollUpAbove: 3 });
  // PUT, LIST (upkeep); GET summary, LIST month, 4 GETs, PUT summary, DELETE batch.
  assert.equal(counted.requests - before, 2 + 1 + 1 + 4 + 1 + 1);
  // The record bills its own PUT and LIST.
  const s = await readLedger(store);
  assert.deepEqual(s.months[0]!.total.usage.requests, { conditionalPut: 4, list: 4 });
});

test('a real publish, metered and recorded: its bill is its requests times the table, and the ledger\'s storage matches a LIST of the store', async () => {
  const work = tempDir('ledger-publish');
  const src = join(work, 'src');
  mkdirSync(join(src, 'd'), { recursive: true });
  for (let i = 0; i < 5; i++) writeFileSync(join(src, 'd', `f${i}`), `content ${i}\n`.repeat(100 * (i + 1)));
  const backend = new FsStore(join(work, 'store'));
  const fqrn = 'cost.example.org';
  const keys = await generateRepositoryKeys(fqrn);
  await initRepository(backend, { fqrn, keys });
  // What init wrote is the baseline; then a publish through a meter, recorded as a command would.
  const dataAtBaseline = await keysUnder(backend, 'data/');
  const baselineHeld = (await recordLedgerBaseline(backend)).held;
  const meter = new MeteredStore(backend);
  const summary = await publishDirectory(meter, src, { fqrn, keys });
  const m = meter.snapshot();
  const usage = addUsage(usageFromMeter(m), { ...emptyUsage(), functions: functionUsageFromInvocations([{ fn: 'commit', durationMs: 1.2 }, { fn: 'commit', durationMs: 7 }], 1024) });
  const before = (await keysUnder(backend, '')).length;
  const recorded = await recordOperationCost(backend, { operation: 'publish', revision: summary.revision, usage, storage: { bytesAdded: summary.bytesStored, objectsAdded: summary.objectsUploaded } }, AWS_US_EAST_1);
  assert.equal(recorded.warning, undefined);
  const writes = m.put + m.conditionalPut + 1 + 1;   // + the record's PUT and the upkeep LIST
  const reads = m.get + m.head;
  const expected = writes / 1000 * 0.005 + reads / 1000 * 0.0004 + (m.bytesIn / 2 ** 30) * 0.09 + 2 / 1e6 * 0.2 + (9 / 1000) * 1 * 0.0000166667;
  assert.ok(Math.abs(recorded.bill.total - expected) < 1e-12, `${recorded.bill.total} vs ${expected}`);
  assert.match(recorded.line, /^this publish cost \$0\.\d+ on aws-us-east-1 \(prices of 2025-01-01\)$/);
  assert.equal((await keysUnder(backend, '')).length, before + 1, 'one object more: the record');
  // The ledger holds the baseline plus what the publish reported storing; a second baseline brings it to
  // exactly what a LIST of the store finds (objects the uploader does not count, the ledger's own summary).
  const held = storageHeld(await readLedger(backend));
  assert.deepEqual(held, { bytes: baselineHeld.bytes + summary.bytesStored, objects: baselineHeld.objects + summary.objectsUploaded });
  assert.ok((await keysUnder(backend, 'data/')).length - dataAtBaseline.length >= summary.objectsUploaded);
  const again = await recordLedgerBaseline(backend);
  const all = (await Promise.all((await keysUnder(backend, '')).filter((k) => !k.startsWith(`${LEDGER_PREFIX}records/`)).map((k) => backend.head(k))));
  assert.deepEqual(again.held, { bytes: all.reduce((n, o) => n + o!.size, 0), objects: all.length });
  assert.deepEqual(storageHeld(await readLedger(backend)), again.held);
});
