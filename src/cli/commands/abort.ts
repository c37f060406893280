// `scvmfs abort`: the owner ends transactions that a killed writer left behind, one by id or every stale
// one (unfinished, its lease gone), and drops their leases.
import type { Command } from 'commander';
import { EXIT_STATUS, UsageError } from '../../errors.js';
import { abortStaleTransactions, ownerAbortTransaction, requireOwner, type OwnerAbortResult } from '../../repo/transactions.js';
import { openStore } from '../../store/open-store.js';
import { storeOption } from '../options.js';

function describe(r: OwnerAbortResult): string {
  const who = r.publisher ? ` (${r.publisher} ${r.path ?? ''})` : '';
  const o = r.outcome;
  if (o.status === 'busy') return `left ${r.txnId}${who}: ${o.message}`;
  if (o.status === 'committed') return `kept ${r.txnId}${who}: it committed${o.revision !== undefined ? ` as revision ${o.revision}` : ''}`;
  if (o.already) return `${r.txnId}${who} was already aborted`;
  return `aborted ${r.txnId}${who}${r.leaseReleased ? `, released lease ${r.leaseReleased}` : ''}`;
}

export function register(program: Command): void {
  program.command('abort')
    .description('abort a transaction that has not committed (owner), or every stale one with --all-stale')
    .argument('<fqrn>', 'repository name')
    .argument('[txn-id]', 'the transaction (see scvmfs lease list)')
    .option('--all-stale', 'every unfinished transaction whose lease is gone or expired')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding the repository key (<fqrn>.key, .crt) or the master key')
    .action(async (fqrn: string, txnId: string | undefined, o: { store: string; keys: string; allStale?: boolean }) => {
      if ((txnId === undefined) === !o.allStale) throw new UsageError('name one transaction id, or give --all-stale');
      const store = openStore(o.store);
      await requireOwner(store, fqrn, o.keys);
      const results = txnId !== undefined ? [await ownerAbortTransaction(store, txnId)] : await abortStaleTransactions(store);
      if (results.length === 0) console.log(`no stale transactions in ${fqrn}`);
      for (const r of results) console.log(describe(r));
      if (results.some((r) => r.outcome.status === 'busy')) process.exitCode = EXIT_STATUS.busy;
    });
}
