// scvmfs replicate: make or update a stratum 1 of any CernVM-FS repository in a store (functions/replicate.ts).
import type { Command } from 'commander';
import { runReplication, type ReplicateResult } from '../../functions/replicate.js';
import { openStoreSource } from '../../client/sources.js';
import { openStore } from '../../store/open-store.js';
import { MeteredStore } from '../../store/metered-store.js';
import { operationUsage, reportOperationBill, type BillOptions } from '../operation-bill.js';
import { formatBytes } from '../progress.js';
import { durationOption, noLedgerOption, positiveInt, pricingOption, printJson, readTrust, storeOption, trustOptions, type TrustOptions } from '../options.js';

interface ReplicateCliOptions extends BillOptions, TrustOptions {
  store: string;
  allRevisions?: boolean;
  watch?: number;
  concurrency: number;
  json?: boolean;
}

function describe(r: ReplicateResult): string {
  const what = r.status === 'up-to-date' ? 'is up to date at' : r.status === 'replica-newer' ? 'already serves a revision newer than' : 'now serves';
  return `replica ${what} revision ${r.revision}: ${r.copied} objects copied (${formatBytes(r.bytes)}), ${r.present} already there, ` +
    `${r.catalogs} catalogs walked in ${r.steps} steps`;
}

export function register(program: Command): void {
  trustOptions(program.command('replicate')
    .description('copy a repository (ours or a stock stratum 0/1) into a store as a stratum 1; incremental')
    .argument('<source>', 'http(s) URL of the source repository, its directory, or an s3:// store'),
  "master public key(s) (<fqrn>.pub) the source's whitelist must be signed with")
    .addOption(storeOption())
    .option('--all-revisions', 'also copy every earlier revision, not only the head and the tagged ones')
    .option('--concurrency <n>', 'objects in flight at once', (v) => positiveInt(v, '--concurrency'), 32)
    .option('--watch <interval>', 'keep replicating, this long after each run ends (e.g. 5m)', durationOption('--watch', 1000, 7 * 86_400_000))
    .option('--json', 'print each run\'s result and its bill as JSON')
    .addOption(pricingOption())
    .addOption(noLedgerOption())
    .action(async (location: string, o: ReplicateCliOptions) => {
      const trust = await readTrust(o);
      const target = openStore(o.store);
      const source = openStoreSource(location);
      const event = { source: location, ...trust, allRevisions: o.allRevisions };
      for (;;) {
        // Each run is metered and billed on its own: the replica's requests and the objects it now holds.
        const replica = new MeteredStore(target);
        const result = await runReplication(event, { replica, source, concurrency: o.concurrency });
        if (!o.json) console.log(describe(result));
        const bill = await reportOperationBill(target, {
          operation: 'replicate', fqrn: o.fqrn, revision: result.revision,
          usage: operationUsage({ writer: replica.snapshot() }),
          storage: { bytesAdded: result.bytes, objectsAdded: result.copied },
        }, o);
        if (o.json) printJson({ ...result, bill });
        if (o.watch === undefined) return;
        await new Promise((r) => setTimeout(r, o.watch));
      }
    });
}
