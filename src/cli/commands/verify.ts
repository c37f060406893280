// `scvmfs verify`: checks a repository as the store holds it and lists every problem found.
import { Command, Option } from 'commander';
import { DEFAULT_MAX_PROBLEMS, VerifyFailedError, verifyAt, type VerifyReport } from '../../client/verify.js';
import { ProgressLine, formatBytes } from '../progress.js';
import { positiveInt, readTrust, revisionOptions, revisionSelector, trustOptions, type TrustOptions } from '../options.js';

interface VerifyCliOptions extends TrustOptions {
  maxProblems: number;
  json?: boolean;
  quiet?: boolean;
  revision?: number;
  tag?: string;
}

export function register(program: Command): void {
  trustOptions(revisionOptions(program.command('verify'), 'verify')
    .description('check signatures, whitelist, every catalog and every object in the store; lists every problem')
    .argument('<location>', 'http(s) URL of the repository, its directory, or an s3:// store'))
    .option('--max-problems <n>', 'stop after this many problems', (v) => positiveInt(v, '--max-problems'), DEFAULT_MAX_PROBLEMS)
    .option('--json', 'print the report as JSON on standard output (shape in README.md)')
    .option('-q, --quiet', 'no progress output')
    // verify never reads or writes the local object cache; the options stay accepted for old scripts.
    .addOption(new Option('--cache <dir>', 'ignored: verify never uses the local cache').hideHelp())
    .addOption(new Option('--no-cache', 'ignored: verify never uses the local cache').hideHelp())
    .action(async (location: string, o: VerifyCliOptions) => {
      const trust = await readTrust(o);
      const progress = new ProgressLine(o.quiet || o.json);
      let report: VerifyReport;
      try {
        report = await verifyAt(location, {
          ...trust, at: revisionSelector(o), maxProblems: o.maxProblems,
          onProgress: (p) => progress.update(`verifying: ${p.catalogs} catalogs, ${p.entries} entries, ${p.objects} objects`),
        });
      } catch (err) {
        progress.done();
        if (o.json && err instanceof VerifyFailedError) console.log(JSON.stringify({ ok: false, ...err.report }, null, 2));
        throw err;
      }
      progress.done();
      if (o.json) {
        console.log(JSON.stringify({ ok: true, ...report }, null, 2));
        return;
      }
      console.log(`OK ${o.fqrn} revision ${report.revision}: ${report.catalogs} catalogs, ${report.entries} entries, ` +
        `${report.objects} objects (${formatBytes(report.bytes)}) verified; tags: ${report.tags.join(', ') || 'none'}`);
      for (const w of report.warnings) console.error(`scvmfs: warning: ${w}`);
    });
}
