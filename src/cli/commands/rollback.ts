// scvmfs rollback: make a tagged revision's tree the head again (cvmfs_server rollback -t).
import type { Command } from 'commander';
import { openStore } from '../../store/open-store.js';
import { loadKeys } from '../../repo/keys-dir.js';
import { rollbackToTag } from '../../repo/rollback.js';
import { storeOption } from '../options.js';

export function register(program: Command): void {
  program.command('rollback')
    .description("publish a tagged revision's tree as a new revision; tags of later revisions are removed")
    .argument('<fqrn>', 'repository name')
    .requiredOption('--tag <name>', 'the tag to roll back to')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.key and <fqrn>.crt')
    .action(async (fqrn: string, o: { tag: string; store: string; keys: string }) => {
      const keys = await loadKeys(o.keys, fqrn, { need: ['repository', 'anchor'] });
      const done = await rollbackToTag(openStore(o.store), { fqrn, keys, tag: o.tag });
      console.log(`rolled ${fqrn} back to '${o.tag}': revision ${done.manifest.revision} has its tree (root ${done.manifest.rootCatalog.toHex()})`);
      for (const t of done.removed) console.log(`  removed tag ${t.name} (revision ${t.revision}, ${t.hash.toHex()})`);
    });
}
