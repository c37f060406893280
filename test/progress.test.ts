// Progress of publish and ingest: the phases in order with their final figures, --quiet, --json, a terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, cliOk, runCli, tempDir } from './helpers.js';
import { formatBytes } from '../src/cli/progress.js';
import { etaSeconds, formatEta, RateWindow, terminalText } from '../src/cli/phase-progress.js';

const FQRN = 'progress.example.org';
const FILES = 240;

/** A repository and a source tree of FILES files of different sizes; returns their total size. */
async function setup(): Promise<{ work: string; src: string; store: string; keys: string; bytes: number }> {
  const work = tempDir('progress');
  const src = join(work, 'src');
  let bytes = 0;
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < FILES / 4; f++) {
      const body = Buffer.alloc(100 + d * 1000 + f * 37, `${d}-${f}-`);
      writeFileSync(join(src, `d${d}`, `f${f}`), body);
      bytes += body.length;
    }
  }
  const store = join(work, 'store');
  const keys = join(work, 'keys');
  await cliOk(['init', FQRN, '--store', store, '--keys', keys, '--no-ledger']);
  return { work, src, store, keys, bytes };
}

const PHASES = [/^scanning: /, /^compressing and uploading: /, /^writing catalogs and manifest: /];

function phaseLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^(scanning|compressing and uploading|writing catalogs|reading the tarball|finishing uploads)/.test(l));
}

test('a publish without a terminal prints a line per phase, in order, ending with the final totals', async () => {
  const s = await setup();
  const r = await runCli(['publish', FQRN, s.src, '--store', s.store, '--keys', s.keys, '--no-cache', '--no-ledger']);
  assert.equal(r.code, 0, r.stderr);
  const lines = phaseLines(r.stderr);
  const first = PHASES.map((re) => lines.findIndex((l) => re.test(l)));
  assert.ok(first.every((i) => i >= 0), `every phase shows:\n${r.stderr}`);
  assert.deepEqual([...first].sort((a, b) => a - b), first, `phases in order:\n${r.stderr}`);
  assert.match(lines[first[1]!]!, /\d+\/240 files, .*\/.* ETA .*files\/s/);
  assert.equal(lines[lines.length - 1], `writing catalogs and manifest: ${FILES} files, ${formatBytes(s.bytes)} compressed and uploaded`);
  assert.doesNotMatch(r.stderr, /\r|\x1b\[/, 'no terminal control codes in a pipe');
  assert.match(r.stdout, /^published progress\.example\.org revision 2$/m);
});

test('publish --quiet prints no progress, and --json keeps standard output one JSON document', async () => {
  const s = await setup();
  const quiet = await runCli(['publish', FQRN, s.src, '--store', s.store, '--keys', s.keys, '--no-cache', '--no-ledger', '--quiet']);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.deepEqual(phaseLines(quiet.stderr), []);
  assert.match(quiet.stdout, /^published /);

  writeFileSync(join(s.src, 'd0', 'new'), 'new content');
  const json = await runCli(['publish', FQRN, s.src, '--store', s.store, '--keys', s.keys, '--no-cache', '--no-ledger', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { revision: number; filesCompressed: number };
  assert.equal(doc.revision, 3);
  assert.equal(doc.filesCompressed, 1);
  assert.equal(phaseLines(json.stderr).at(-1), 'writing catalogs and manifest: 1 files, 11 B compressed and uploaded');
});

test('an ingest without a terminal shows reading, finishing uploads and the commit, with the totals', async () => {
  const s = await setup();
  const tarball = join(s.work, 'src.tar');
  execFileSync('tar', ['cf', tarball, '-C', s.src, '.']);
  const r = await runCli(['ingest', FQRN, tarball, '--path', '/t', '--store', s.store, '--keys', s.keys, '--no-ledger']);
  assert.equal(r.code, 0, r.stderr);
  const lines = phaseLines(r.stderr);
  const order = [/^reading the tarball: .*\/.*ETA/, /^finishing uploads: /, /^writing catalogs and manifest: /].map((re) => lines.findIndex((l) => re.test(l)));
  assert.ok(order.every((i) => i >= 0), `every phase shows:\n${r.stderr}`);
  assert.deepEqual([...order].sort((a, b) => a - b), order, `phases in order:\n${r.stderr}`);
  assert.equal(lines.at(-1), `writing catalogs and manifest: ${FILES} files, ${formatBytes(s.bytes)} compressed and uploaded`);
  const quiet = await runCli(['ingest', FQRN, tarball, '--path', '/u', '--store', s.store, '--keys', s.keys, '--no-ledger', '-q']);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.deepEqual(phaseLines(quiet.stderr), []);
});

test('on a terminal the publish draws a bar with files, bytes and ETA, and clears the line before the summary', async (t) => {
  if (spawnSync('script', ['--version']).status !== 0) {
    t.skip('script(1) is not installed: no pseudo-terminal to run the CLI on');
    return;
  }
  const s = await setup();
  const out = join(s.work, 'tty.out');
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, CLI, 'publish', FQRN, s.src, '--store', s.store, '--keys', s.keys, '--no-cache', '--no-ledger'].map(quote).join(' ');
  const r = spawnSync('script', ['-qec', cmd, out], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const screen = readFileSync(out, 'utf8');
  assert.match(screen, /compressing and uploading +\d+% \[[=-]+\] \d+\/240 files, [\d.]+ (B|KiB|MiB)\/[\d.]+ (B|KiB|MiB), ETA [\d:?]+/);
  assert.match(screen, /scanning: \d+ entries/);
  // After the last drawing the line is cleared, then the summary starts at the beginning of the line.
  const lastDraw = screen.lastIndexOf('writing catalogs and manifest');
  const summary = screen.indexOf('published progress.example.org revision 2');
  assert.ok(lastDraw >= 0 && summary > lastDraw, screen);
  assert.match(screen.slice(lastDraw, summary), /\x1b\[2K$/);
});

test('rates are those of the last seconds, and a stall lowers them', () => {
  const w = new RateWindow();
  w.add({ phase: 'upload', filesDone: 0, bytesDone: 0 }, 0);
  w.add({ phase: 'upload', filesDone: 50, bytesDone: 5_000_000 }, 5000);
  const r = w.rates(5000);
  assert.equal(r.filesPerSecond, 10);
  assert.equal(r.bytesPerSecond, 1_000_000);
  // A stall lowers the rates: the window ends now.
  assert.equal(w.rates(10_000).filesPerSecond, 5);
});

test('the ETA is the longer of the bytes and the files estimate, unknown without a rate', () => {
  assert.equal(etaSeconds([100, 10], [10, 5]), 10);
  assert.equal(etaSeconds([100, 10], [10, 0.5]), 20);
  assert.equal(etaSeconds([0, 0], [0, 0]), 0);
  assert.equal(etaSeconds([5, 0]), null);
  assert.equal(formatEta(null), 'ETA ?');
  assert.equal(formatEta(65.2), 'ETA 1:06');
  assert.equal(formatEta(3725), 'ETA 1:02:05');
  const line = terminalText({ label: 'compressing and uploading', figures: '1/2 files', done: 0.5 }, 80,
    { barCompleteString: '='.repeat(31), barIncompleteString: '-'.repeat(31), barGlue: '' } as never);
  assert.ok(line.length <= 79, line);
  assert.match(line, /^compressing and uploading  50% \[=+-+\] 1\/2 files$/);
});

test('publish --publisher shows the walk, the uploads and the commit chain as phases, and the protocol steps', { timeout: 180_000 }, async () => {
  const s = await setup();
  await cliOk(['publisher', 'add', FQRN, 'w1', '--path', '/w1', '--store', s.store, '--keys', s.keys]);
  const r = await runCli(['publish', FQRN, s.src, '--store', s.store, '--keys', s.keys, '--publisher', join(s.keys, 'w1.publisher'),
    '--path', '/w1', '--fn-timeout', '30s', '--fn-memory', '256', '--no-cache', '--no-ledger']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const order = [/^scanning: /, /^compressing and uploading: /, /^committing through the commit chain: /].map((re) => lines.findIndex((l) => re.test(l)));
  assert.ok(order.every((i) => i >= 0), `every phase shows:\n${r.stderr}`);
  assert.deepEqual([...order].sort((a, b) => a - b), order, `phases in order:\n${r.stderr}`);
  assert.equal(lines[order[2]!], `committing through the commit chain: ${FILES} files, ${formatBytes(s.bytes)} compressed and uploaded`);
  assert.match(r.stdout, /^lease .* on \/w1 until /m);
  assert.match(r.stdout, /^changeset .*; committing$/m);
});
