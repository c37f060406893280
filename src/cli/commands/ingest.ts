// scvmfs ingest: publish a tarball straight from its bytes, and/or delete paths, in one revision.
import { openMeteredStore } from '../../store/open-store.js';
import { loadKeys } from '../../repo/keys-dir.js';
import { ingestTarball } from '../../publish/ingest-tarball.js';
import { openTarballInput } from '../../publish/tar-source.js';
import { formatBytes } from '../progress.js';
import { ingestProgress } from '../publish-progress.js';
import { stat } from 'node:fs/promises';
import { positiveInt, storeOption, maxWeightOption, minWeightOption, noAutocatalogsOption } from '../options.js';
import { UsageError } from '../../errors.js';
import type { Command } from 'commander';
import { billOptions, type BillOptions } from '../operation-bill.js';
import { reportOwnerRevision } from '../owner-report.js';

export function register(program: Command): void {
  billOptions(program.command('ingest'))
    .description('publish a tarball into --path straight from its bytes (no unpacking), and/or remove --delete paths, in one revision')
    .argument('<fqrn>', 'repository name')
    .argument('[tarball]', 'file.tar or file.tar.gz; - reads standard input; omit to only --delete')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.key and <fqrn>.crt (where commits are signed)')
    .option('--path <dir>', 'repository directory the tarball is unpacked into (required with a tarball)')
    .option('--delete <path>', 'remove this repository path (and all below it) first; repeatable', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--catalog', 'make --path the root of a nested catalog')
    .option('--tag <name>', 'name this revision')
    .option('--tag-description <text>', 'description of --tag')
    .option('--workers <n>', 'compression threads (default: all cores)', (v) => positiveInt(v, '--workers'))
    .addOption(maxWeightOption()).addOption(minWeightOption()).addOption(noAutocatalogsOption())
    .option('-q, --quiet', 'no progress output')
    .action(async (fqrn: string, tarball: string | undefined, o: BillOptions & { store: string; keys: string; path?: string; delete: string[]; catalog?: boolean; tag?: string; tagDescription?: string; workers?: number; maxWeight: number; minWeight: number; autocatalogs: boolean; quiet?: boolean }) => {
      if (tarball === undefined && o.delete.length === 0) throw new UsageError('ingest needs a tarball (or - for standard input), --delete paths, or both');
      if (tarball !== undefined && o.path === undefined) throw new UsageError('ingest needs --path: the repository directory to unpack the tarball into');
      if (tarball === undefined && o.path !== undefined) throw new UsageError('--path without a tarball: name the tarball, or - for standard input');
      const keys = await loadKeys(o.keys, fqrn, { need: ['repository', 'anchor'] });
      const { store, meter } = openMeteredStore(o.store);
      const input = tarball === undefined ? null : await openTarballInput(tarball);
      const tarStat = tarball === undefined || tarball === '-' ? undefined : await stat(tarball);
      const inputSize = tarStat?.isFile() ? tarStat.size : undefined;
      const progress = ingestProgress({ quiet: o.quiet, inputSize });
      let summary;
      try {
        summary = await ingestTarball(store, input, {
          fqrn, keys, path: o.path, deletePaths: o.delete, nestedCatalog: o.catalog, workers: o.workers,
          autocatalogs: o.autocatalogs && { maxWeight: o.maxWeight, minWeight: o.minWeight },
          tag: o.tag ? { name: o.tag, description: o.tagDescription } : undefined,
          onWarning: (m) => progress.log(`scvmfs: warning: ${m}`),
          onProgress: (p) => progress.update(p),
        });
      } finally {
        progress.done();
      }
      const head = [`${tarball === undefined ? 'removed paths from' : `ingested ${tarball === '-' ? 'standard input' : tarball} into`} ${fqrn}${o.path ? `:${o.path}` : ''}, revision ${summary.revision}`];
      if (summary.tagOnly) head.push(`  no content change: the revision has the same tree and adds tag '${o.tag}'`);
      if (tarball !== undefined) {
        head.push(`  entries: ${summary.entries} read (${summary.files} files, ${summary.directories} directories, ${summary.symlinks} symlinks, ` +
          `${summary.hardlinks} hard links, ${summary.specials} special); ${summary.parentsCreated} directories created for them`);
        head.push(`  files: ${formatBytes(summary.bytesRead)} read, ${formatBytes(summary.bytesStored)} stored`);
      }
      if (o.delete.length > 0) head.push(`  deleted: ${summary.deleted} of ${o.delete.length} paths`);
      await reportOwnerRevision(summary, meter, store, o, {
        operation: 'ingest', fqrn, noChange: `${summary.entries} entries read`, head, nestedCatalogs: summary.nestedCatalogs,
      });
    });
}
