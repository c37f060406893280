// Options shared by several commands, declared once: their parsing, units and defaults are the same
// everywhere.
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { chunkingParameters, type ChunkingParameters } from '../format/chunker.js';
import { openSource } from '../client/sources.js';
import { RepositoryReader } from '../client/reader.js';
import type { RevisionSelector } from '../repo/revisions.js';
import { RefusedError, ScvmfsError } from '../errors.js';
import { FLAG, kindOfMode, type DirectoryEntry } from '../format/catalog-entry.js';
import { AWS_US_EAST_1, BUILTIN_PRICE_TABLES, builtinPriceTable, parsePriceTable, type PriceTable } from '../cost/prices.js';

export function parseChunkSizes(v: string): ChunkingParameters {
  const parts = v.split(',').map((x) => Number(x.trim()));
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n))) throw new InvalidArgumentError(`'${v}' is not min,avg,max in bytes`);
  try {
    return chunkingParameters({ minSize: parts[0], avgSize: parts[1], maxSize: parts[2] });
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * The one duration syntax of every option: a number and a unit (ms, s, m, h, d), e.g. 500ms, 2s, 36h,
 * 7d; a bare number is seconds. Returns milliseconds, refused outside [min, max].
 */
export function durationOption(name: string, minMs: number, maxMs: number): (v: string) => number {
  return (v: string) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
    if (!m) throw new InvalidArgumentError(`'${v}' is not a duration: a number and ms, s, m, h or d (e.g. 500ms, 2s, 7d)`);
    const ms = Math.round(Number(m[1]) * DURATION_UNITS_MS[m[2] ?? 's']!);
    if (ms < minMs || ms > maxMs) throw new InvalidArgumentError(`${name} must be between ${formatDuration(minMs)} and ${formatDuration(maxMs)}, got ${v}`);
    return ms;
  };
}

/** Milliseconds in the largest unit that divides them, as the duration options take them: 3000 → '3s'. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= DURATION_UNITS_MS[unit]! && ms % DURATION_UNITS_MS[unit]! === 0) return `${ms / DURATION_UNITS_MS[unit]!}${unit}`;
  }
  return `${ms}ms`;
}

/** A function's wall-time limit: Lambda allows up to 15 minutes. */
export const parseDuration = durationOption('--fn-timeout', 100, 900_000);

export function positiveInt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} needs a positive whole number, got '${v}'`);
  return n;
}

export function portNumber(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port needs 0–65535, got '${v}'`);
  return n;
}

/** What every command that checks a repository's signatures is told to trust. */
export interface TrustOptions { fqrn: string; pubkey: string[]; allowExpiredWhitelist?: boolean }

/** The trust as verification takes it: the master public keys read from their files. */
export interface Trust { fqrn: string; publicKeys: string[]; allowExpiredWhitelist?: boolean }

/** `--fqrn`, `--pubkey` and `--allow-expired-whitelist`: readers, verify, check and replicate. */
export function trustOptions(cmd: Command, pubkeyHelp = 'master public key(s) (<fqrn>.pub)'): Command {
  return cmd
    .requiredOption('--fqrn <fqrn>', 'repository name')
    .requiredOption('--pubkey <file...>', pubkeyHelp)
    .option('--allow-expired-whitelist', 'accept an expired whitelist (archived repositories only)');
}

export async function readTrust(o: TrustOptions): Promise<Trust> {
  const publicKeys = await Promise.all(o.pubkey.map((f) => readFile(f, 'utf8').catch((e: Error) => { throw new Error(`cannot read public key ${f}: ${e.message}`); })));
  return { fqrn: o.fqrn, publicKeys, allowExpiredWhitelist: o.allowExpiredWhitelist };
}

export interface ReadOptions extends TrustOptions { cache?: string | false; revision?: number; tag?: string }

export function readerOptions(cmd: Command): Command {
  return trustOptions(cmd)
    .option('--cache <dir>', 'object cache directory (default ~/.cache/scvmfs)')
    .option('--no-cache', 'do not cache objects on disk');
}

export async function openReader(location: string, o: ReadOptions): Promise<RepositoryReader> {
  const trust = await readTrust(o);
  const cacheRoot = o.cache === false ? undefined : (o.cache ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'scvmfs'));
  const source = openSource(location, cacheRoot ? join(cacheRoot, o.fqrn) : undefined);
  return RepositoryReader.open(source, { ...trust, at: revisionSelector(o) });
}

/** --revision N / --tag T: read an older revision instead of the head. */
export function revisionOptions(cmd: Command, what = 'read'): Command {
  return cmd
    .option('--revision <n>', `${what} this revision instead of the head`, (v) => positiveInt(v, '--revision'))
    .option('--tag <name>', `${what} the revision this tag names instead of the head`);
}

export function revisionSelector(o: { revision?: number; tag?: string }): RevisionSelector | undefined {
  if (o.revision !== undefined && o.tag !== undefined) throw new ScvmfsError('usage', 'conflicting-options', 'give --revision or --tag, not both');
  if (o.revision !== undefined) return { revision: o.revision };
  if (o.tag !== undefined) return { tag: o.tag };
  return undefined;
}

/** The one date format of every command's output: ISO 8601 in UTC, to the second. */
export function formatTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** --json output: one JSON document on standard output. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}


/** A directory entry as `ls --json` prints it (docs/cli.md). */
export function entryJson(e: DirectoryEntry, path: string) {
  return {
    path, name: e.name, type: kindOfMode(e.mode), mode: (e.mode & 0o7777).toString(8).padStart(4, '0'), size: e.size,
    mtime: e.mtime, uid: e.uid, gid: e.gid, links: e.linkcount,
    ...(kindOfMode(e.mode) === 'symlink' ? { target: e.symlink } : {}),
    ...(e.hash ? { hash: e.hash.toHex() } : {}),
    ...(e.extraFlags & FLAG.chunked ? { chunked: true } : {}),
  };
}

/** `--store`, the same on every command that takes one. */
export function storeOption(opts: { orStack?: boolean } = {}): Option {
  const option = new Option('--store <url>', 'where the repository lives: a directory, a file:// URL, or s3://<bucket>/<prefix>?endpoint=<url>'
    + (opts.orStack ? ' (with --stack: the stack\'s StoreUrl)' : ''));
  return opts.orStack ? option : option.makeOptionMandatory();
}

/** The balancing options of every command that writes catalogs (owner publish, publisher publish, ingest). */
export const maxWeightOption = () => new Option('--max-weight <rows>', 'split catalogs above this many entries')
  .argParser((v) => positiveInt(v, '--max-weight')).default(100000);
export const minWeightOption = () => new Option('--min-weight <rows>', 'merge automatic catalogs below this many entries')
  .argParser((v) => positiveInt(v, '--min-weight')).default(1000);
export const noAutocatalogsOption = () => new Option('--no-autocatalogs', 'never split or merge catalogs automatically');

/** Store credentials and endpoints the functions need, as a cloud function would get them. */
export function passThroughEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (/^AWS_/.test(k) || k === 'S3_ENDPOINT' || k === 'SCVMFS_SCRATCH')) out[k] = v;
  }
  return out;
}

/** `--stack` / `--stack-outputs` of every command that talks to a deployed stack (runtime/stack-outputs.ts). */
export function stackOptions(cmd: Command): Command {
  return cmd
    .option('--stack <name>', 'the deployed stack (its outputs as saved by npm run deploy or --stack-outputs)')
    .option('--stack-outputs <file>', 'a `cdk deploy --outputs-file` JSON: read, saved for later --stack, and used');
}

export const PRICING_HELP = `price table: ${BUILTIN_PRICE_TABLES.map((t) => t.name).join(', ')}, or a JSON price file (scvmfs cost pricing <name> prints one)`;

/** A built-in price table by name, or a price file in the same JSON shape. */
export function readPricing(nameOrFile: string): PriceTable {
  const builtin = builtinPriceTable(nameOrFile);
  if (builtin) return builtin;
  let text: string;
  try {
    text = readFileSync(nameOrFile, 'utf8');
  } catch (err) {
    throw new RefusedError('bad-pricing', `--pricing '${nameOrFile}' is neither a built-in table (${BUILTIN_PRICE_TABLES.map((t) => t.name).join(', ')}) nor a readable price file: ${(err as Error).message}`);
  }
  return parsePriceTable(text, nameOrFile);
}

/**
 * `--pricing <name|file>` of every command that ends with its bill: parsed while the options are, so a
 * bad table is refused before the command changes anything. The value is the PriceTable.
 */
export function pricingOption(): Option {
  return new Option('--pricing <name|file>', `price the operation's bill with this ${PRICING_HELP}`)
    .argParser((v: string) => {
      try {
        return readPricing(v);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    })
    .default(AWS_US_EAST_1, AWS_US_EAST_1.name);
}

/** `--no-ledger`: print the bill but do not append it to the cost ledger (a store this user may only read). */
export function noLedgerOption(): Option {
  return new Option('--no-ledger', 'do not record this operation in the cost ledger (.scvmfs/ledger/)');
}

/** `--json` of a command that also prints its bill: the summary and the bill as one JSON document. */
export function jsonOption(): Option {
  return new Option('--json', 'print the summary and the bill as JSON (docs/cost.md)');
}
