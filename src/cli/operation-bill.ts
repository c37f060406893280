// The end of every mutating command: its bill. One call records the operation in the cost ledger and
// prints what it cost, the same way for every command (docs/cost.md).
//
// How a command uses it:
//
//   import { billOptions, operationUsage, reportOperationBill } from '../operation-bill.js';
//
//   billOptions(program.command('gc'))           // adds --pricing <name|file>, --no-ledger, --json
//     .action(async (…, o: { …; pricing: PriceTable; ledger: boolean; json?: boolean }) => {
//       const { store, meter } = openMeteredStore(o.store);
//       const summary = await …;                  // the operation itself
//       if (!o.json) console.log(…);              // the command's own summary lines
//       const bill = await reportOperationBill(store, {
//         operation: 'gc', fqrn, publisher: 'owner', revision: summary.revision,
//         usage: operationUsage({ writer: meter.snapshot() }),   // + functionRequests, functions, secretCalls
//         storage: { bytesRemoved: summary.bytesRemoved, objectsRemoved: summary.objectsRemoved },
//       }, o);                                    // prints the bill and its one-line total (not with --json)
//       if (o.json) printJson({ ...summary, bill });
//     });
//
// - A command that already has --json adds only `pricingOption()` and `noLedgerOption()` (options.ts).
// - Storage added: `storageFromMeter(meter.snapshot())` when every object went through the store client,
//   `storedBy([meters…], uploader.storedOutside)` when some went around it; gc passes what it removed.
// - Take `usage` from the meter after the operation and before this call: the ledger's own two requests
//   (its create-only PUT and one LIST) are added by the ledger itself.
// - A ledger write that fails never fails the command (the operation has landed): it is a warning on
//   stderr, and `bill.ledger.recorded` is false.
// - Without --json the bill goes to stdout, indented like the commands' summary lines, ending with
//   `  this gc cost $0.0123 on aws-us-east-1 (prices of 2025-01-01)`.
import type { Command } from 'commander';
import { billUsage, formatBill, formatBillTotal, type Bill } from '../cost/bill.js';
import type { PriceTable } from '../cost/prices.js';
import type { Usage } from '../cost/usage.js';
import { recordOperationCost } from '../repo/cost-report.js';
import type { StorageChange } from '../repo/ledger.js';
import type { ObjectStore } from '../store/object-store.js';
import { jsonOption, noLedgerOption, pricingOption } from './options.js';

export { operationUsage, type OperationMeters } from '../cost/usage.js';

export interface OperationBillInput {
  /** 'publish' | 'ingest' | 'resign' | 'rotate-key' | 'gc' | 'check' | 'replicate' | … */
  operation: string;
  fqrn: string;
  /** The publisher's name; 'owner' (the default) for the owner's keys. */
  publisher?: string;
  /** The revision the operation produced or worked on. */
  revision?: number | null;
  /** What the operation caused (operationUsage). */
  usage: Usage;
  /** Bytes and objects the operation added to the store, or removed from it. */
  storage?: Partial<StorageChange>;
}

/** The values of the options billOptions adds. */
export interface BillOptions {
  pricing: PriceTable;
  /** False with --no-ledger. */
  ledger: boolean;
  json?: boolean;
}

/** What --json carries under `bill`. */
export interface OperationBill {
  operation: string;
  fqrn: string;
  publisher: string;
  revision: number | null;
  /** What the operation caused, the ledger's own requests included when it was recorded. */
  usage: Usage;
  storage: StorageChange;
  /** Dollars per line and the total, under `bill.pricing`. */
  bill: Bill;
  /** `this publish cost $0.0123 on aws-us-east-1 (prices of …)`. */
  line: string;
  ledger: { recorded: true; id: string; warning?: string } | { recorded: false; reason: string };
}

/**
 * Storage added, from the meter of the store the operation wrote through: the content-addressed objects
 * it created. Right wherever every object goes through the store client (not for a publish into a
 * directory, whose compress workers write files themselves: use the uploader's counts there).
 */
export function storageFromMeter(m: { objectsCreated: number; bytesCreated: number }): Partial<StorageChange> {
  return { bytesAdded: m.bytesCreated, objectsAdded: m.objectsCreated };
}

/**
 * Storage added by an operation whose objects went partly around the store client: what its meters saw
 * created (the writer's, the functions'), plus what was stored outside them (uploader.storedOutside).
 */
export function storedBy(meters: readonly { objectsCreated: number; bytesCreated: number }[], outside: { objects: number; bytes: number } = { objects: 0, bytes: 0 }): Partial<StorageChange> {
  return {
    bytesAdded: meters.reduce((n, m) => n + m.bytesCreated, outside.bytes),
    objectsAdded: meters.reduce((n, m) => n + m.objectsCreated, outside.objects),
  };
}

/** Adds --pricing, --no-ledger and --json to a command. */
export function billOptions(cmd: Command): Command {
  return cmd.addOption(pricingOption()).addOption(noLedgerOption()).addOption(jsonOption());
}

/**
 * Records the operation in the ledger (unless --no-ledger) and prints its bill (unless --json).
 * Never throws for the ledger: a failed write is a warning and `ledger.recorded: false`.
 */
export async function reportOperationBill(store: ObjectStore, input: OperationBillInput, o: BillOptions): Promise<OperationBill> {
  const publisher = input.publisher ?? 'owner';
  const revision = input.revision ?? null;
  const storage: StorageChange = { bytesAdded: 0, bytesRemoved: 0, objectsAdded: 0, objectsRemoved: 0, ...input.storage };
  let usage = input.usage;
  let bill: Bill;
  let ledger: OperationBill['ledger'];
  const warn = (m: string) => console.error(`scvmfs: warning: ${m}`);
  if (o.ledger) {
    try {
      const recorded = await recordOperationCost(store, { operation: input.operation, publisher, revision, usage: input.usage, storage }, o.pricing);
      usage = recorded.record.usage;
      bill = recorded.bill;
      ledger = { recorded: true, id: recorded.record.id, ...(recorded.warning ? { warning: recorded.warning } : {}) };
      if (recorded.warning) warn(recorded.warning);
    } catch (err) {
      bill = billUsage(usage, o.pricing);
      const reason = (err as Error).message;
      ledger = { recorded: false, reason };
      warn(`the ${input.operation} is done, but its cost could not be recorded in the ledger (scvmfs cost will not show it): ${reason}`);
    }
  } else {
    bill = billUsage(usage, o.pricing);
    ledger = { recorded: false, reason: '--no-ledger' };
  }
  const line = formatBillTotal(bill, input.operation);
  if (!o.json) {
    console.log('  bill:');
    for (const l of formatBill(bill)) console.log(`  ${l}`);
    console.log(`  ${line}`);
  }
  return { operation: input.operation, fqrn: input.fqrn, publisher, revision, usage, storage, bill, line, ledger };
}
