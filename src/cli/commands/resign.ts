// scvmfs resign: re-sign the whitelist with the repository's own master key (repo/whitelist-signing.ts).
import type { Command } from 'commander';
import { loadKeys } from '../../repo/keys-dir.js';
import { resignWhitelist } from '../../repo/whitelist-signing.js';
import { openMeteredStore } from '../../store/open-store.js';
import { positiveInt, printJson, storeOption } from '../options.js';
import { billOptions, operationUsage, reportOperationBill, storageFromMeter, type BillOptions } from '../operation-bill.js';

export function register(program: Command): void {
  billOptions(program.command('resign'))
    .description('re-sign the whitelist with the master key (it expires after at most 30 days)')
    .argument('<fqrn>', 'repository name')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.masterkey, <fqrn>.pub and <fqrn>.crt')
    .option('--days <days>', 'validity (at most 30)', (v) => positiveInt(v, '--days'), 30)
    .action(async (fqrn: string, o: BillOptions & { store: string; keys: string; days: number }) => {
      const keys = await loadKeys(o.keys, fqrn, { need: ['master', 'repository', 'anchor'] });
      const { store, meter } = openMeteredStore(o.store);
      const outcome = await resignWhitelist(store, fqrn, keys, {
        days: o.days, onWarning: (m) => console.error(`scvmfs: warning: ${m}`),
      });
      if (!o.json) {
        console.log(`whitelist of ${fqrn} re-signed for ${o.days} days (until ${outcome.expiresAt.toISOString()}), ` +
          `listing ${outcome.fingerprints.join(', ')}`);
        for (const f of outcome.dropped) console.log(`  dropped ${f} (its rotation overlap has ended)`);
      }
      const requests = meter.snapshot();
      const bill = await reportOperationBill(store, { operation: 'resign', fqrn, usage: operationUsage({ writer: requests }), storage: storageFromMeter(requests) }, o);
      if (o.json) printJson({ fqrn, expiresAt: outcome.expiresAt.toISOString(), fingerprints: outcome.fingerprints, dropped: outcome.dropped, requests, bill });
    });
}
