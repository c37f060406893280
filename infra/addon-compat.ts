// Whether a native Node addon (better-sqlite3's .node file) can load on a Lambda runtime, decided from
// the ELF file alone: the glibc / libstdc++ symbol versions it requires (.gnu.version_r), the Node ABI it
// was built for (its node_register_module_v<N> export) and its machine. A package built on a newer
// distribution than Amazon Linux 2023, or for another Node major, would otherwise deploy fine and fail at
// its first invocation with "version `GLIBC_2.38' not found" or "was compiled against a different
// Node.js version".

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const EM = { 62: 'x86_64', 183: 'arm64' } as Record<number, string>;

export interface AddonRequirements {
  arch: string;
  /** Version names required per shared library, e.g. libc.so.6 → [GLIBC_2.34, …]. */
  needs: Map<string, string[]>;
  /** NODE_MODULE_VERSION the addon registers for; null for a Node-API addon (any Node major). */
  nodeModuleVersion: number | null;
}

export interface LambdaTarget {
  name: string;
  arch: 'x86_64' | 'arm64';
  /** Highest symbol version each family offers there: GLIBC_2.34 → '2.34'. */
  glibc: string;
  glibcxx: string;
  cxxabi: string;
  nodeModuleVersion: number;
}

/** Amazon Linux 2023 (every Node 20+ Lambda runtime): glibc 2.34, GCC 11's libstdc++. */
const AL2023 = { glibc: '2.34', glibcxx: '3.4.29', cxxabi: '1.3.13' };
/** NODE_MODULE_VERSION of each Node major Lambda offers. */
export const NODE_MODULE_VERSIONS: Readonly<Record<number, number>> = { 20: 115, 22: 127, 24: 137 };

export function lambdaTarget(nodeMajor: number, arch: 'x86_64' | 'arm64'): LambdaTarget {
  const abi = NODE_MODULE_VERSIONS[nodeMajor];
  if (abi === undefined) throw new Error(`no Lambda runtime for Node ${nodeMajor} (20, 22 or 24)`);
  return { name: `nodejs${nodeMajor}.x on Amazon Linux 2023 (${arch})`, arch, nodeModuleVersion: abi, ...AL2023 };
}

/** Reads what a 64-bit little-endian ELF shared object needs from its loader and from Node. */
export function readAddonRequirements(elf: Buffer): AddonRequirements {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const arch = EM[elf.readUInt16LE(0x12)] ?? `machine ${elf.readUInt16LE(0x12)}`;
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const sections = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    if (at + 64 > elf.length) throw new Error('ELF section table runs past the end of the file');
    return {
      type: elf.readUInt32LE(at + 4), offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)), link: elf.readUInt32LE(at + 0x28), info: elf.readUInt32LE(at + 0x2c),
    };
  });
  const stringAt = (table: number, offset: number): string => {
    const s = sections[table];
    if (!s) throw new Error('ELF string table index out of range');
    const start = s.offset + offset;
    const end = elf.indexOf(0, start);
    if (start >= s.offset + s.size || end < 0) throw new Error('ELF string out of range');
    return elf.toString('latin1', start, end);
  };

  const needs = new Map<string, string[]>();
  for (const s of sections.filter((x) => x.type === SHT_GNU_VERNEED)) {
    // Verneed entries (vn_cnt, vn_file, vn_aux, vn_next) each with a chain of Vernaux (vna_name, vna_next).
    let at = s.offset;
    for (let n = 0; n < s.info; n++) {
      const count = elf.readUInt16LE(at + 2);
      const file = stringAt(s.link, elf.readUInt32LE(at + 4));
      const names: string[] = [];
      let aux = at + elf.readUInt32LE(at + 8);
      for (let k = 0; k < count; k++) {
        names.push(stringAt(s.link, elf.readUInt32LE(aux + 8)));
        aux += elf.readUInt32LE(aux + 12);
      }
      needs.set(file, [...(needs.get(file) ?? []), ...names]);
      const next = elf.readUInt32LE(at + 12);
      if (next === 0) break;
      at += next;
    }
  }

  let nodeModuleVersion: number | null = null;
  for (const s of sections.filter((x) => x.type === SHT_DYNSYM)) {
    for (let at = s.offset; at + 24 <= s.offset + s.size; at += 24) {
      const shndx = elf.readUInt16LE(at + 6);
      if (shndx === 0) continue; // an import, not an export
      const m = /^node_register_module_v(\d+)$/.exec(stringAt(s.link, elf.readUInt32LE(at)));
      if (m) nodeModuleVersion = Number(m[1]);
    }
  }
  return { arch, needs, nodeModuleVersion };
}

function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Every reason the addon cannot load on the target; empty when it can. */
export function addonProblems(req: AddonRequirements, target: LambdaTarget): string[] {
  const problems: string[] = [];
  if (req.arch !== target.arch) problems.push(`it is built for ${req.arch}, the functions run on ${target.arch}`);
  if (req.nodeModuleVersion !== null && req.nodeModuleVersion !== target.nodeModuleVersion) {
    const builtBy = Object.entries(NODE_MODULE_VERSIONS).find(([, abi]) => abi === req.nodeModuleVersion)?.[0];
    const wanted = Object.entries(NODE_MODULE_VERSIONS).find(([, abi]) => abi === target.nodeModuleVersion)![0];
    problems.push(`it is built for NODE_MODULE_VERSION ${req.nodeModuleVersion}${builtBy ? ` (Node ${builtBy})` : ''}, ${target.name} needs `
      + `${target.nodeModuleVersion} (Node ${wanted}). Build the package under Node ${wanted}: in a checkout run with Node ${wanted}, `
      + `\`npm ci\` (it builds better-sqlite3 for the Node that runs it), then \`npm run synth -- -c lambdaRuntime=nodejs${wanted}.x …\`; `
      + `or choose the runtime of the Node that built it${builtBy ? ` (-c lambdaRuntime=nodejs${builtBy}.x)` : ''}`);
  }
  const limits: [RegExp, string, string][] = [[/^GLIBC_([\d.]+)$/, target.glibc, 'glibc'], [/^GLIBCXX_([\d.]+)$/, target.glibcxx, 'libstdc++ (GLIBCXX)'], [/^CXXABI_([\d.]+)$/, target.cxxabi, 'libstdc++ (CXXABI)']];
  for (const [file, names] of req.needs) {
    for (const name of names) {
      for (const [re, max, what] of limits) {
        const m = re.exec(name);
        if (m && compareVersions(m[1]!, max) > 0) {
          problems.push(`${file} must provide ${name}, newer than the ${what} ${max} of ${target.name}; build on a distribution no newer than Amazon Linux 2023 (glibc 2.34, GCC 11)`);
        }
      }
    }
  }
  return problems;
}
