// scvmfs rotate-key: a new repository key and certificate, trusted beside the old ones for an overlap
// (repo/rotate-key.ts).
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_OVERLAP_MS, rotateRepositoryKey } from '../../repo/rotate-key.js';
import { openStore } from '../../store/open-store.js';
import { positiveInt } from '../options.js';

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** '7d', '36h', '90m'. */
function parseOverlap(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|h|d)$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`'${v}' is not a duration in minutes, hours or days (e.g. 7d, 36h, 90m)`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

export function register(program: Command): void {
  program.command('rotate-key')
    .description('replace the repository key and certificate; the old ones stay trusted for an overlap, then resign drops them')
    .argument('<fqrn>', 'repository name')
    .requiredOption('--store <url>', 'where the repository lives')
    .requiredOption('--keys <dir>', 'key directory holding <fqrn>.masterkey, .pub, .key and .crt (the new pair replaces .key/.crt)')
    .option('--overlap <duration>', 'how long the old certificate stays listed, e.g. 7d, 36h', parseOverlap, DEFAULT_OVERLAP_MS)
    .option('--whitelist-days <days>', 'validity of the re-signed whitelist (at most 30)', (v) => positiveInt(v, '--whitelist-days'), 30)
    .action(async (fqrn: string, o: { store: string; keys: string; overlap: number; whitelistDays: number }) => {
      const r = await rotateRepositoryKey(openStore(o.store), {
        fqrn, keysDir: o.keys, overlapMs: o.overlap, whitelistDays: o.whitelistDays,
        onWarning: (m) => console.error(`scvmfs: warning: ${m}`),
      });
      console.log(`rotated the repository key of ${fqrn}: new certificate ${r.newFingerprint}`);
      console.log(`  the old certificate ${r.oldFingerprint} stays trusted until ${r.overlapUntil.toISOString()}; ` +
        `the first resign after that drops it`);
      console.log(`  old key kept as ${r.retired.key} and ${r.retired.crt}`);
      console.log(`  the next publish signs with the new key; update the functions' key secret now (docs/aws.md)`);
    });
}
