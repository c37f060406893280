// scvmfs tag add|list|info|remove: the history database's named revisions (cvmfs_server tag).
import { RefusedError, ScvmfsError } from '../../errors.js';
import { Command, InvalidArgumentError } from 'commander';
import { ContentHash } from '../../format/hash.js';
import type { Tag } from '../../format/history.js';
import { openMeteredStore } from '../../store/open-store.js';
import { billOptions, operationUsage, reportOperationBill, storageFromMeter, type BillOptions } from '../operation-bill.js';
import { loadKeys } from '../../repo/keys-dir.js';
import { addTag, removeTags } from '../../repo/tags.js';
import { openReader, positiveInt, printJson, formatTime, readerOptions, type ReadOptions, storeOption } from '../options.js';

/** A tag as --json prints it (docs/cli.md). */
export function tagJson(t: Tag) {
  return { name: t.name, revision: t.revision, root: t.hash.toHex(), size: t.size, timestamp: t.timestamp, date: formatTime(t.timestamp), description: t.description };
}

function parseRoot(v: string): ContentHash {
  try {
    return ContentHash.fromHex(v);
  } catch {
    throw new InvalidArgumentError(`'${v}' is not a root catalog hash (40 hex digits, optionally -rmd160/-shake128)`);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function register(program: Command): void {
  const tag = program.command('tag').description('name revisions: add, list, inspect and remove tags (cvmfs_server tag)');

  billOptions(tag.command('add'))
    .description('tag the head (a new revision with the same tree), or move/add a tag to --revision or --root')
    .argument('<fqrn>', 'repository name')
    .argument('<name>', 'tag name (no blanks; trunk, trunk-previous and generic-* are reserved)')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.key and <fqrn>.crt')
    .option('--revision <n>', 'tag this revision instead of the head', (v) => positiveInt(v, '--revision'))
    .option('--root <hash>', 'tag this root catalog instead of the head', parseRoot)
    .option('-m, --description <text>', 'what the tag is for', '')
    .action(async (fqrn: string, name: string, o: BillOptions & { store: string; keys: string; revision?: number; root?: ContentHash; description: string }) => {
      if (o.revision !== undefined && o.root !== undefined) throw new ScvmfsError('usage', 'conflicting-options', 'give --revision or --root, not both');
      const keys = await loadKeys(o.keys, fqrn, { need: ['repository', 'anchor'] });
      const target = o.revision !== undefined ? { revision: o.revision } : o.root ? { root: o.root } : undefined;
      const { store, meter } = openMeteredStore(o.store);
      const done = await addTag(store, { fqrn, keys, name, description: o.description, target });
      if (!o.json) {
        if (done.movedFrom) console.log(`moved tag '${name}' from revision ${done.movedFrom.revision} (${done.movedFrom.hash.toHex()}) to revision ${done.tag.revision}`);
        else console.log(`tagged revision ${done.tag.revision} of ${fqrn} as '${name}' (${done.tag.hash.toHex()})`);
        console.log(`  head is now revision ${done.manifest.revision}`);
      }
      const requests = meter.snapshot();
      const bill = await reportOperationBill(store, { operation: 'tag', fqrn, revision: done.manifest.revision, usage: operationUsage({ writer: requests }), storage: storageFromMeter(requests) }, o);
      if (o.json) printJson({ fqrn, tag: tagJson(done.tag), ...(done.movedFrom ? { movedFrom: tagJson(done.movedFrom) } : {}), revision: done.manifest.revision, requests, bill });
    });

  readerOptions(tag.command('list')
    .description('list the tags: name, revision, root catalog, size, date, description')
    .argument('<url-or-store>', 'http(s) URL of the repository or its store')
    .option('--json', 'print the tags as JSON (docs/cli.md)'))
    .action(async (location: string, o: ReadOptions & { json?: boolean }) => {
      const reader = await openReader(location, o);
      const tags = (await reader.tags()).sort((a, b) => b.revision - a.revision || a.name.localeCompare(b.name));
      reader.close();
      if (o.json) return printJson(tags.map(tagJson));
      const rows = [['NAME', 'REVISION', 'ROOT', 'SIZE', 'DATE', 'DESCRIPTION'],
        ...tags.map((t) => [t.name, String(t.revision), t.hash.toHex(), String(t.size), formatTime(t.timestamp), t.description])];
      console.log(table(rows));
      console.log(`${tags.length} tags`);
    });

  readerOptions(tag.command('info')
    .description('show one tag')
    .argument('<url-or-store>', 'http(s) URL of the repository or its store')
    .argument('<name>', 'tag name')
    .option('--json', 'print the tag as JSON (docs/cli.md)'))
    .action(async (location: string, name: string, o: ReadOptions & { json?: boolean }) => {
      const reader = await openReader(location, o);
      const t = (await reader.tags()).find((x) => x.name === name);
      reader.close();
      if (!t) throw new RefusedError('unknown-tag', `no tag '${name}' in ${o.fqrn} (see 'scvmfs tag list')`);
      if (o.json) return printJson(tagJson(t));
      console.log(`name:         ${t.name}\nrevision:     ${t.revision}\ndate:         ${formatTime(t.timestamp)}\nroot catalog: ${t.hash.toHex()}\n` +
        `catalog size: ${t.size} bytes\ndescription:  ${t.description}`);
    });

  billOptions(tag.command('remove'))
    .description('remove tags (a new revision; the catalogs they named stay in the store)')
    .argument('<fqrn>', 'repository name')
    .argument('<name...>', 'tag names')
    .addOption(storeOption())
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.key and <fqrn>.crt')
    .action(async (fqrn: string, names: string[], o: BillOptions & { store: string; keys: string }) => {
      const keys = await loadKeys(o.keys, fqrn, { need: ['repository', 'anchor'] });
      const { store, meter } = openMeteredStore(o.store);
      const done = await removeTags(store, { fqrn, keys, names });
      if (!o.json) {
        for (const t of done.removed) console.log(`removed tag '${t.name}' (revision ${t.revision}, ${t.hash.toHex()})`);
        console.log(`  head is now revision ${done.manifest.revision}`);
      }
      const requests = meter.snapshot();
      const bill = await reportOperationBill(store, { operation: 'tag', fqrn, revision: done.manifest.revision, usage: operationUsage({ writer: requests }), storage: storageFromMeter(requests) }, o);
      if (o.json) printJson({ fqrn, removed: done.removed.map(tagJson), revision: done.manifest.revision, requests, bill });
    });
}
