// A private temporary directory for the writer's scratch catalogs: SQLite files on disk instead of in
// memory, so that publishing a million entries needs memory for pages in use, not for every row.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class ScratchSpace {
  private counter = 0;
  private constructor(readonly dir: string) {}

  static create(parent = process.env.SCVMFS_SCRATCH ?? tmpdir()): ScratchSpace {
    return new ScratchSpace(mkdtempSync(join(parent, 'scvmfs-scratch-')));
  }

  /** A fresh file name inside the scratch directory. */
  file(): string {
    return join(this.dir, `catalog-${++this.counter}.db`);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
