// scvmfs rollback: make a tagged revision's tree the head again (cvmfs_server rollback -t).
import type { Command } from 'commander';
import { openMeteredStore } from '../../store/open-store.js';
import { loadKeys } from '../../repo/keys-dir.js';
import { rollbackToTag } from '../../repo/rollback.js';
import { tagJson } from './tag.js';
import { printJson, storeOption } from '../options.js';
import { billOptions, operationUsage, reportOperationBill, storageFromMeter, type BillOptions } from '../operation-bill.js';

export function register(program: Command): void {
  billOptions(program.command('rollback'))
    .description("publish a tagged revision's tree as a new revision; tags of later revisions are removed")
    .argument('<fqrn>', 'repository name')
    .requiredOption('--tag <name>', 'the tag to roll back to')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.key and <fqrn>.crt')
    .action(async (fqrn: string, o: BillOptions & { tag: string; store: string; keys: string }) => {
      const keys = await loadKeys(o.keys, fqrn, { need: ['repository', 'anchor'] });
      const { store, meter } = openMeteredStore(o.store);
      const done = await rollbackToTag(store, { fqrn, keys, tag: o.tag });
      if (!o.json) {
        console.log(`rolled ${fqrn} back to '${o.tag}': revision ${done.manifest.revision} has its tree (root ${done.manifest.rootCatalog.toHex()})`);
        for (const t of done.removed) console.log(`  removed tag ${t.name} (revision ${t.revision}, ${t.hash.toHex()})`);
      }
      const requests = meter.snapshot();
      const bill = await reportOperationBill(store, { operation: 'rollback', fqrn, revision: done.manifest.revision, usage: operationUsage({ writer: requests }), storage: storageFromMeter(requests) }, o);
      if (o.json) printJson({ fqrn, tag: o.tag, revision: done.manifest.revision, rootCatalog: done.manifest.rootCatalog.toHex(), removed: done.removed.map(tagJson), requests, bill });
    });
}
