// scvmfs cat: print files of a repository (any revision), each verified against its hash.
import type { Command } from 'commander';
import { once } from 'node:events';
import { openReader, readerOptions, revisionOptions, type ReadOptions } from '../options.js';

export function register(program: Command): void {
  revisionOptions(readerOptions(program.command('cat')
    .description('print a file of a repository, verified against its hash')
    .argument('<url-or-dir>', 'http(s) URL of the repository or its directory')
    .argument('<path...>', 'file(s) inside the repository')))
    .action(async (location: string, paths: string[], o: ReadOptions) => {
      const reader = await openReader(location, o);
      // Chunked files stream one verified chunk at a time: a 10 GB file never sits in memory.
      for (const p of paths) {
        for await (const piece of reader.readPieces(p)) {
          if (!process.stdout.write(piece)) await once(process.stdout, 'drain');
        }
      }
    });
}
