// Progress lines on stderr: redrawn in place on a terminal, one line every few seconds otherwise.
export class ProgressLine {
  private last = 0;
  private drawn = false;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly quiet = false, private readonly intervalMs = 2000) {}

  update(text: string): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.tty) {
      if (now - this.last < 100) return;
      process.stderr.write(`\r\x1b[K${text}`);
      this.drawn = true;
    } else {
      if (now - this.last < this.intervalMs) return;
      process.stderr.write(`${text}\n`);
    }
    this.last = now;
  }

  done(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
    this.drawn = false;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
