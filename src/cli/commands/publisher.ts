// scvmfs publisher add, list, remove: publisher keys and the signed policy of who may write where.
import { openStore } from '../../store/open-store.js';
import { addPublisher, listPublishers, removePublisher } from '../../repo/publishers.js';
import type { Command } from 'commander';
import { storeOption } from '../options.js';

export function register(program: Command): void {
  const publisher = program.command('publisher')
    .description('manage publisher keys and the signed publisher policy (who may write which sub-paths)');

  publisher.command('add')
    .description('create (or reuse) <keys>/<name>.publisher and allow it to write the given sub-paths')
    .argument('<fqrn>', 'repository name')
    .argument('<name>', 'publisher name (letters, digits, . _ -)')
    .requiredOption('--path <sub-path...>', 'sub-path the publisher may write (repeatable; / = everything)')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.masterkey (signs the policy)')
    .action(async (fqrn: string, name: string, o: { path: string[]; store: string; keys: string }) => {
      const added = await addPublisher(openStore(o.store), { keysDir: o.keys, fqrn, name, paths: o.path });
      const entry = added.policy.publishers.find((p) => p.name === name)!;
      console.log(`${added.keyCreated ? 'created' : 'reused'} publisher key ${added.keyPath} (${added.fingerprint})`);
      console.log(`publisher '${name}' may write ${entry.paths.join(', ')} in ${fqrn} (policy version ${added.policy.version})`);
    });

  publisher.command('list')
    .description('show the publishers of the verified policy, their paths and key fingerprints')
    .argument('<fqrn>', 'repository name')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.pub (verifies the policy)')
    .action(async (fqrn: string, o: { store: string; keys: string }) => {
      const listing = await listPublishers(openStore(o.store), { keysDir: o.keys, fqrn });
      if (listing.publishers.length === 0) {
        console.log(`${fqrn} has no publishers${listing.version ? ` (policy version ${listing.version})` : ''}`);
        return;
      }
      console.log(`publisher policy of ${fqrn}, version ${listing.version}:`);
      for (const p of listing.publishers) console.log(`${p.name}\t${p.paths.join(',')}\t${p.fingerprint}\tadded ${p.added}`);
    });

  publisher.command('remove')
    .description('remove a publisher from the policy (its key file is kept)')
    .argument('<fqrn>', 'repository name')
    .argument('<name>', 'publisher name')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.masterkey (signs the policy)')
    .action(async (fqrn: string, name: string, o: { store: string; keys: string }) => {
      const policy = await removePublisher(openStore(o.store), { keysDir: o.keys, fqrn, name });
      console.log(`publisher '${name}' removed from ${fqrn} (policy version ${policy.version})`);
    });



}
