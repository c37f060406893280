// scvmfs ls: list a directory of a repository (any revision), verifying what it reads.
import type { Command } from 'commander';
import { kindOfMode, type DirectoryEntry } from '../../format/catalog-entry.js';
import { openReader, readerOptions, revisionOptions, entryJson, printJson, type ReadOptions } from '../options.js';
import { normalizeRepoPath } from '../../format/md5path.js';

export function register(program: Command): void {
  revisionOptions(readerOptions(program.command('ls')
    .description('list a directory of a repository, verifying what it reads')
    .argument('<url-or-dir>', 'http(s) URL of the repository or its directory')
    .argument('[path]', 'path inside the repository', '/')
    .option('-l, --long', 'mode, links, owner, size, time')
    .option('-R, --recursive', 'list everything below path')
    .option('--json', 'print the entries as JSON (docs/cli.md)')))
    .action(async (location: string, path: string, o: ReadOptions & { long?: boolean; recursive?: boolean; json?: boolean }) => {
      const reader = await openReader(location, o);
      if (o.json) {
        const out = [];
        if (o.recursive) for await (const { path: p, entry } of reader.walk(path)) out.push(entryJson(entry, p || '/'));
        else {
          const base = normalizeRepoPath(path);
          const self = await reader.stat(base);
          const dir = self !== null && kindOfMode(self.mode) === 'directory';
          for (const e of await reader.list(path)) out.push(entryJson(e, dir ? `${base}/${e.name}` : base || '/'));
        }
        return printJson(out);
      }
      if (o.recursive) {
        for await (const { path: p, entry } of reader.walk(path)) console.log(o.long ? longLine(entry, p || '/') : (p || '/'));
      } else {
        for (const e of await reader.list(path)) console.log(o.long ? longLine(e, e.name) : e.name);
      }
    });
}

function modeString(e: DirectoryEntry): string {
  const type = { directory: 'd', file: '-', symlink: 'l', special: 'p' }[kindOfMode(e.mode)];
  const bits = 'rwxrwxrwx'.split('').map((c, i) => (e.mode & (1 << (8 - i)) ? c : '-')).join('');
  return type + bits;
}

function longLine(e: DirectoryEntry, name: string): string {
  const time = new Date(e.mtime * 1000).toISOString().replace('T', ' ').slice(0, 19);
  const link = kindOfMode(e.mode) === 'symlink' ? ` -> ${e.symlink}` : '';
  return `${modeString(e)} ${String(e.linkcount).padStart(3)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.size).padStart(10)} ${time} ${name}${link}`;
}
