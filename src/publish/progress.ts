// What a publish reports while it runs, and how often: the figures are plain counters bumped on the hot
// path; a copy goes to the listener at a phase change and at most every REPORT_INTERVAL_MS otherwise.

export interface PublishProgress {
  /**
   * scan: the walk goes on (files compress meanwhile, so the totals still grow); upload: the walk ended,
   * the totals are final and the rest is compression and upload; commit: catalogs and manifest.
   */
  phase: 'scan' | 'upload' | 'commit';
  /** Source entries the walk has looked at. */
  scanned: number;
  /** Files whose content is stored (rows written). */
  filesDone: number;
  /** Files queued for compression: new or changed content. */
  filesTotal: number;
  /** Content bytes read from the source. */
  bytesRead: number;
  /** Sum of the sizes of the files done. */
  bytesDone: number;
  /** Sum of the sizes of the files queued. */
  bytesTotal: number;
}

export const REPORT_INTERVAL_MS = 100;

/** Hands copies of a live progress object to a listener: at once on `now()`, throttled on `tick()`. */
export class ProgressReporter<T extends object> {
  private last = 0;

  constructor(readonly state: T, private readonly listener?: (p: T) => void) {}

  /** Something moved; reports if the last report is old enough. */
  tick(): void {
    if (!this.listener) return;
    const t = Date.now();
    if (t - this.last >= REPORT_INTERVAL_MS) this.report(t);
  }

  /** A phase changed or a run ended: reports now. */
  now(): void {
    if (this.listener) this.report(Date.now());
  }

  private report(t: number): void {
    this.last = t;
    this.listener!({ ...this.state });
  }
}
