// `scvmfs lease list|release`: the owner's view of who holds which sub-path, and a way to drop a lease
// whose writer was killed (it would otherwise block the path until it expires).
import type { Command } from 'commander';
import { ownerReleaseLease } from '../../repo/leases.js';
import { leaseOverview, requireOwner, type TransactionInfo } from '../../repo/transactions.js';
import { openStore } from '../../store/open-store.js';
import { storeOption } from '../options.js';

function txnLine(t: TransactionInfo): string {
  const who = t.publisher ? ` ${t.publisher} ${t.path ?? ''}` : '';
  const rev = t.revision !== undefined ? ` revision ${t.revision}` : '';
  return `  txn ${t.txnId}  ${t.status}${rev}${who}  (updated ${t.updatedAt.toISOString()})`;
}

export function register(program: Command): void {
  const lease = program.command('lease').description('list the leases and transactions of a repository, or release a lease (owner)');

  lease.command('list')
    .description('who holds which sub-path until when, and the status of their transactions (tokens are never shown)')
    .argument('<fqrn>', 'repository name')
    .addOption(storeOption())
    .option('--keys <dir>', 'check first that this key directory holds the repository or master key')
    .action(async (fqrn: string, o: { store: string; keys?: string }) => {
      const store = openStore(o.store);
      if (o.keys) await requireOwner(store, fqrn, o.keys);
      const now = new Date();
      const view = await leaseOverview(store, now);
      if (view.leases.length === 0) console.log(`${fqrn} has no leases`);
      for (const { lease: l, live, transactions } of view.leases) {
        const left = live ? `${l.secondsRemaining} s left` : `expired ${Math.round((now.getTime() - Date.parse(l.expiresAt)) / 1000)} s ago`;
        console.log(`lease ${l.leaseId}  ${l.publisher}  ${l.path}  until ${l.expiresAt} (${left})`);
        for (const t of transactions) console.log(txnLine(t));
      }
      if (view.orphans.length > 0) {
        console.log(`unfinished transactions without a lease (abort them with: scvmfs abort ${fqrn} --all-stale --store … --keys …):`);
        for (const t of view.orphans) console.log(txnLine(t));
      }
      if (view.finished > 0) console.log(`${view.finished} finished transactions (committed or aborted)`);
    });

  lease.command('release')
    .description('drop a lease without its token, e.g. of a killed writer; its unfinished transactions are then stale')
    .argument('<fqrn>', 'repository name')
    .argument('<lease-id|path>', 'the lease id, or the exact path the lease holds (e.g. /sw/tools)')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding the repository key (<fqrn>.key, .crt) or the master key')
    .action(async (fqrn: string, which: string, o: { store: string; keys: string }) => {
      const store = openStore(o.store);
      await requireOwner(store, fqrn, o.keys);
      const dropped = await ownerReleaseLease(store, which, new Date());
      if (!dropped) {
        console.log(`no lease ${which} in ${fqrn} (already released or expired and taken over)`);
        return;
      }
      console.log(`released lease ${dropped.leaseId} of '${dropped.publisher}' on ${dropped.path}`);
      const view = await leaseOverview(store, new Date());
      const left = view.orphans.filter((t) => t.leaseId === dropped.leaseId);
      if (left.length > 0) console.log(`${left.length} unfinished transaction(s) of it remain; drop them with: scvmfs abort ${fqrn} --all-stale`);
    });
}
