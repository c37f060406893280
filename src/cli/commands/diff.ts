// scvmfs diff: the paths that differ between two revisions (cvmfs_server diff).
import type { Command } from 'commander';
import { diffRevisions, type PathChange } from '../../client/diff.js';
import type { RevisionSelector } from '../../repo/revisions.js';
import { openReader, printJson, readerOptions, type ReadOptions } from '../options.js';

/** A revision named on the command line: a number is a revision, anything else a tag. */
export function parseRevisionRef(v: string): RevisionSelector {
  return /^\d+$/.test(v) ? { revision: Number(v) } : { tag: v };
}

const OP = { added: 'A', removed: 'R', changed: 'M' } as const;
const TYPE = { file: 'F', directory: 'D', symlink: 'S', special: 'P' } as const;

export function changeLine(c: PathChange): string {
  return `${OP[c.op]} [${TYPE[c.type]}] ${c.path}${c.fields ? `: ${c.fields.join(', ')}` : ''}`;
}

export function register(program: Command): void {
  readerOptions(program.command('diff')
    .description('list added (A), removed (R) and changed (M) paths between two revisions, and what changed')
    .argument('<url-or-store>', 'http(s) URL of the repository or its store')
    .argument('[path]', 'compare only below this repository path', '/')
    .requiredOption('--from <tag|rev>', 'the older revision: a tag name or a revision number')
    .option('--to <tag|rev>', 'the newer revision (default: the head)')
    .option('--json', 'print the changes as JSON (docs/cli.md)'))
    .action(async (location: string, path: string, o: ReadOptions & { from: string; to?: string; json?: boolean }) => {
      const at = (ref: string): ReadOptions => {
        const s = parseRevisionRef(ref);
        return { ...o, ...('revision' in s ? { revision: s.revision, tag: undefined } : { tag: s.tag, revision: undefined }) };
      };
      const from = await openReader(location, at(o.from));
      const to = await openReader(location, o.to === undefined ? { ...o, revision: undefined, tag: undefined } : at(o.to));
      try {
        const result = await diffRevisions(from, to, path);
        if (o.json) {
          return printJson({
            from: { revision: from.revision, root: from.rootHash.toHex() },
            to: { revision: to.revision, root: to.rootHash.toHex() },
            changes: result.changes, catalogsRead: result.catalogsRead, catalogsSkipped: result.catalogsSkipped,
          });
        }
        for (const c of result.changes) console.log(changeLine(c));
        console.error(`${result.changes.length} changes from revision ${from.revision} to ${to.revision} ` +
          `(${result.catalogsRead} catalogs read, ${result.catalogsSkipped} unchanged nested catalogs skipped)`);
      } finally {
        from.close();
        to.close();
      }
    });
}
