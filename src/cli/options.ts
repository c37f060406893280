// Options shared by several commands, declared once: their parsing, units and defaults are the same
// everywhere.
import { Command, InvalidArgumentError } from 'commander';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { chunkingParameters, type ChunkingParameters } from '../format/chunker.js';
import { openSource } from '../client/sources.js';
import { RepositoryReader } from '../client/reader.js';

export function parseChunkSizes(v: string): ChunkingParameters {
  const parts = v.split(',').map((x) => Number(x.trim()));
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n))) throw new InvalidArgumentError(`'${v}' is not min,avg,max in bytes`);
  try {
    return chunkingParameters({ minSize: parts[0], avgSize: parts[1], maxSize: parts[2] });
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`'${v}' is not a duration (e.g. 2s, 500ms)`);
  const n = Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 'ms' ? 1 : 1000);
  if (n < 100 || n > 900_000) throw new InvalidArgumentError('function timeout must be between 100ms and 15m');
  return Math.round(n);
}

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

export interface ReadOptions { fqrn: string; pubkey: string[]; allowExpiredWhitelist?: boolean; cache?: string | false }

export function readerOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--fqrn <fqrn>', 'repository name')
    .requiredOption('--pubkey <file...>', 'master public key(s) (<fqrn>.pub)')
    .option('--allow-expired-whitelist', 'accept an expired whitelist (archived repositories only)')
    .option('--cache <dir>', 'object cache directory (default ~/.cache/scvmfs)')
    .option('--no-cache', 'do not cache objects on disk');
}

export async function openReader(location: string, o: ReadOptions): Promise<RepositoryReader> {
  const publicKeys = await Promise.all(o.pubkey.map((f) => readFile(f, 'utf8').catch((e: Error) => { throw new Error(`cannot read public key ${f}: ${e.message}`); })));
  const cacheRoot = o.cache === false ? undefined : (o.cache ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'scvmfs'));
  const source = openSource(location, cacheRoot ? join(cacheRoot, o.fqrn) : undefined);
  return RepositoryReader.open(source, { fqrn: o.fqrn, publicKeys, allowExpiredWhitelist: o.allowExpiredWhitelist });
}

