// scvmfs resign: re-sign the whitelist with the repository's own master key (repo/whitelist-signing.ts).
import type { Command } from 'commander';
import { loadKeys } from '../../repo/keys-dir.js';
import { resignWhitelist } from '../../repo/whitelist-signing.js';
import { openStore } from '../../store/open-store.js';
import { positiveInt, storeOption } from '../options.js';

export function register(program: Command): void {
  program.command('resign')
    .description('re-sign the whitelist with the master key (it expires after at most 30 days)')
    .argument('<fqrn>', 'repository name')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.masterkey, <fqrn>.pub and <fqrn>.crt')
    .option('--days <days>', 'validity (at most 30)', (v) => positiveInt(v, '--days'), 30)
    .action(async (fqrn: string, o: { store: string; keys: string; days: number }) => {
      const keys = await loadKeys(o.keys, fqrn, { need: ['master', 'repository', 'anchor'] });
      const outcome = await resignWhitelist(openStore(o.store), fqrn, keys, {
        days: o.days, onWarning: (m) => console.error(`scvmfs: warning: ${m}`),
      });
      console.log(`whitelist of ${fqrn} re-signed for ${o.days} days (until ${outcome.expiresAt.toISOString()}), ` +
        `listing ${outcome.fingerprints.join(', ')}`);
      for (const f of outcome.dropped) console.log(`  dropped ${f} (its rotation overlap has ended)`);
    });
}
