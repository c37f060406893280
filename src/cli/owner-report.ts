// The end of an owner's revision (publish, ingest): the summary lines, the bill, and the --json document.
import type { ObjectStore } from '../store/object-store.js';
import { meterSummary, type MeterSnapshot } from '../store/metered-store.js';
import type { RevisionSummary } from '../publish/owner-publish.js';
import { printJson } from './options.js';
import { operationUsage, reportOperationBill, storedBy, type BillOptions } from './operation-bill.js';

export interface OwnerRevisionLines {
  operation: 'publish' | 'ingest';
  fqrn: string;
  /** What was read, for the no-change line: "12 entries scanned". */
  noChange: string;
  /** The lines that open the summary of a new revision: the headline and what this operation read. */
  head: string[];
  /** Nested catalogs the operation made by request (ingest --catalog), listed before the balancer's. */
  nestedCatalogs?: string[];
}

/** Prints the summary (unless --json), records and prints the bill, and prints the --json document. */
export async function reportOwnerRevision(summary: RevisionSummary, meter: { snapshot(): MeterSnapshot }, store: ObjectStore,
  options: BillOptions, lines: OwnerRevisionLines): Promise<void> {
  // With --json, standard output carries the one JSON document only.
  const out = options.json ? () => {} : (m: string) => console.log(m);
  if (!summary.changed) {
    out(`no change: ${lines.fqrn} stays at revision ${summary.revision} (${lines.noChange} in ${summary.seconds.toFixed(1)} s)`);
    out(`  ${meterSummary(meter.snapshot())}`);
  } else {
    for (const line of lines.head) out(line);
    out(`  objects: ${summary.objectsUploaded} uploaded, ${summary.objectsAlreadyPresent} already present; catalogs written: ${summary.catalogsWritten}`);
    const nested = lines.nestedCatalogs ?? [];
    if (nested.length > 0) out(`  new nested catalogs (markers): ${nested.join(', ')}`);
    if (summary.catalogsSplit.length > 0) out(`  new nested catalogs (balancing): ${summary.catalogsSplit.join(', ')}`);
    if (summary.catalogsMerged.length > 0) out(`  merged catalogs (balancing): ${summary.catalogsMerged.join(', ')}`);
    out(`  time: ${summary.seconds.toFixed(2)} s`);
    out(`  ${meterSummary(meter.snapshot())}`);
  }
  const requests = meter.snapshot();
  const bill = await reportOperationBill(store, {
    operation: lines.operation, fqrn: lines.fqrn, revision: summary.revision, usage: operationUsage({ writer: requests }),
    storage: storedBy([requests], summary.storedOutside),
  }, options);
  if (options.json) printJson({ fqrn: lines.fqrn, ...summary, rootCatalog: summary.rootCatalog.toHex(), requests, bill });
}

