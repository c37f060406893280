// Generates a software-like tree of N entries for scale tests and benchmarks: ten top-level areas of
// ten packages, each package a directory of small files, plus one flat directory of many files.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface GeneratedTree {
  entries: number;
  files: number;
  /** Paths (relative, with leading '/') of a few files spread over the tree, for incremental changes. */
  samples: string[];
}

/** `entries` counts files and directories below `root` (root itself excluded). */
export function generateTree(root: string, entries: number, options: { flatFraction?: number; distinctContents?: number } = {}): GeneratedTree {
  const flatFraction = options.flatFraction ?? 0.06;
  // Few distinct contents keep the object count (and the disk work) small when only catalogs matter.
  const content = (i: number, label: string) => options.distinctContents ? `content ${i % options.distinctContents}\n` : `${label}\n`;
  mkdirSync(root, { recursive: true });
  const flat = Math.floor(entries * flatFraction);
  const areas = 10;
  const packages = 10;
  const dirs = 1 + areas + areas * packages;
  const perPackage = Math.floor((entries - flat - dirs) / (areas * packages));
  let files = 0;
  const samples: string[] = [];
  mkdirSync(join(root, 'flat'));
  for (let i = 0; i < flat; i++) {
    writeFileSync(join(root, 'flat', `file${i}`), content(i, `flat ${i}`));
    files++;
  }
  samples.push('/flat/file7');
  let made = flat + 1;
  for (let a = 0; a < areas; a++) {
    for (let p = 0; p < packages; p++) {
      const dir = join(root, `area${a}`, `pkg${p}`);
      mkdirSync(dir, { recursive: true });
      made += p === 0 ? 2 : 1;
      const n = a === areas - 1 && p === packages - 1 ? entries - made : perPackage;
      for (let f = 0; f < n; f++) {
        writeFileSync(join(dir, `f${f}.txt`), content(files, `area ${a} package ${p} file ${f}`));
        files++;
      }
      made += n;
      if (p % 3 === 0) samples.push(`/area${a}/pkg${p}/f${Math.floor(n / 2)}.txt`);
    }
  }
  return { entries: made, files, samples };
}
