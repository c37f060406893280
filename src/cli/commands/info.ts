// scvmfs info: a repository's manifest, trust chain, totals and replica markers at a glance.
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { openSource } from '../../client/sources.js';
import { repositoryInfo } from '../../client/info.js';
import { formatTime, printJson } from '../options.js';

export function register(program: Command): void {
  program.command('info')
    .description('show revision, root catalog, publish time, TTL, hash, GC flag, certificate, whitelist expiry, totals, stratum-1 markers')
    .argument('<url-or-store>', 'http(s) URL of the repository or its store')
    .requiredOption('--fqrn <fqrn>', 'repository name')
    .option('--pubkey <file...>', 'master public key(s): also check the whitelist signature')
    .option('--json', 'print the information as JSON (docs/cli.md)')
    .action(async (location: string, o: { fqrn: string; pubkey?: string[]; json?: boolean }) => {
      const publicKeys = o.pubkey ? await Promise.all(o.pubkey.map((f) => readFile(f, 'utf8'))) : undefined;
      const info = await repositoryInfo(openSource(location), { fqrn: o.fqrn, publicKeys });
      if (o.json) return printJson(info);
      const e = info.entries;
      console.log([
        `repository:    ${info.fqrn}`,
        `revision:      ${info.revision}`,
        `root catalog:  ${info.rootCatalog}${info.rootCatalogSize !== null ? ` (${info.rootCatalogSize} bytes)` : ''}`,
        `published:     ${formatTime(info.publishedAt)}`,
        `TTL:           ${info.ttl} s`,
        `hash:          ${info.hashAlgorithm}`,
        `garbage-collectable: ${info.garbageCollectable ? 'yes' : 'no'}`,
        `history:       ${info.history ?? 'none'}`,
        `certificate:   ${info.certificate.fingerprint}`,
        `whitelist:     expires ${formatTime(info.whitelist.expiresAt)}${info.whitelist.expired ? ' (EXPIRED)' : ` (${info.whitelist.daysLeft} days left)`}` +
          `${info.whitelist.verified ? ', signature verified' : ', signature not checked'}`,
        `catalogs:      ${info.catalogs}`,
        `entries:       ${e.total} (${e.regular} files, ${e.dir} directories, ${e.symlink} symlinks, ${e.special} special; ` +
          `${e.chunked} chunked files in ${e.chunks} chunks; ${e.file_size} bytes)`,
        `stratum 1:     ${info.stratum1.masterReplica ? 'replicable (.cvmfs_master_replica)' : 'not marked replicable'}` +
          `${info.stratum1.lastSnapshot ? `, last snapshot ${info.stratum1.lastSnapshot}` : ''}`,
      ].join('\n'));
      for (const w of info.warnings) console.error(`scvmfs: warning: ${w}`);
    });
}
