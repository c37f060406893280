// The progress of a publish or an ingest on standard error, phase by phase. On a terminal: one line
// redrawn by cli-progress (a bar once the totals are known); otherwise a plain line at every phase
// change and every few seconds. Figures arrive at most every 100 ms (publish/progress.ts) and are only
// formatted when a line is drawn.
import cliProgress from 'cli-progress';
import { formatBytes } from './progress.js';

/** The counters every phased operation reports. */
export interface PhaseFigures {
  phase: string;
  filesDone: number;
  bytesDone: number;
  /** Bytes of input consumed (a tarball's), when that is the measure of the phase. */
  inputBytes?: number;
}

export interface Rates {
  filesPerSecond: number;
  bytesPerSecond: number;
  inputPerSecond: number;
}

/** What one state looks like: the phase, its figures (most important first), and the share done when it has a bar. */
export interface PhaseLine {
  label: string;
  figures?: string;
  /** 0..1, for the bar; absent while the totals still grow. */
  done?: number;
}

const MAX_BAR = 30;
const MIN_BAR = 10;

export function plainText(l: PhaseLine): string {
  return l.figures === undefined ? l.label : `${l.label}: ${l.figures}`;
}

/** The terminal line: label, percentage, a bar as wide as the room left (within bounds), figures. */
export function terminalText(l: PhaseLine, width: number, barOptions: cliProgress.Options): string {
  if (l.done === undefined) return plainText(l);
  const head = `${l.label} ${String(Math.floor(l.done * 100)).padStart(3)}% [`;
  const tail = `] ${l.figures ?? ''}`;
  const barsize = Math.max(MIN_BAR, Math.min(MAX_BAR, width - 1 - head.length - tail.length));
  return `${head}${cliProgress.Format.BarFormat(l.done, { ...barOptions, barsize })}${tail}`;
}

const RATE_WINDOW_MS = 5000;
const PLAIN_INTERVAL_MS = 5000;

interface Sample { t: number; files: number; bytes: number; input: number }

/** Rates over the last few seconds; a stall lowers them, since the window ends now. */
export class RateWindow {
  private samples: Sample[] = [];

  add(p: PhaseFigures, t = Date.now()): void {
    this.samples.push({ t, files: p.filesDone, bytes: p.bytesDone, input: p.inputBytes ?? 0 });
    // Keep one sample at or before the window start as the base.
    while (this.samples.length > 2 && this.samples[1]!.t <= t - RATE_WINDOW_MS) this.samples.shift();
  }

  rates(t = Date.now()): Rates {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = first ? (t - first.t) / 1000 : 0;
    if (!first || !last || seconds <= 0) return { filesPerSecond: 0, bytesPerSecond: 0, inputPerSecond: 0 };
    return {
      filesPerSecond: (last.files - first.files) / seconds,
      bytesPerSecond: (last.bytes - first.bytes) / seconds,
      inputPerSecond: (last.input - first.input) / seconds,
    };
  }
}

/** Seconds left, the longer of the estimates from each (remaining, rate) pair; null when one cannot be made. */
export function etaSeconds(...pairs: [remaining: number, perSecond: number][]): number | null {
  let eta = 0;
  for (const [remaining, rate] of pairs) {
    if (remaining <= 0) continue;
    if (rate <= 0) return null;
    eta = Math.max(eta, remaining / rate);
  }
  return eta;
}

export function formatEta(seconds: number | null): string {
  if (seconds === null) return 'ETA ?';
  const s = Math.ceil(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return `ETA ${h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`}`;
}

export function formatRates(r: Rates): string {
  return `${formatBytes(Math.round(r.bytesPerSecond))}/s, ${Math.round(r.filesPerSecond)} files/s`;
}

export class PhaseProgress<P extends PhaseFigures> {
  private latest: P | undefined;
  private printed: P | undefined;
  private readonly window = new RateWindow();
  private bar: cliProgress.SingleBar | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly describe: (p: P, rates: Rates) => PhaseLine,
    private readonly options: { quiet?: boolean; tty?: boolean; intervalMs?: number } = {}) {}

  private get tty(): boolean {
    return this.options.tty ?? Boolean(process.stderr.isTTY);
  }

  update(p: P): void {
    if (this.options.quiet) return;
    const changed = this.latest?.phase !== p.phase;
    this.latest = p;
    this.window.add(p);
    if (this.tty) {
      if (!this.bar) this.startBar();
      else if (changed) this.bar.render();
      return;
    }
    if (changed) this.printLine();
    this.timer ??= setInterval(() => this.printLine(), this.options.intervalMs ?? PLAIN_INTERVAL_MS).unref();
  }

  /** A message (a warning, a step of the protocol) on its own line, the progress line kept below it. */
  log(message: string, stream: NodeJS.WriteStream = process.stderr): void {
    const active = this.bar !== undefined;
    this.stopBar();
    stream.write(`${message}\n`);
    if (active) this.startBar();
  }

  /** The end: the terminal line is cleared; a plain display prints the final figures if they are new. */
  done(): void {
    this.stopBar();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.tty && this.latest && this.latest !== this.printed) this.printLine();
  }

  private line(): PhaseLine {
    return this.describe(this.latest!, this.window.rates());
  }

  private printLine(): void {
    if (!this.latest) return;
    this.printed = this.latest;
    process.stderr.write(`${plainText(this.line())}\n`);
  }

  /** Interrupted while the bar shows: give the terminal back its line wrapping, then die of the signal as usual. */
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.stopBar();
    process.kill(process.pid, signal);
  };

  private startBar(): void {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    this.bar = new cliProgress.SingleBar({
      stream: process.stderr, clearOnComplete: true, barsize: MAX_BAR, fps: 10, forceRedraw: true,
      // Line wrapping is off while the bar shows: what does not fit the terminal is cut, so figures go first.
      format: (options) => terminalText(this.line(), process.stderr.columns || 80, options),
    });
    this.bar.start(1, 0);
  }

  private stopBar(): void {
    if (!this.bar) return;
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    this.bar.stop();
    this.bar = undefined;
  }
}
