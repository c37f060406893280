// scvmfs rotate-key: a new repository key and certificate, trusted beside the old ones for an overlap
// (repo/rotate-key.ts).
import { Option, type Command } from 'commander';
import { DEFAULT_OVERLAP_MS, rotateRepositoryKey } from '../../repo/rotate-key.js';
import { openMeteredStore } from '../../store/open-store.js';
import { durationOption, formatDuration, positiveInt, printJson, storeOption } from '../options.js';
import { billOptions, operationUsage, reportOperationBill, storageFromMeter, type BillOptions } from '../operation-bill.js';

export function register(program: Command): void {
  billOptions(program.command('rotate-key'))
    .description('replace the repository key and certificate; the old ones stay trusted for an overlap, then resign drops them')
    .argument('<fqrn>', 'repository name')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.masterkey, .pub, .key and .crt (the new pair replaces .key/.crt)')
    .addOption(new Option('--overlap <duration>', 'how long the old certificate stays listed, e.g. 7d, 36h')
      .argParser(durationOption('--overlap', 60_000, 30 * 86_400_000)).default(DEFAULT_OVERLAP_MS, formatDuration(DEFAULT_OVERLAP_MS)))
    .option('--whitelist-days <days>', 'validity of the re-signed whitelist (at most 30)', (v) => positiveInt(v, '--whitelist-days'), 30)
    .action(async (fqrn: string, o: BillOptions & { store: string; keys: string; overlap: number; whitelistDays: number }) => {
      const { store, meter } = openMeteredStore(o.store);
      const r = await rotateRepositoryKey(store, {
        fqrn, keysDir: o.keys, overlapMs: o.overlap, whitelistDays: o.whitelistDays,
        onWarning: (m) => console.error(`scvmfs: warning: ${m}`),
      });
      if (!o.json) {
        console.log(`rotated the repository key of ${fqrn}: new certificate ${r.newFingerprint}`);
        console.log(`  the old certificate ${r.oldFingerprint} stays trusted until ${r.overlapUntil.toISOString()}; ` +
          `the first resign after that drops it`);
        console.log(`  old key kept as ${r.retired.key} and ${r.retired.crt}`);
        console.log(`  the next publish signs with the new key; update the functions' key secret now (docs/aws.md)`);
      }
      const requests = meter.snapshot();
      const bill = await reportOperationBill(store, { operation: 'rotate-key', fqrn, usage: operationUsage({ writer: requests }), storage: storageFromMeter(requests) }, o);
      if (o.json) printJson({ fqrn, ...r, overlapUntil: r.overlapUntil.toISOString(), whitelistExpiresAt: r.whitelistExpiresAt.toISOString(), requests, bill });
    });
}
