// The part of a directory publish that the owner's path and the publisher's path share: walk the source
// against the head, store each new or changed file's content as the walk finds it (a bounded number at
// once, so memory stays flat), and report the phases. What becomes of an operation is the caller's.
import { diffSource, type DiffOptions, type DiffStats, type FileOperation, type HeadView, type Operation } from './source-diff.js';
import { FILES_IN_FLIGHT, InFlight } from './in-flight.js';
import type { ProgressReporter, PublishProgress } from './progress.js';

export interface WalkHandlers {
  /** A metadata operation, in walk order (parents before children). */
  apply(op: Exclude<Operation, FileOperation>): Promise<void>;
  /** Stores one file's content and records it; runs alongside the walk and the other files. */
  storeFile(op: FileOperation): Promise<void>;
}

/** Resolves once the walk is over and every file is stored; the phase is then 'upload'. */
export async function walkAndStore(head: HeadView, source: string, repoPath: string, handlers: WalkHandlers,
  reporter: ProgressReporter<PublishProgress>, options: Omit<DiffOptions, 'onScanned'>): Promise<DiffStats> {
  const progress = reporter.state;
  const inFlight = new InFlight(FILES_IN_FLIGHT);
  const store = async (op: FileOperation): Promise<void> => {
    await handlers.storeFile(op);
    progress.filesDone++;
    progress.bytesDone += op.entry.size;
    reporter.tick();
  };
  const stats = await diffSource(head, source, repoPath, {
    apply: (op) => {
      inFlight.check();
      return handlers.apply(op);
    },
    file: async (op) => {
      inFlight.check();
      progress.filesTotal++;
      progress.bytesTotal += op.entry.size;
      await inFlight.slot();
      inFlight.track(store(op));
    },
  }, { ...options, onScanned: (n) => { progress.scanned = n; reporter.tick(); } }).catch(async (err) => {
    await inFlight.settled();
    throw err;
  });
  progress.phase = 'upload';
  reporter.now();
  await inFlight.drain();
  reporter.now();
  return stats;
}
