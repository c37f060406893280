// Usage × a price table = a bill: one line per thing the provider charges for, each with its quantity,
// unit price and dollars, and a total. Pure arithmetic; the JSON shape is the Bill itself.
import { requestClassOf, type PriceTable } from './prices.js';
import { BYTES_PER_GB, STORE_REQUEST_KINDS, gbSeconds, type Usage } from './usage.js';

export interface BillLine {
  /** What is charged, e.g. 'S3 PUT, COPY, POST, LIST requests'. */
  item: string;
  quantity: number;
  /** The unit the quantity counts: 'requests', 'GB', 'GB-s', 'GB-month', 'secret-months', 'invocations'. */
  unit: string;
  /** Dollars per `per` units. */
  unitPrice: number;
  per: number;
  dollars: number;
}

export interface Bill {
  pricing: string;
  pricedAt: string;
  lines: BillLine[];
  total: number;
}

function line(item: string, quantity: number, unit: string, unitPrice: number, per: number): BillLine {
  return { item, quantity, unit, unitPrice, per, dollars: (quantity / per) * unitPrice };
}

export function makeBill(table: PriceTable, lines: BillLine[]): Bill {
  const kept = lines.filter((l) => l.quantity > 0);
  return { pricing: table.name, pricedAt: table.pricedAt, lines: kept, total: kept.reduce((s, l) => s + l.dollars, 0) };
}

/** The lines for an operation's usage: store requests by class, egress, functions, secret calls. */
export function usageLines(usage: Usage, table: PriceTable): BillLine[] {
  const lines: BillLine[] = [];
  const byClass = new Map<string, number>();
  for (const kind of STORE_REQUEST_KINDS) {
    const n = usage.requests[kind] ?? 0;
    if (n === 0) continue;
    const [id] = requestClassOf(table, kind);
    byClass.set(id, (byClass.get(id) ?? 0) + n);
  }
  for (const [id, rc] of Object.entries(table.storage.requestClasses)) {
    const n = byClass.get(id);
    if (n !== undefined) lines.push(line(`store requests: ${rc.label}`, n, 'requests', rc.per1000, 1000));
  }
  if (usage.egressBytes > 0) lines.push(line('store egress to the internet', usage.egressBytes / BYTES_PER_GB, 'GB', table.storage.egressPerGB, 1));
  // Services the table does not have (functions run locally, keys in files) cost nothing: no line.
  const fns = usage.functions.filter((f) => f.invocations > 0);
  const p = table.functions;
  if (p && fns.length > 0) {
    const invocations = fns.reduce((s, f) => s + f.invocations, 0);
    lines.push(line(`${p.name}: invocations`, invocations, 'invocations', p.perMillionInvocations, 1e6));
    for (const arch of ['x86_64', 'arm64'] as const) {
      const gbs = fns.filter((f) => f.arch === arch).reduce((s, f) => s + gbSeconds(f), 0);
      if (gbs > 0) lines.push(line(`${p.name}: ${arch} duration`, gbs, 'GB-s', p.gbSecond[arch], 1));
    }
  }
  if (table.secrets && usage.secretCalls > 0) lines.push(line(`${table.secrets.name}: API calls`, usage.secretCalls, 'calls', table.secrets.per10000Calls, 10000));
  return lines;
}

/** Storage held for `gbMonths` GB-months (2^30 bytes for one month, or the same byte-hours spread out). */
export function storageLine(gbMonths: number, table: PriceTable): BillLine {
  return line('storage', gbMonths, 'GB-month', table.storage.gbMonth, 1);
}

export function secretsLine(secretMonths: number, table: PriceTable): BillLine {
  return line(`${table.secrets?.name ?? 'secrets'}: secrets stored`, secretMonths, 'secret-months', table.secrets?.perSecretMonth ?? 0, 1);
}

/** The bill of one operation (no storage line: holding bytes is billed by the month). */
export function billUsage(usage: Usage, table: PriceTable): Bill {
  return makeBill(table, usageLines(usage, table));
}

/** Dollars as people read them: cents for big amounts, enough digits to see a fraction of a cent. */
export function formatDollars(x: number): string {
  if (x === 0) return '$0';
  if (Math.abs(x) >= 10) return `$${x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  if (Math.abs(x) >= 0.01) return `$${x.toFixed(4)}`;
  if (Math.abs(x) >= 0.000001) return `$${x.toFixed(6)}`;
  return '<$0.000001';
}

/** One line, e.g. `this publish cost $0.0123 on aws-us-east-1`. */
export function formatBillTotal(bill: Bill, operation: string): string {
  return `this ${operation} cost ${formatDollars(bill.total)} on ${bill.pricing} (prices of ${bill.pricedAt})`;
}

function formatQuantity(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(4);
}

/** The bill as a table for people: item, quantity and unit, unit price, dollars. */
export function formatBill(bill: Bill): string[] {
  const rows = bill.lines.map((l) => [l.item, `${formatQuantity(l.quantity)} ${l.unit}`, `$${l.unitPrice} per ${l.per === 1 ? '' : `${l.per.toLocaleString('en-US')} `}${l.per === 1 && l.unit === 'secret-months' ? 'secret-month' : l.unit}`, formatDollars(l.dollars)]);
  rows.push(['total', '', '', formatDollars(bill.total)]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padStart(widths[1]!)}  ${r[2]!.padEnd(widths[2]!)}  ${r[3]!.padStart(10)}`);
}
