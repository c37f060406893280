// scvmfs export: write a subtree of a revision into a local directory (cvmfs_shrinkwrap).
import { ScvmfsError } from '../../errors.js';
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { exportTree, parseExportSpec } from '../../client/export.js';
import { ProgressLine, formatBytes } from '../progress.js';
import { openReader, positiveInt, printJson, readerOptions, revisionOptions, type ReadOptions } from '../options.js';

export function register(program: Command): void {
  revisionOptions(readerOptions(program.command('export')
    .description('write a directory of the repository (modes, mtimes, symlinks, hard links) into <dest-dir>, every object verified; resumes')
    .argument('<url-or-store>', 'http(s) URL of the repository or its store')
    .argument('<paths...>', '[repo-path] <dest-dir>: the repository directory to export (default /) and the local directory to write into (created if absent)')
    .option('--spec <file>', 'export only the paths of this specification (cvmfs_shrinkwrap syntax: /p, /p/*, !/p)')
    .option('--parallel <n>', 'files fetched at the same time', (v) => positiveInt(v, '--parallel'), 16)
    .option('--json', 'print the summary as JSON (docs/cli.md)')
    .option('-q, --quiet', 'no progress output')), 'export')
    .action(async (location: string, paths: string[], o: ReadOptions & { spec?: string; parallel: number; json?: boolean; quiet?: boolean }) => {
      if (paths.length > 2) throw new ScvmfsError('usage', 'too-many-arguments', 'export takes [repo-path] <dest-dir>: too many arguments');
      const [repoPath, dest] = paths.length === 2 ? [paths[0]!, paths[1]!] : ['/', paths[0]!];
      const spec = o.spec ? parseExportSpec(await readFile(o.spec, 'utf8')) : undefined;
      const reader = await openReader(location, o);
      const progress = new ProgressLine(o.quiet || o.json);
      try {
        const s = await exportTree(reader, dest, {
          path: repoPath, spec, parallel: o.parallel,
          onWarning: (m) => { progress.done(); console.error(`scvmfs: warning: ${m}`); },
          onProgress: (p) => progress.update(`exporting: ${p.entries} entries, ${p.filesDone}/${p.filesQueued} files, ${formatBytes(p.bytesFetched)} fetched`),
        });
        progress.done();
        if (o.json) return printJson({ revision: reader.revision, ...s });
        console.log(`exported ${o.fqrn}${repoPath === '/' ? '' : repoPath} revision ${reader.revision} into ${dest}`);
        console.log(`  entries: ${s.entries} (${s.files} files, ${s.directories} directories, ${s.symlinks} symlinks, ${s.specials} special, ${s.hardlinks} extra hard links)`);
        console.log(`  files: ${s.filesFetched} fetched (${formatBytes(s.bytesFetched)}), ${s.filesSkipped} already there or linked`);
        console.log(`  time: ${s.seconds.toFixed(2)} s${s.seconds > 0 ? `, ${formatBytes(s.bytesFetched / s.seconds)}/s` : ''}`);
      } finally {
        reader.close();
      }
    });
}
