// scvmfs init: create a repository (keys if absent, whitelist, empty root catalog, revision 1).
import { Option, type Command } from 'commander';
import { join } from 'node:path';
import { parseHashAlgorithm } from '../../format/hash.js';
import { createBucketFor, openMeteredStore } from '../../store/open-store.js';
import { loadOrCreateKeys } from '../../repo/keys-dir.js';
import { initRepository } from '../../repo/repository.js';
import { positiveInt, printJson, storeOption } from '../options.js';
import { billOptions, operationUsage, reportOperationBill, storageFromMeter, type BillOptions } from '../operation-bill.js';

export function register(program: Command): void {
  billOptions(program.command('init'))
    .description('create a repository: keys (if absent), whitelist, empty root catalog, manifest')
    .argument('<fqrn>', 'repository name, e.g. sw.example.org')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory (<fqrn>.masterkey/.pub/.key/.crt)')
    .addOption(new Option('--hash <algorithm>', 'content hash').choices(['sha1', 'rmd160', 'shake128']).default('sha1'))
    .option('--ttl <seconds>', 'catalog TTL for clients', (v) => positiveInt(v, '--ttl'), 240)
    .option('--whitelist-days <days>', 'whitelist validity (at most 30)', (v) => positiveInt(v, '--whitelist-days'), 30)
    .option('--create-bucket', 'create the S3 bucket first (s3:// stores only)')
    .action(async (fqrn: string, o: BillOptions & { store: string; keys: string; hash: string; ttl: number; whitelistDays: number; createBucket?: boolean }) => {
      if (o.createBucket) await createBucketFor(o.store);
      const { store, meter } = openMeteredStore(o.store);
      const { keys, created } = await loadOrCreateKeys(o.keys, fqrn);
      const manifest = await initRepository(store, { fqrn, keys, algorithm: parseHashAlgorithm(o.hash), ttl: o.ttl, whitelistDays: o.whitelistDays });
      if (created) (o.json ? console.error : console.log)(`created keys in ${o.keys} (give clients ${join(o.keys, `${fqrn}.pub`)})`);
      if (!o.json) console.log(`created ${fqrn} in ${store.description}: revision ${manifest.revision}, root catalog ${manifest.rootCatalog.toHex()}`);
      // The ledger starts here, so its storage totals hold every object from the first one.
      const requests = meter.snapshot();
      const bill = await reportOperationBill(store, { operation: 'init', fqrn, revision: manifest.revision, usage: operationUsage({ writer: requests }), storage: storageFromMeter(requests) }, o);
      if (o.json) printJson({ fqrn, revision: manifest.revision, rootCatalog: manifest.rootCatalog.toHex(), keysCreated: created, requests, bill });
    });
}
