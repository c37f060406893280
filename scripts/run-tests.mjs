#!/usr/bin/env node
// Runs test files in the order given, at most <concurrency> at once: `node --test` sorts its files by
// name, which would start the longest ones late and leave them running alone at the end. Reports as
// `node --test` does (spec on a terminal, TAP otherwise), then the slowest files on stderr.
// Usage: run-tests.mjs <concurrency> <file>...
import { run } from 'node:test';
import { spec, tap } from 'node:test/reporters';
import { relative, resolve } from 'node:path';

const [concurrencyArg, ...args] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!Number.isInteger(concurrency) || concurrency < 1 || args.length === 0) {
  console.error('usage: run-tests.mjs <concurrency> <file>...');
  process.exit(2);
}
const files = args.map((f) => resolve(f));
const started = Date.now();
const perFile = new Map();
console.error(`tests: ${files.length} files, ${concurrency} at once, in this order: ${files.slice(0, 3).map((f) => relative(process.cwd(), f)).join(', ')}, …; ` +
  'a file\'s results print once the files before it have finished');
const stream = run({ files, concurrency });
const record = (d) => {
  if (d.nesting === 0 && d.file) perFile.set(d.file, (perFile.get(d.file) ?? 0) + (d.details?.duration_ms ?? 0));
};
stream.on('test:pass', record);
stream.on('test:fail', (d) => {
  record(d);
  if (!d.todo) process.exitCode = 1;
});
stream.on('end', () => {
  const slowest = [...perFile].sort((a, b) => b[1] - a[1]).slice(0, 8);
  const wall = (Date.now() - started) / 1000;
  console.error(`tests: ${files.length} files in ${wall.toFixed(0)} s, ${concurrency} at once; slowest: ` +
    slowest.map(([f, ms]) => `${relative(process.cwd(), f)} ${(ms / 1000).toFixed(0)} s`).join(', '));
});
stream.compose(process.stdout.isTTY ? spec : tap).pipe(process.stdout);
