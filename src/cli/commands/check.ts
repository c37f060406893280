// `scvmfs check`: every catalog and every object of a repository checked once, as a chain of bounded,
// resumable function steps (functions/check); lists every problem with the paths that reference it.
import { meterSum } from '../../store/metered-store.js';
import { openStore } from '../../store/open-store.js';
import { operationUsage, reportOperationBill, type BillOptions } from '../operation-bill.js';
import { Command, Option } from 'commander';
import { CheckFailedError, runCheck, type CheckProgress, type CheckReport } from '../../runtime/check-run.js';
import { meterRequests } from '../../store/metered-store.js';
import { ProgressLine, formatBytes } from '../progress.js';
import { noLedgerOption, parseDuration, positiveInt, pricingOption, readTrust, trustOptions, type TrustOptions } from '../options.js';

interface CheckCliOptions extends BillOptions, TrustOptions {
  allRevisions?: boolean;
  full?: boolean;
  resume?: boolean;
  json?: boolean;
  quiet?: boolean;
  runtime: 'local' | 'inline';
  stateDir?: string;
  fnMemory: number;
  fnTimeout: number;
}

const rate = (n: number, seconds: number) => (seconds > 0 ? Math.round(n / seconds) : n);

function progressText(p: CheckProgress): string {
  return `checking (${p.phase}): ${p.catalogs} catalogs, ${p.entries} entries (${rate(p.entries, p.seconds)}/s), ` +
    `${p.objects} objects (${rate(p.objects, p.seconds)}/s), ${p.listed} keys listed, ${p.requests} requests, ${p.slices} slices`;
}

function summary(r: CheckReport): string {
  return `${r.catalogs} catalogs, ${r.entries} entries, ${r.objects} objects (${formatBytes(r.bytes)} read) in ${r.seconds.toFixed(1)} s ` +
    `(${rate(r.entries, r.seconds)} entries/s, ${rate(r.objects, r.seconds)} objects/s); ${meterRequests(r.requests)} store requests ` +
    `(${r.requests.list} LIST, ${r.requests.get} GET), ${r.slices} slices` +
    (r.peakMemoryMb !== null ? `, peak ${r.peakMemoryMb.toFixed(0)} MB per invocation` : '');
}

export function register(program: Command): void {
  trustOptions(program.command('check')
    .description('check every catalog and every object once, in resumable slices; lists every problem with its paths')
    .argument('<location>', 'the store (directory or s3://), or an http(s) URL of the repository (then --state-dir)'))
    .option('--all-revisions', 'every revision the head\'s previous_revision chain and its tags reach, not only the head')
    .option('--full', 'read every object once and check its hash and size (default: existence from a listing of data/)')
    .option('--resume', 'go on from the state a killed check left (give the same --all-revisions/--full)')
    .option('--json', 'print the report as JSON on standard output')
    .option('-q, --quiet', 'no progress output')
    .addOption(new Option('--runtime <where>', 'run the steps in local function sandboxes with their limits, or in this process')
      .choices(['local', 'inline']).default('local'))
    .option('--state-dir <dir>', 'keep the check\'s state in this directory instead of the store\'s control area (needed for http(s))')
    .option('--fn-memory <mb>', 'memory of each function invocation, in MB', (v) => positiveInt(v, '--fn-memory'), 128)
    .option('--fn-timeout <duration>', 'wall-time limit of each invocation (a slice hands over before half of it)', parseDuration, 60_000)
    .addOption(pricingOption())
    .addOption(noLedgerOption())
    .action(async (location: string, o: CheckCliOptions) => {
      const trust = await readTrust(o);
      const progress = new ProgressLine(o.quiet || o.json);
      let report: CheckReport;
      try {
        report = await runCheck(location, {
          ...trust, allRevisions: o.allRevisions, full: o.full, resume: o.resume,
          runtime: o.runtime, stateDir: o.stateDir, memoryMb: o.fnMemory, timeoutMs: o.fnTimeout,
          onProgress: (p) => progress.update(progressText(p)),
        });
      } catch (err) {
        progress.done();
        if (err instanceof CheckFailedError) {
          // A check that found problems cost as much as one that found none.
          const bill = await checkBill(location, err.report, o);
          if (o.json) console.log(JSON.stringify({ ok: false, ...err.report, bill }, null, 2));
          else console.error(summary(err.report));
        }
        throw err;
      }
      progress.done();
      if (!o.json) {
        console.log(`OK ${o.fqrn} revision ${report.revision}${report.roots > 1 ? ` and ${report.roots - 1} more roots` : ''}: ${summary(report)}`);
        for (const w of report.warnings) console.error(`scvmfs: warning: ${w}`);
      }
      const bill = await checkBill(location, report, o);
      if (o.json) console.log(JSON.stringify({ ok: true, ...report, bill }, null, 2));
    });
}

/**
 * The check's bill: in the store's ledger, except over http(s), where there is no store to write to.
 * Steps in sandboxes run beside the bucket (no egress); inline, this process read the objects.
 */
async function checkBill(location: string, r: CheckReport, o: CheckCliOptions) {
  const url = /^https?:\/\//i.test(location);
  const usage = r.runtime === 'inline' || url
    ? operationUsage({ writer: r.requests, functions: r.functions })
    : operationUsage({ writer: meterSum([]), functionRequests: r.requests, functions: r.functions });
  return reportOperationBill(url ? openStore(o.stateDir ?? '.') : openStore(location), { operation: 'check', fqrn: o.fqrn, revision: r.revision, usage },
    { pricing: o.pricing, ledger: o.ledger && !url, json: o.json });
}
