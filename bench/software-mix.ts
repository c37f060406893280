// A software-like tree copied from this machine's own /usr: headers, scripts, docs, libraries and
// binaries in the proportions the system has them, plus a few files over 4 MiB (which are chunked),
// so that the bench publishes what a software repository holds rather than synthetic text.
import { copyFileSync, lstatSync, mkdirSync, readdirSync, type Stats } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const ROOTS = ['/usr/include', '/usr/share', '/usr/lib', '/usr/bin', '/usr/libexec'];
const LARGE = 4 << 20;

export interface SoftwareMix { files: string[]; bytes: number; large: number }

/** Regular files under `root` in sorted walk order, as far as `take` accepts them. */
function walk(root: string, take: (path: string, st: Stats) => boolean): void {
  let names: string[];
  try { names = readdirSync(root).sort(); } catch { return; }
  for (const name of names) {
    const path = join(root, name);
    let st: Stats;
    try { st = lstatSync(path); } catch { continue; }
    if (st.isDirectory()) walk(path, take);
    else if (st.isFile() && !take(path, st)) return;
  }
}

/**
 * Copies up to `maxFiles` files and `maxBytes` bytes from /usr into `dest` (each root an equal share),
 * with at most `maxLarge` files over 4 MiB of at most 64 MiB each. Unreadable files are left out.
 */
export function makeSoftwareMix(dest: string, maxFiles = 17_500, maxBytes = 435e6, maxLarge = 6): SoftwareMix {
  const out: SoftwareMix = { files: [], bytes: 0, large: 0 };
  const roots = ROOTS.filter((r) => { try { return lstatSync(r).isDirectory(); } catch { return false; } });
  for (const root of roots) {
    const fileShare = Math.ceil(maxFiles / roots.length);
    const byteShare = maxBytes / roots.length;
    let files = 0;
    let bytes = 0;
    let full = false;
    walk(root, (path, st) => {
      if (full) return false;
      const large = st.size > LARGE;
      if (large && (out.large >= maxLarge || st.size > 64 << 20)) return true;
      const target = join(dest, relative('/usr', path));
      try {
        mkdirSync(dirname(target), { recursive: true });
        copyFileSync(path, target);
      } catch { return true; }
      out.files.push(target);
      out.bytes += st.size;
      if (large) out.large++;
      files++;
      bytes += st.size;
      full = files >= fileShare || bytes >= byteShare;
      return !full;
    });
  }
  return out;
}
