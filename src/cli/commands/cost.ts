// scvmfs cost: month-to-date spend from the ledger, a projected month under several price tables,
// the built-in price tables, and a baseline for repositories older than their ledger.
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { PRICING_HELP, readPricing } from '../options.js';
import { RefusedError } from '../../errors.js';
import { formatBill, formatDollars } from '../../cost/bill.js';
import { BUILTIN_PRICE_TABLES, builtinPriceTable, type PriceTable } from '../../cost/prices.js';
import { parseCloudFrontLog, parseServeLog, parseAccessLog } from '../../cost/access-log.js';
import type { ReadSide } from '../../cost/projection.js';
import { monthCost, projectFromStore, readSideFromLog, type CostProjection, type MonthCost } from '../../repo/cost-report.js';
import { parseMonth, recordLedgerBaseline } from '../../repo/ledger.js';
import { openStore } from '../../store/open-store.js';
import { formatBytes } from '../progress.js';

/** A built-in table by name, or a price file in the same JSON shape. */
export async function loadPricing(nameOrFile: string): Promise<PriceTable> {
  return readPricing(nameOrFile);
}

export { PRICING_HELP };

function fraction(v: string, name: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} needs a fraction from 0 to 1, got '${v}'`);
  return n;
}

function nonNegative(v: string, name: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} needs a number ≥ 0, got '${v}'`);
  return n;
}

function positive(v: string, name: string): number {
  const n = nonNegative(v, name);
  if (n === 0) throw new InvalidArgumentError(`${name} needs a number > 0, got '${v}'`);
  return n;
}

function month(v: string): string {
  try {
    parseMonth(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return v;
}

/** 7d, 12h, 30m, 3600s, or seconds. */
function period(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(d|h|m|s)?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError(`'${v}' is not a period (e.g. 7d, 12h, 3600s)`);
  return Number(m[1]) * ({ d: 86400, h: 3600, m: 60, s: 1 }[m[2] as 'd' | 'h' | 'm' | 's' ?? 's'] ?? 1);
}

function printMonth(c: MonthCost): void {
  const done = c.hoursElapsed >= c.hoursInMonth;
  console.log(`${c.month}${done ? '' : ` to date (${(c.hoursElapsed / 24).toFixed(1)} of ${(c.hoursInMonth / 24).toFixed(0)} days)`}: ` +
    `${formatDollars(c.bill.total)} on ${c.pricing.name} (prices of ${c.pricing.pricedAt}), ${c.records} operations`);
  console.log(`storage held: ${formatBytes(c.storage.bytesNow)} in ${c.storage.objectsNow.toLocaleString('en-US')} objects ` +
    `(${formatBytes(c.storage.bytesAtStart)} at the start of the month; ${c.storage.gbMonths.toPrecision(4)} GB-months so far)`);
  for (const l of formatBill(c.bill)) console.log(l);
  if (c.groups) {
    console.log(`by ${c.by}:`);
    const width = Math.max(...c.groups.map((g) => g.name.length), 4);
    for (const g of c.groups) console.log(`  ${g.name.padEnd(width)}  ${String(g.records).padStart(6)} operations  ${formatDollars(g.bill.total).padStart(10)}`);
  }
}

function printProjection(p: CostProjection): void {
  const rows: [string, (x: CostProjection['projections'][number]) => string][] = [
    ['storage', (x) => formatDollars(x.parts.storage)],
    ['publishing', (x) => formatDollars(x.parts.publishing)],
    ['reads', (x) => formatDollars(x.parts.reads)],
    ['total a month', (x) => formatDollars(x.bill.total)],
  ];
  const names = p.projections.map((x) => x.pricing.name);
  const widths = names.map((n) => Math.max(n.length, 12));
  console.log(`${''.padEnd(14)}${names.map((n, i) => n.padStart(widths[i]! + 2)).join('')}`);
  for (const [label, f] of rows) console.log(`${label.padEnd(14)}${p.projections.map((x, i) => f(x).padStart(widths[i]! + 2)).join('')}`);
  const d = p.projections[0]?.demand;
  if (d) {
    console.log(`reads a month: ${Math.round(d.edgeRequests).toLocaleString('en-US')} requests, ${formatBytes(d.edgeBytes)} to clients; ` +
      `cache misses: ${Math.round(d.originRequests).toLocaleString('en-US')} requests, ${formatBytes(d.originBytes)}`);
  }
  for (const x of p.projections) {
    console.log(`\n${x.pricing.name}: ${x.pricing.description}`);
    for (const l of formatBill(x.bill)) console.log(l);
  }
  console.log('\nassumptions:');
  for (const a of [...p.notes, ...(p.projections[0]?.assumptions ?? [])]) console.log(`  - ${a}`);
  for (const x of p.projections) for (const a of x.tableAssumptions) console.log(`  - ${x.pricing.name}: ${a}`);
}

interface ProjectOptions {
  month?: string;
  pricing: string[];
  clients?: number;
  coldFraction?: number;
  cacheHitRatio?: number;
  ttl: number;
  manifestBytes: number;
  accessLog?: string;
  logFormat: 'auto' | 'serve' | 'cloudfront';
  logPeriod?: number;
  publishes?: number;
  secrets: number;
  json?: boolean;
}

async function readSide(o: ProjectOptions): Promise<ReadSide> {
  if (o.accessLog !== undefined) {
    if (o.clients !== undefined || o.coldFraction !== undefined) throw new RefusedError('bad-read-side', 'give either --access-log or --clients/--cold-fraction, not both');
    const text = await readFile(o.accessLog, 'utf8').catch((err: Error) => { throw new RefusedError('bad-access-log', `cannot read --access-log ${o.accessLog}: ${err.message}`); });
    const obs = o.logFormat === 'serve' ? parseServeLog(text) : o.logFormat === 'cloudfront' ? parseCloudFrontLog(text) : parseAccessLog(text);
    return readSideFromLog(obs, { periodSeconds: o.logPeriod, cacheHitRatio: o.cacheHitRatio, source: o.accessLog });
  }
  const missing = [o.clients === undefined && '--clients', o.coldFraction === undefined && '--cold-fraction', o.cacheHitRatio === undefined && '--cache-hit-ratio'].filter(Boolean);
  if (missing.length > 0) throw new RefusedError('bad-read-side', `say how the repository is read: --access-log <file>, or ${missing.join(', ')} (docs/cost.md)`);
  return { from: 'model', clients: o.clients!, coldFraction: o.coldFraction!, cacheHitRatio: o.cacheHitRatio!, ttlSeconds: o.ttl, manifestBytes: o.manifestBytes };
}

export function register(program: Command): void {
  const cost = program.command('cost')
    .description('month-to-date spend from the cost ledger, and the storage held')
    .enablePositionalOptions()
    .argument('<store>', 'where the repository lives')
    .option('--month <YYYY-MM>', 'another month than the current one', month)
    .addOption(new Option('--by <what>', 'break the operations down').choices(['operation', 'publisher']))
    .option('--pricing <name|file>', PRICING_HELP, 'aws-us-east-1')
    .option('--secrets <n>', 'secrets kept in the secrets service (billed by the month)', (v) => nonNegative(v, '--secrets'), 0)
    .option('--json', 'print JSON')
    .action(async (store: string, o: { month?: string; by?: 'operation' | 'publisher'; pricing: string; secrets: number; json?: boolean }) => {
      const report = await monthCost(openStore(store), { month: o.month, by: o.by, pricing: await loadPricing(o.pricing), secrets: o.secrets });
      if (o.json) console.log(JSON.stringify(report, null, 2));
      else printMonth(report);
    });

  cost.command('project')
    .description('project a month: the ledger\'s publish rate plus a read side, under several price tables side by side')
    .argument('<store>', 'where the repository lives')
    .option('--month <YYYY-MM>', 'the month whose publish rate is projected (default: the current one)', month)
    .option('--pricing <name|file>', `${PRICING_HELP}; repeatable (default: all built-in tables)`, (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--clients <n>', 'independent caches reaching the CDN: site proxies, or machines without one', (v) => nonNegative(v, '--clients'))
    .option('--cold-fraction <f>', 'fraction of the stored bytes and objects each of them fetches in a month', (v) => fraction(v, '--cold-fraction'))
    .option('--cache-hit-ratio <h>', 'fraction of CDN requests answered from its cache', (v) => fraction(v, '--cache-hit-ratio'))
    .option('--ttl <seconds>', 'how often each client fetches the manifest', (v) => positive(v, '--ttl'), 240)
    .option('--manifest-bytes <n>', 'size of one manifest fetch', (v) => nonNegative(v, '--manifest-bytes'), 1024)
    .option('--access-log <file>', 'take the read side from an access log (scvmfs serve --access-log, or CloudFront standard log)')
    .addOption(new Option('--log-format <format>', 'format of --access-log').choices(['auto', 'serve', 'cloudfront']).default('auto'))
    .option('--log-period <period>', 'how long the access log covers, e.g. 7d (needed for scvmfs serve logs)', period)
    .option('--publishes <n>', 'publishes a month instead of the observed rate', (v) => nonNegative(v, '--publishes'))
    .option('--secrets <n>', 'secrets kept in the secrets service', (v) => nonNegative(v, '--secrets'), 0)
    .option('--json', 'print JSON')
    .action(async (store: string, o: ProjectOptions) => {
      const tables = o.pricing.length > 0 ? await Promise.all(o.pricing.map(loadPricing)) : [...BUILTIN_PRICE_TABLES];
      const projection = await projectFromStore(openStore(store), { month: o.month, publishesPerMonth: o.publishes, secrets: o.secrets, read: await readSide(o), tables });
      if (o.json) console.log(JSON.stringify(projection, null, 2));
      else printProjection(projection);
    });

  cost.command('pricing')
    .description('print a built-in price table as JSON (the shape --pricing files take), or list them')
    .argument('[name]', 'table name')
    .action((name?: string) => {
      if (name === undefined) {
        for (const t of BUILTIN_PRICE_TABLES) console.log(`${t.name.padEnd(16)} ${t.description} (prices of ${t.pricedAt})`);
        return;
      }
      const t = builtinPriceTable(name);
      if (!t) throw new RefusedError('bad-pricing', `no built-in price table '${name}' (there are ${BUILTIN_PRICE_TABLES.map((x) => x.name).join(', ')})`);
      console.log(JSON.stringify(t, null, 2));
    });

  cost.command('baseline')
    .description('record what the store holds now in the ledger (one LIST of the store), for repositories older than their ledger')
    .argument('<store>', 'where the repository lives')
    .action(async (store: string) => {
      const r = await recordLedgerBaseline(openStore(store));
      console.log(`baseline: ${formatBytes(r.held.bytes)} in ${r.held.objects.toLocaleString('en-US')} objects (ledger record ${r.record.id})`);
      if (r.warning) console.error(`scvmfs: warning: ${r.warning}`);
    });
}
