// scvmfs catalogs: the tree of catalogs, like cvmfs_server list-catalogs.
import type { Command } from 'commander';
import { listCatalogs } from '../../client/info.js';
import { openReader, printJson, readerOptions, revisionOptions, type ReadOptions } from '../options.js';

export function register(program: Command): void {
  revisionOptions(readerOptions(program.command('catalogs')
    .description('list the catalog tree: mountpoint, hash, entries, size')
    .argument('<url-or-store>', 'http(s) URL of the repository or its store')
    .option('--json', 'print the catalogs as JSON (docs/cli.md)')))
    .action(async (location: string, o: ReadOptions & { json?: boolean }) => {
      const reader = await openReader(location, o);
      try {
        const all = [];
        for await (const c of listCatalogs(reader)) {
          if (o.json) all.push(c);
          else console.log(`${'  '.repeat(c.depth)}${c.path}\t${c.hash}\t${c.entries} entries\t${c.size} bytes`);
        }
        if (o.json) printJson(all);
      } finally {
        reader.close();
      }
    });
}
