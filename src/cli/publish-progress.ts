// The lines of publish and ingest progress: scanning (or reading the tarball), compressing and
// uploading with a bar once the totals are final, then the commit.
import type { PublishProgress } from '../publish/progress.js';
import type { IngestProgress } from '../publish/ingest-tarball.js';
import { formatBytes } from './progress.js';
import { etaSeconds, formatEta, formatRates, PhaseProgress, type PhaseLine, type Rates } from './phase-progress.js';

type Display = { quiet?: boolean; tty?: boolean };

function uploadLine(label: string, p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number }, r: Rates): PhaseLine {
  const eta = etaSeconds([p.bytesTotal - p.bytesDone, r.bytesPerSecond], [p.filesTotal - p.filesDone, r.filesPerSecond]);
  return {
    label,
    figures: `${p.filesDone}/${p.filesTotal} files, ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}, ${formatEta(eta)}, ${formatRates(r)}`,
    done: p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.filesTotal > 0 ? p.filesDone / p.filesTotal : 1,
  };
}

function commitLine(label: string, p: { filesDone: number; bytesDone: number }): PhaseLine {
  return { label, figures: `${p.filesDone} files, ${formatBytes(p.bytesDone)} compressed and uploaded` };
}

/** A directory publish; `commitLabel` names what the last phase does (the owner writes, a publisher runs the chain). */
export function publishProgress(o: Display & { commitLabel?: string }): PhaseProgress<PublishProgress> {
  return new PhaseProgress<PublishProgress>((p, r) => {
    switch (p.phase) {
      case 'scan': return {
        label: 'scanning',
        figures: `${p.scanned} entries; ${p.filesTotal} files queued (${formatBytes(p.bytesTotal)}), ` +
          `${p.filesDone} compressed and uploaded (${formatBytes(p.bytesDone)}), ${formatRates(r)}`,
      };
      case 'upload': return uploadLine('compressing and uploading', p, r);
      case 'commit': return commitLine(o.commitLabel ?? 'writing catalogs and manifest', p);
    }
  }, o);
}

/** An ingest; `inputSize` is the tarball's size when it is a file (the share read and an ETA then). */
export function ingestProgress(o: Display & { inputSize?: number }): PhaseProgress<IngestProgress> {
  return new PhaseProgress<IngestProgress>((p, r) => {
    switch (p.phase) {
      case 'read': {
        const label = 'reading the tarball';
        const files = `${p.entries} entries, ${p.filesDone}/${p.filesTotal} files stored (${formatBytes(p.bytesDone)}), ${formatRates(r)}`;
        if (o.inputSize === undefined) return { label, figures: `${formatBytes(p.inputBytes)} read; ${files}` };
        const eta = etaSeconds([o.inputSize - p.inputBytes, r.inputPerSecond]);
        return {
          label, figures: `${formatBytes(p.inputBytes)}/${formatBytes(o.inputSize)}, ${formatEta(eta)}; ${files}`,
          done: o.inputSize > 0 ? Math.min(1, p.inputBytes / o.inputSize) : 1,
        };
      }
      case 'upload': return uploadLine('finishing uploads', p, r);
      case 'commit': return commitLine('writing catalogs and manifest', p);
    }
  }, o);
}
