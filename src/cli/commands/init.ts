// scvmfs init: create a repository (keys if absent, whitelist, empty root catalog, revision 1).
import { Option, type Command } from 'commander';
import { join } from 'node:path';
import { parseHashAlgorithm } from '../../format/hash.js';
import { createBucketFor, openStore } from '../../store/open-store.js';
import { loadOrCreateKeys } from '../../repo/keys-dir.js';
import { initRepository } from '../../repo/repository.js';
import { positiveInt, storeOption } from '../options.js';

export function register(program: Command): void {
  program.command('init')
    .description('create a repository: keys (if absent), whitelist, empty root catalog, manifest')
    .argument('<fqrn>', 'repository name, e.g. sw.example.org')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory (<fqrn>.masterkey/.pub/.key/.crt)')
    .addOption(new Option('--hash <algorithm>', 'content hash').choices(['sha1', 'rmd160', 'shake128']).default('sha1'))
    .option('--ttl <seconds>', 'catalog TTL for clients', (v) => positiveInt(v, '--ttl'), 240)
    .option('--whitelist-days <days>', 'whitelist validity (at most 30)', (v) => positiveInt(v, '--whitelist-days'), 30)
    .option('--create-bucket', 'create the S3 bucket first (s3:// stores only)')
    .action(async (fqrn: string, o: { store: string; keys: string; hash: string; ttl: number; whitelistDays: number; createBucket?: boolean }) => {
      if (o.createBucket) await createBucketFor(o.store);
      const store = openStore(o.store);
      const { keys, created } = await loadOrCreateKeys(o.keys, fqrn);
      const manifest = await initRepository(store, { fqrn, keys, algorithm: parseHashAlgorithm(o.hash), ttl: o.ttl, whitelistDays: o.whitelistDays });
      if (created) console.log(`created keys in ${o.keys} (give clients ${join(o.keys, `${fqrn}.pub`)})`);
      console.log(`created ${fqrn} in ${store.description}: revision ${manifest.revision}, root catalog ${manifest.rootCatalog.toHex()}`);
    });
}
